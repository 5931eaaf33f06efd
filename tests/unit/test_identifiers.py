"""CPR (date of birth by the century rule, no modulus 11), CVR (modulus 11), P-numbers."""

from __future__ import annotations

import datetime as dt

import pytest

from docpost import identifiers as ids


@pytest.mark.parametrize(
    "cpr, born",
    [
        ("0101000123", dt.date(1900, 1, 1)),  # 7th digit 0-3: 1900s
        ("3112993999", dt.date(1999, 12, 31)),
        ("0101364000", dt.date(2036, 1, 1)),  # 4: 00-36 -> 2000s
        ("0101374000", dt.date(1937, 1, 1)),  # 4: 37-99 -> 1900s
        ("0101009000", dt.date(2000, 1, 1)),  # 9: 00-36 -> 2000s
        ("0101999000", dt.date(1999, 1, 1)),  # 9: 37-99 -> 1900s
        ("0101575000", dt.date(2057, 1, 1)),  # 5-8: 00-57 -> 2000s
        ("0101588000", dt.date(1858, 1, 1)),  # 5-8: 58-99 -> 1800s
        ("2902004000", dt.date(2000, 2, 29)),  # 2000 is a leap year
    ],
)
def test_cpr_birth_date_follows_the_century_rule(cpr, born):
    assert ids.cpr_birth_date(cpr) == born
    ids.check_cpr(cpr)


@pytest.mark.parametrize("cpr", ["2902000123", "2902010123", "3002901234", "0013801234", "3204801234", "0000001234", "3104161234"])
def test_cpr_with_impossible_date_is_refused(cpr):
    with pytest.raises(ids.CprDateError) as info:
        ids.check_cpr(cpr)
    assert info.value.code == "cpr.invalid-date"
    assert cpr not in str(info.value)  # masked


@pytest.mark.parametrize("cpr", ["123456789", "12345678901", "01019012a4", "010190-1234", "０１０１９０１２３４"])
def test_cpr_format(cpr):
    with pytest.raises(ids.CprFormatError):
        ids.check_cpr(cpr)


def test_cpr_does_not_require_modulus_11():
    weights = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
    cpr = "0101904001"
    assert sum(int(d) * w for d, w in zip(cpr, weights)) % 11 != 0
    ids.check_cpr(cpr)


def test_cpr_for_round_trips_over_three_centuries():
    day = dt.date(1858, 1, 1)
    while day < dt.date(2057, 12, 31):
        for serial in (0, 123, 999):
            number = ids.cpr_for(day, serial)
            assert len(number) == 10 and ids.cpr_birth_date(number) == day
        day += dt.timedelta(days=97)


@pytest.mark.parametrize("cvr", ["29189846", "34567808", "10150817"])
def test_valid_cvr(cvr):
    ids.check_cvr(cvr)
    assert ids.cvr_check_ok(cvr)


@pytest.mark.parametrize("cvr", ["29189847", "34567809", "12345678"])
def test_cvr_bad_check_digit(cvr):
    with pytest.raises(ids.CvrCheckDigitError) as info:
        ids.check_cvr(cvr)
    assert info.value.code == "cvr.bad-check-digit"
    assert cvr not in str(info.value)


@pytest.mark.parametrize("cvr", ["01234567", "1234567", "123456789", "1234567a"])
def test_cvr_format(cvr):
    with pytest.raises(ids.CvrFormatError):
        ids.check_cvr(cvr)


def test_cvr_check_digit_completes_a_number_or_says_none():
    for first7 in ("2918984", "3456780", "1015081", "2541876"):
        digit = ids.cvr_check_digit(first7)
        if digit is None:
            assert not any(ids.cvr_check_ok(f"{first7}{d}") for d in range(10))
        else:
            assert ids.cvr_check_ok(f"{first7}{digit}")
            assert [d for d in range(10) if ids.cvr_check_ok(f"{first7}{d}")] == [digit]


def test_p_number():
    ids.check_p_number("1012345678")
    for bad in ("101234567", "10123456789", "10123456x8"):
        with pytest.raises(ids.PNumberFormatError):
            ids.check_p_number(bad)
