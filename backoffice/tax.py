"""The builtin tax engine's tables: jurisdiction rates, quoted documents and commits.

The most specific rate row wins (postal prefix > region > country); the rules that apply
rates to an order live in ``adapters/tax/builtin.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import DateTime, ForeignKey, Numeric, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from canonical.money import Money
from store.db import Base, Store

RATE = Numeric(10, 6)


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalise_postal(code: str | None) -> str:
    """Upper case without spaces or dashes, so 'sw1a 1aa' matches prefix 'SW1A'."""
    return re.sub(r"[\s-]", "", code or "").upper()


class TaxRate(Base):
    """A rate for a country, optionally narrowed to a region and/or a postal code prefix."""

    __tablename__ = "tax_rates"

    id: Mapped[int] = mapped_column(primary_key=True)
    country: Mapped[str] = mapped_column(String(2), index=True)
    region: Mapped[str | None] = mapped_column(String(10))
    postal_prefix: Mapped[str | None] = mapped_column(String(20))
    rate: Mapped[Decimal] = mapped_column(RATE)
    name: Mapped[str] = mapped_column(String(200))
    taxes_shipping: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    @property
    def jurisdiction(self) -> str:
        return "-".join(p for p in (self.country, self.region, self.postal_prefix) if p)

    @property
    def specificity(self) -> tuple[int, int]:
        """Longer postal prefix first, then a region over a whole country."""
        return (len(self.postal_prefix or ""), 1 if self.region else 0)


class TaxDocument(Base):
    """One quoted order (the document code); the quote itself is kept as canonical JSON."""

    __tablename__ = "tax_documents"

    document_code: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # quoted | committed | voided
    jurisdiction: Mapped[str] = mapped_column(String(50))
    currency: Mapped[str] = mapped_column(String(3))
    total_tax: Mapped[Decimal]
    shipping_tax: Mapped[Decimal]
    committed: Mapped[Decimal] = mapped_column(default=Decimal(0))
    quote_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TaxCommitRecord(Base):
    """Tax committed for one invoice; the invoice code is the idempotency key."""

    __tablename__ = "tax_commits"

    invoice_code: Mapped[str] = mapped_column(String(255), primary_key=True)
    document_code: Mapped[str] = mapped_column(
        ForeignKey("tax_documents.document_code", name="fk_tax_commits_document"), index=True
    )
    tax: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TaxReversalRecord(Base):
    """Tax given back by one credit memo; the credit code is the idempotency key. No foreign key:
    the table sits on the returns migration branch (0008_returns)."""

    __tablename__ = "tax_reversals"

    credit_code: Mapped[str] = mapped_column(String(255), primary_key=True)
    document_code: Mapped[str] = mapped_column(String(200), index=True)
    tax: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- rates ----------------------------------------------------------------------------------

# (country, region, postal_prefix, rate, name, taxes_shipping): illustrative defaults for the
# embedded engine, not tax advice.
DEFAULT_RATES: list[tuple[str, str | None, str | None, str, str, bool]] = [
    ("US", None, None, "0", "US (no state rate configured)", False),
    ("US", "CA", None, "0.0725", "California", False),
    ("US", "NY", None, "0.08875", "New York City", True),
    ("US", "WA", None, "0.065", "Washington", True),
    ("GB", None, None, "0.20", "UK VAT", True),
    ("DE", None, None, "0.19", "DE MwSt", True),
    ("JP", None, None, "0.10", "JP consumption tax", True),
    ("KW", None, None, "0", "Kuwait", False),
]


@dataclass(frozen=True)
class TaxRateView:
    country: str
    region: str | None
    postal_prefix: str | None
    rate: Decimal
    name: str
    taxes_shipping: bool
    jurisdiction: str


@dataclass(frozen=True)
class TaxDocumentView:
    document_code: str
    status: str
    jurisdiction: str
    total_tax: Money
    committed: Money


def _upsert_rate(
    s: Session,
    country: str,
    region: str | None,
    postal_prefix: str | None,
    rate: Decimal,
    name: str,
    taxes_shipping: bool,
) -> bool:
    """Insert or update the row for exactly this (country, region, prefix); True if it changed."""
    country = country.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise ValueError(f"country must be an ISO 3166-1 alpha-2 code, got {country!r}")
    if not Decimal(0) <= rate < Decimal(1):
        raise ValueError(f"rate must be a fraction in [0, 1), e.g. 0.0725 for 7.25%; got {rate}")
    region = (region.strip().upper() or None) if region else None
    postal_prefix = normalise_postal(postal_prefix) or None
    q = select(TaxRate).where(
        TaxRate.country == country,
        TaxRate.region.is_(None) if region is None else TaxRate.region == region,
        TaxRate.postal_prefix.is_(None) if postal_prefix is None else TaxRate.postal_prefix == postal_prefix,
    )
    row = s.scalars(q).first()
    if row is None:
        s.add(
            TaxRate(
                country=country,
                region=region,
                postal_prefix=postal_prefix,
                rate=rate,
                name=name,
                taxes_shipping=taxes_shipping,
            )
        )
        return True
    if (row.rate, row.name, row.taxes_shipping) == (rate, name, taxes_shipping):
        return False
    row.rate, row.name, row.taxes_shipping = rate, name, taxes_shipping
    return True


def add_rate(
    store: Store,
    country: str,
    rate: Decimal | str,
    name: str,
    *,
    region: str | None = None,
    postal_prefix: str | None = None,
    taxes_shipping: bool = False,
) -> bool:
    """Add or replace the rate for one jurisdiction; True when something changed."""
    with store.session() as s:
        return _upsert_rate(s, country, region, postal_prefix, Decimal(rate), name, taxes_shipping)


def seed_default_rates(store: Store) -> int:
    """Install DEFAULT_RATES (idempotent); returns how many rows were added or changed."""
    with store.session() as s:
        return sum(
            _upsert_rate(s, c, r, p, Decimal(rate), name, ship) for c, r, p, rate, name, ship in DEFAULT_RATES
        )


def list_rates(store: Store, country: str | None = None) -> list[TaxRateView]:
    q = select(TaxRate).order_by(TaxRate.country, TaxRate.region, TaxRate.postal_prefix)
    if country is not None:
        q = q.where(TaxRate.country == country.upper())
    with store.session() as s:
        return [
            TaxRateView(
                r.country,
                r.region,
                r.postal_prefix,
                r.rate.normalize(),
                r.name,
                r.taxes_shipping,
                r.jurisdiction,
            )
            for r in s.scalars(q)
        ]


def get_tax_document(store: Store, document_code: str) -> TaxDocumentView | None:
    with store.session() as s:
        d = s.get(TaxDocument, document_code)
        if d is None:
            return None
        return TaxDocumentView(
            d.document_code,
            d.status,
            d.jurisdiction,
            Money.of(d.total_tax, d.currency),
            Money.of(d.committed, d.currency),
        )


def reversed_tax(store: Store, document_code: str) -> Money | None:
    """Tax reversed so far on the document (None when it has no reversal)."""
    with store.session() as s:
        rows = list(
            s.scalars(select(TaxReversalRecord).where(TaxReversalRecord.document_code == document_code))
        )
        if not rows:
            return None
        return Money.sum((Money.of(r.tax, r.currency) for r in rows), rows[0].currency)
