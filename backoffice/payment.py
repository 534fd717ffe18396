"""The builtin payment provider's tables: authorizations, captures, refunds and the stored
responses of idempotent requests (Stripe's Idempotency-Key semantics, across processes).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, cast

from sqlalchemy import DateTime, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from canonical.documents import Authorization, Capture, PaymentRefund
from canonical.money import Money
from store.db import Base, Store

AuthorizationStatus = Literal["authorized", "captured", "partially_captured", "voided"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class PaymentAuthorization(Base):
    """Money held on a card; capturable remainder = amount - captured - voided."""

    __tablename__ = "payment_authorizations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # auth_<hex>
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    captured: Mapped[Decimal] = mapped_column(default=Decimal(0))
    voided: Mapped[Decimal] = mapped_column(default=Decimal(0))
    status: Mapped[str] = mapped_column(String(30))  # authorized | partially_captured | captured | voided
    reference: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.captured - self.voided


class PaymentCapture(Base):
    """Money taken from an authorization; refundable remainder = amount - refunded."""

    __tablename__ = "payment_captures"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # cap_<hex>
    authorization_id: Mapped[str] = mapped_column(
        ForeignKey("payment_authorizations.id", name="fk_payment_captures_authorization"), index=True
    )
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    refunded: Mapped[Decimal] = mapped_column(default=Decimal(0))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PaymentRefundRecord(Base):
    __tablename__ = "payment_refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # re_<hex>
    capture_id: Mapped[str] = mapped_column(
        ForeignKey("payment_captures.id", name="fk_payment_refunds_capture"), index=True
    )
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PaymentIdempotencyKey(Base):
    """A request's key, its parameters and its response.

    Inserted first in the request's transaction, so a concurrent request with the same key
    waits on the primary key and then fails: it reads the winner's response instead of
    moving money a second time. ``response`` is set before commit (never NULL once visible).
    """

    __tablename__ = "payment_idempotency"

    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation: Mapped[str] = mapped_column(String(20))
    request: Mapped[str] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- read helpers (CLIs, tests) -------------------------------------------------------------


def authorization_document(a: PaymentAuthorization) -> Authorization:
    return Authorization(
        authorization_id=a.id,
        amount=Money.of(a.amount, a.currency),
        status=cast(AuthorizationStatus, a.status),
    )


def get_authorization(store: Store, authorization_id: str) -> Authorization | None:
    """The authorization's current state (amount and status), or None."""
    with store.session() as s:
        a = s.get(PaymentAuthorization, authorization_id)
        return authorization_document(a) if a is not None else None


def list_captures(store: Store, authorization_id: str | None = None) -> list[Capture]:
    q = select(PaymentCapture).order_by(PaymentCapture.created_at, PaymentCapture.id)
    if authorization_id is not None:
        q = q.where(PaymentCapture.authorization_id == authorization_id)
    with store.session() as s:
        return [
            Capture(
                capture_id=c.id, authorization_id=c.authorization_id, amount=Money.of(c.amount, c.currency)
            )
            for c in s.scalars(q)
        ]


def list_refunds(store: Store, capture_id: str | None = None) -> list[PaymentRefund]:
    q = select(PaymentRefundRecord).order_by(PaymentRefundRecord.created_at, PaymentRefundRecord.id)
    if capture_id is not None:
        q = q.where(PaymentRefundRecord.capture_id == capture_id)
    with store.session() as s:
        return [
            PaymentRefund(refund_id=r.id, capture_id=r.capture_id, amount=Money.of(r.amount, r.currency))
            for r in s.scalars(q)
        ]
