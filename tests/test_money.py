from decimal import Decimal

import pytest
from pydantic import ValidationError

from canonical import CurrencyMismatchError, Money, allocate


def test_minor_units_per_currency() -> None:
    assert Money.of("1000", "JPY").minor == 1000
    assert Money.of("12.34", "USD").minor == 1234
    assert Money.of("1.234", "KWD").minor == 1234
    assert str(Money.of("10", "USD")) == "10.00 USD"


def test_more_decimals_than_the_currency_allows_is_refused() -> None:
    with pytest.raises(ValidationError, match="more decimals than JPY allows"):
        Money.of("10.5", "JPY")
    with pytest.raises(ValidationError, match="more decimals than USD allows"):
        Money.of("10.005", "USD")
    assert Money.of("10.005", "KWD").amount == Decimal("10.005")


def test_floats_and_unknown_currencies_are_refused() -> None:
    with pytest.raises(ValidationError, match="not floats"):
        Money(amount=0.1, currency="USD")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unsupported currency"):
        Money.of("1", "XYZ")


def test_arithmetic_refuses_mixed_currencies() -> None:
    with pytest.raises(CurrencyMismatchError):
        _ = Money.of("1", "USD") + Money.of("1", "EUR")
    assert Money.of("1.10", "USD") + Money.of("2.25", "USD") == Money.of("3.35", "USD")


def test_round_is_half_even_per_currency() -> None:
    assert Money.round(Decimal("0.125"), "USD").amount == Decimal("0.12")
    assert Money.round(Decimal("0.135"), "USD").amount == Decimal("0.14")
    assert Money.round(Decimal("2.5"), "JPY").amount == Decimal("2")
    assert Money.round(Decimal("1.0005"), "KWD").amount == Decimal("1.000")


def test_json_round_trip_keeps_amount_as_string() -> None:
    m = Money.of("19.90", "USD")
    assert m.model_dump(mode="json") == {"amount": "19.90", "currency": "USD"}
    assert Money.model_validate_json(m.model_dump_json()) == m


def test_allocate_always_adds_up() -> None:
    parts = allocate(Money.of("100.00", "USD"), [Decimal(1), Decimal(1), Decimal(1)])
    assert [p.amount for p in parts] == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    assert Money.sum(parts, "USD") == Money.of("100.00", "USD")
    yen = allocate(Money.of("1000", "JPY"), [Decimal(2), Decimal(1)])
    assert Money.sum(yen, "JPY") == Money.of("1000", "JPY")


def test_amounts_beyond_decimal_range_are_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="out of range"):
        Money.of("1e30", "USD")
