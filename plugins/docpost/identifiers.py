"""Danish identifiers: CPR (persons), CVR (companies), P-numbers (production units).

CPR: 10 digits ``DDMMYY`` + ``SSSS`` whose first serial digit and the two-digit year give the
century. Numbers issued since 2007 need not pass modulus 11, so it is not required here.
CVR: 8 digits, first digit not 0, weighted sum (2, 7, 6, 5, 4, 3, 2, 1) divisible by 11.
"""

from __future__ import annotations

import datetime as dt
import re

from docpost.errors import DocpostError
from docpost.privacy import mask_identifier

CVR_WEIGHTS = (2, 7, 6, 5, 4, 3, 2, 1)

# The *format* of a whole field value (not masking: that is docpost.privacy's job).
CPR_SHAPE = re.compile(r"[0-9]{10}")
CVR_SHAPE = re.compile(r"[1-9][0-9]{7}")


class IdentifierError(DocpostError, ValueError):
    """An identifier that is not a valid CPR, CVR or P-number. ``code`` is a stable reason code."""

    code = "identifier.invalid"

    def __init__(self, identifier: str, message: str):
        self.masked = mask_identifier(identifier)
        super().__init__(f"{self.masked}: {message}")


class CprFormatError(IdentifierError):
    code = "cpr.invalid-format"


class CprDateError(IdentifierError):
    code = "cpr.invalid-date"


class CvrFormatError(IdentifierError):
    code = "cvr.invalid-format"


class CvrCheckDigitError(IdentifierError):
    code = "cvr.bad-check-digit"


class PNumberFormatError(IdentifierError):
    code = "pnumber.invalid-format"


def cpr_century(year2: int, seventh: int) -> int:
    """The century (1800, 1900, 2000) of a CPR number's birth year, by the CPR office's rule."""
    if seventh <= 3:
        return 1900
    if seventh in (4, 9):
        return 2000 if year2 <= 36 else 1900
    return 2000 if year2 <= 57 else 1800  # 5, 6, 7, 8


def cpr_birth_date(cpr: str) -> dt.date:
    """The date of birth a CPR number encodes; raises CprFormatError or CprDateError."""
    if len(cpr) != 10 or not cpr.isascii() or not cpr.isdigit():
        raise CprFormatError(cpr, "a CPR number is 10 digits")
    day, month, year2 = int(cpr[0:2]), int(cpr[2:4]), int(cpr[4:6])
    year = cpr_century(year2, int(cpr[6])) + year2
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise CprDateError(cpr, "the CPR number does not hold a real date of birth") from None


def check_cpr(cpr: str) -> None:
    """Raise unless ``cpr`` is 10 digits with a real date of birth (modulus 11 not required)."""
    cpr_birth_date(cpr)


def cvr_check_ok(cvr: str) -> bool:
    """Whether the 8 digits pass the CVR modulus-11 check."""
    return sum(int(d) * w for d, w in zip(cvr, CVR_WEIGHTS)) % 11 == 0


def check_cvr(cvr: str) -> None:
    """Raise unless ``cvr`` is 8 digits, not starting with 0, passing modulus 11."""
    if len(cvr) != 8 or not cvr.isascii() or not cvr.isdigit() or cvr[0] == "0":
        raise CvrFormatError(cvr, "a CVR number is 8 digits, not starting with 0")
    if not cvr_check_ok(cvr):
        raise CvrCheckDigitError(cvr, "the CVR number fails its modulus-11 check")


def cvr_check_digit(first7: str) -> int | None:
    """The 8th digit that makes ``first7`` a valid CVR number, or None if there is none."""
    partial = sum(int(d) * w for d, w in zip(first7, CVR_WEIGHTS[:7]))
    digit = (-partial) % 11
    return None if digit == 10 else digit


def check_p_number(pnumber: str) -> None:
    """Raise unless ``pnumber`` is a 10-digit production-unit number."""
    if len(pnumber) != 10 or not pnumber.isascii() or not pnumber.isdigit():
        raise PNumberFormatError(pnumber, "a P-number is 10 digits")


def cpr_for(birth: dt.date, serial: int) -> str:
    """A CPR number for ``birth`` with a three-digit ``serial`` (0-999), century digit chosen to fit."""
    year2 = birth.year % 100
    if 1900 <= birth.year <= 1999:
        seventh = (serial // 100) % 4
    elif 2000 <= birth.year <= 2036:
        seventh = 4 if serial % 2 else 9
    elif 2037 <= birth.year <= 2057:
        seventh = 5 + serial % 4
    elif 1858 <= birth.year <= 1899:
        seventh = 5 + serial % 4
    else:
        raise ValueError("no CPR century digit covers that year")
    number = f"{birth:%d%m}{year2:02d}{seventh}{serial % 1000:03d}"
    assert cpr_birth_date(number) == birth
    return number
