from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from app.domain.money import (
    CURRENCY_MINOR_UNITS,
    MAX_AMOUNT,
    MIN_AMOUNT,
    Amount,
    Currency,
    minor_units,
)

CURRENCY = TypeAdapter[str](Currency)
AMOUNT = TypeAdapter[int](Amount)

EXCLUDED = ["XAU", "XAG", "XPT", "XPD", "XDR", "XSU", "XUA", "XTS", "XXX"]
EXCLUDED += ["BOV", "CLF", "COU", "MXV", "UYI", "UYW", "USN", "CHE", "CHW"]


@pytest.mark.parametrize(
    ("code", "digits"),
    [("USD", 2), ("EUR", 2), ("GBP", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3), ("CHF", 2)],
)
def test_common_currencies_have_their_minor_units(code: str, digits: int) -> None:
    assert minor_units(code) == digits
    assert CURRENCY.validate_python(code) == code


def test_the_list_is_the_active_iso_4217_set() -> None:
    assert 150 <= len(CURRENCY_MINOR_UNITS) <= 185
    assert all(len(code) == 3 and code.isalpha() and code.isupper() for code in CURRENCY_MINOR_UNITS)
    assert set(CURRENCY_MINOR_UNITS.values()) <= {0, 2, 3}


@pytest.mark.parametrize("code", EXCLUDED)
def test_funds_metals_and_testing_codes_are_not_currencies(code: str) -> None:
    assert code not in CURRENCY_MINOR_UNITS
    with pytest.raises(ValidationError, match="unknown ISO 4217 currency code"):
        CURRENCY.validate_python(code)


@pytest.mark.parametrize("code", ["usd", "eur", "Jpy"])
def test_currency_codes_are_case_sensitive(code: str) -> None:
    with pytest.raises(ValidationError, match="unknown ISO 4217 currency code"):
        CURRENCY.validate_python(code)


def test_the_currency_list_is_read_only() -> None:
    with pytest.raises(TypeError):
        CURRENCY_MINOR_UNITS["ZZZ"] = 2  # type: ignore[index]


def test_amount_bounds() -> None:
    assert (MIN_AMOUNT, MAX_AMOUNT) == (1, 10**12)
    assert AMOUNT.validate_python(MIN_AMOUNT) == MIN_AMOUNT
    assert AMOUNT.validate_python(MAX_AMOUNT) == MAX_AMOUNT
    for bad in (0, MAX_AMOUNT + 1, 1.0, True, "1"):
        with pytest.raises(ValidationError):
            AMOUNT.validate_python(bad)
