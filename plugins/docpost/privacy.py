"""The one way docpost masks personal identifiers: CPR and CVR numbers.

- :func:`mask_identifier`: a known CPR or CVR number for display and storage. A CPR shows at
  most its birth date part: ``010190-****`` (never any of the last four digits); a CVR shows its
  first four digits: ``2918****``; anything else becomes ``****``.
- :func:`scrub`: free text (exception messages from libraries, service answers, reasons, file
  names) with every CPR- or CVR-shaped number masked the same way, optionally cut to ``limit``.

What :func:`scrub` treats as an identifier (the strictest rule of the ones docpost had, short of
damaging ids that are not personal data):

- CPR: 10 digits, with or without a hyphen after the sixth (``0101901234``, ``010190-1234``);
- CVR: 8 digits (``29189846``); an 8-digit date such as ``20260115`` looks the same and is
  masked too (``2026****``): a false positive is cheap, a leaked CPR is not;
- the digits must not be glued to other digits (longer numbers are left alone, so are dates
  written ``2026-01-15``), but they may be glued to letters, ``_``, ``-`` or punctuation
  (``brev_0101901234.pdf``, ``CPR0101901234``, ``cpr=010190-1234`` are all masked);
- left alone: UUIDs (``1ab6eb87-a457-...``) and whole hexadecimal words (hashes,
  ``ab0101901234cd``: hex digits only, at least one letter a-f, not glued to other letters or
  digits), which are not personal data and must stay readable for correlation. ``file0101901234``
  is not a hex word, so its digits are masked.

Validating an identifier's *format* (``identifiers.py``) is a different concern and lives there.
"""

from __future__ import annotations

import re

MASK = "****"

_HEX = "[0-9A-Fa-f]"
_IDENTIFIER_SHAPES = re.compile(
    # kept as they are: UUIDs, then hex tokens containing a letter (hashes)
    rf"(?<![0-9A-Za-z])(?P<keep>{_HEX}{{8}}(?:-{_HEX}{{4}}){{3}}-{_HEX}{{12}}|{_HEX}*[A-Fa-f]{_HEX}*)(?![0-9A-Za-z])"
    # CPR: DDMMYY, optional hyphen, four digits
    r"|(?<!\d)(?P<cpr>\d{6})-?\d{4}(?!\d)"
    # CVR: eight digits
    r"|(?<!\d)(?P<cvr>\d{4})\d{4}(?!\d)"
)


def mask_identifier(identifier: str) -> str:
    """Mask a CPR (``010190-****``) or CVR (``1234****``) number; anything else is ``****``."""
    digits = "".join(ch for ch in identifier if ch.isdigit())
    if len(digits) == 10:
        return f"{digits[:6]}-{MASK}"
    if len(digits) == 8:
        return f"{digits[:4]}{MASK}"
    return MASK


def _replace(match: re.Match[str]) -> str:
    if match.group("cpr") is not None:
        return f"{match.group('cpr')}-{MASK}"
    if match.group("cvr") is not None:
        return f"{match.group('cvr')}{MASK}"
    return match.group(0)


def scrub(text: str | None, limit: int | None = None) -> str | None:
    """``text`` with CPR/CVR-shaped numbers masked, cut to ``limit`` characters; None stays None.

    Masking happens before cutting, so a cut can never leave a partial identifier behind.
    """
    if text is None:
        return None
    text = _IDENTIFIER_SHAPES.sub(_replace, text)
    return text if limit is None else text[:limit]
