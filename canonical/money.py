"""Exact money: a Decimal amount in an ISO 4217 currency, never a float.

Amounts are always held at the currency's minor units (USD 2, JPY 0, KWD 3); rounding is
ROUND_HALF_EVEN ("banker's"), applied per line and stated here once.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, field_serializer, field_validator, model_validator

ROUNDING = ROUND_HALF_EVEN

# ISO 4217 minor units. Currencies not listed are refused rather than guessed.
MINOR_UNITS: dict[str, int] = {
    "AED": 2,
    "AUD": 2,
    "BHD": 3,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CLP": 0,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "HUF": 2,
    "IDR": 2,
    "ILS": 2,
    "INR": 2,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "MXN": 2,
    "MYR": 2,
    "NOK": 2,
    "NZD": 2,
    "OMR": 3,
    "PHP": 2,
    "PLN": 2,
    "SAR": 2,
    "SEK": 2,
    "SGD": 2,
    "THB": 2,
    "TND": 3,
    "TRY": 2,
    "TWD": 2,
    "UGX": 0,
    "USD": 2,
    "VND": 0,
    "XAF": 0,
    "XOF": 0,
    "ZAR": 2,
}


class CurrencyMismatchError(ValueError):
    """Arithmetic between two currencies: always a bug upstream, never converted silently."""


def minor_units(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise ValueError(f"unsupported currency {currency!r} (ISO 4217 code expected)") from None


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


class Money(BaseModel):
    """An amount in one currency, quantized to the currency's minor units.

    Input amounts must be Decimal, int or a decimal string; floats are refused because they
    cannot represent most prices exactly. An amount with more precision than the currency
    allows is refused too (``10.005 USD``): rounding is an explicit step (``Money.round``).
    """

    model_config = ConfigDict(frozen=True, strict=False)

    amount: Decimal
    currency: str

    @field_validator("amount", mode="before")
    @classmethod
    def _no_floats(cls, v: Any) -> Any:
        if isinstance(v, float):
            raise ValueError("money amounts must be decimal strings or Decimal, not floats")
        if isinstance(v, str):
            try:
                return Decimal(v.strip())
            except InvalidOperation:
                raise ValueError(f"not a decimal amount: {v!r}") from None
        return v

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, v: str) -> str:
        minor_units(v)
        return v

    @model_validator(mode="after")
    def _exact_to_minor_units(self) -> Self:
        if not self.amount.is_finite():
            raise ValueError("money amount must be finite")
        q = quantum(self.currency)
        try:
            exact = self.amount.quantize(q, rounding=ROUNDING)
        except InvalidOperation:
            raise ValueError(f"amount {self.amount} is out of range") from None
        if exact != self.amount:
            raise ValueError(
                f"{self.amount} has more decimals than {self.currency} allows ({minor_units(self.currency)})"
            )
        # Normalise the exponent so 10 and 10.00 USD are the same value and serialise alike.
        object.__setattr__(self, "amount", exact)
        return self

    @field_serializer("amount")
    def _amount_as_string(self, v: Decimal) -> str:
        return str(v)

    # -- construction -------------------------------------------------------------
    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str) -> Money:
        return cls(amount=Decimal(amount) if not isinstance(amount, Decimal) else amount, currency=currency)

    @classmethod
    def round(cls, amount: Decimal, currency: str) -> Money:
        """Round an exact intermediate (e.g. a rate times a price) to minor units."""
        return cls(amount=amount.quantize(quantum(currency), rounding=ROUNDING), currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    @classmethod
    def sum(cls, items: Iterable[Money], currency: str) -> Money:
        total = cls.zero(currency)
        for m in items:
            total = total + m
        return total

    # -- arithmetic -----------------------------------------------------------------
    def _check(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"cannot combine {self.currency} with {other.currency}")
        return other

    def __add__(self, other: object) -> Money:
        o = self._check(other)
        return Money(amount=self.amount + o.amount, currency=self.currency)

    def __sub__(self, other: object) -> Money:
        o = self._check(other)
        return Money(amount=self.amount - o.amount, currency=self.currency)

    def __neg__(self) -> Money:
        return Money(amount=-self.amount, currency=self.currency)

    def times(self, quantity: int) -> Money:
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise TypeError("multiply money by an integer quantity; use Money.round for rates")
        return Money(amount=self.amount * quantity, currency=self.currency)

    def __lt__(self, other: object) -> bool:
        return self.amount < self._check(other).amount

    def __le__(self, other: object) -> bool:
        return self.amount <= self._check(other).amount

    def __gt__(self, other: object) -> bool:
        return self.amount > self._check(other).amount

    def __ge__(self, other: object) -> bool:
        return self.amount >= self._check(other).amount

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def minor(self) -> int:
        """The amount in minor units (cents), as payment APIs want it."""
        return int(self.amount.scaleb(minor_units(self.currency)))

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        return cls(amount=Decimal(minor).scaleb(-minor_units(currency)), currency=currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def allocate(total: Money, weights: list[Decimal]) -> list[Money]:
    """Split ``total`` across ``weights`` in minor units; the parts always add up to ``total``.

    Largest-remainder method: each part gets its floor share, the leftover minor units go to
    the parts with the largest remainders (earliest first on ties), so the result is
    deterministic and exact.
    """
    if not weights:
        return []
    wsum = sum(weights, Decimal(0))
    if wsum == 0:
        shares = [Decimal(1)] * len(weights)
        wsum = Decimal(len(weights))
    else:
        shares = list(weights)
    units = total.minor
    raw = [Decimal(units) * s / wsum for s in shares]
    floors = [int(r.to_integral_value(rounding="ROUND_FLOOR")) for r in raw]
    leftover = units - sum(floors)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - floors[i]), i))
    step = 1 if leftover >= 0 else -1
    for i in order[: abs(leftover)]:
        floors[i] += step
    return [Money.from_minor(f, total.currency) for f in floors]
