"""The builtin channel's table: what the platform told the storefront (fulfilments, refunds,
cancellations), one row per idempotency key, so a replayed call records nothing new."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from sqlalchemy import JSON, CheckConstraint, DateTime, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from canonical import Money
from store.db import Base, Store

NotificationKind = Literal["fulfillment", "refund", "cancelled"]
NOTIFICATION_KINDS: tuple[str, ...] = get_args(NotificationKind)
REFERENCE_PREFIX = "CH-"


def format_reference(pk: int) -> str:
    """The channel's id for a notification, e.g. ``CH-000001``."""
    return f"{REFERENCE_PREFIX}{pk:06d}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written as UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class ChannelNotification(Base):
    __tablename__ = "channel_notifications"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('fulfillment', 'refund', 'cancelled')", name="ck_channel_notifications_kind"
        ),
        UniqueConstraint("idempotency_key", name="uq_channel_notifications_idempotency_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(64))
    external_order_id: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    amount: Mapped[Decimal | None] = mapped_column(nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def reference(self) -> str:
        return format_reference(self.id)


class ChannelReturnNotice(Base):
    """What the platform told the channel about a return (migration 0008_returns); one row per
    idempotency key. The reference is ``CR-000001``."""

    __tablename__ = "channel_return_notices"
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_channel_return_notices_idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(64))
    external_order_id: Mapped[str] = mapped_column(String(200), index=True)
    return_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    amount: Mapped[Decimal] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def reference(self) -> str:
        return f"CR-{self.id:06d}"


@dataclass(frozen=True)
class ReturnNoticeRecord:
    reference: str
    channel: str
    external_order_id: str
    return_key: str
    status: str
    payload: dict[str, Any]
    amount: Money


def list_return_notices(store: Store, external_order_id: str | None = None) -> list[ReturnNoticeRecord]:
    query = select(ChannelReturnNotice).order_by(ChannelReturnNotice.id)
    if external_order_id is not None:
        query = query.where(ChannelReturnNotice.external_order_id == external_order_id)
    with store.session() as s:
        return [
            ReturnNoticeRecord(
                r.reference,
                r.channel,
                r.external_order_id,
                r.return_key,
                r.status,
                dict(r.payload),
                Money.of(r.amount, r.currency),
            )
            for r in s.scalars(query)
        ]


@dataclass(frozen=True)
class Notification:
    """A recorded notification as readers (tests, CLI, demo) see it."""

    reference: str
    channel: str
    external_order_id: str
    kind: NotificationKind
    idempotency_key: str
    payload: dict[str, Any]
    amount: Money | None
    created_at: datetime


def notification_view(row: ChannelNotification) -> Notification:
    amount = (
        Money.round(row.amount, row.currency) if row.amount is not None and row.currency is not None else None
    )
    return Notification(
        reference=row.reference,
        channel=row.channel,
        external_order_id=row.external_order_id,
        kind=row.kind,  # type: ignore[arg-type]  # the check constraint keeps it in NotificationKind
        idempotency_key=row.idempotency_key,
        payload=dict(row.payload),
        amount=amount,
        created_at=_aware(row.created_at),
    )


def list_notifications(
    store: Store, external_order_id: str | None = None, *, channel: str | None = None
) -> list[Notification]:
    """Notifications in the order they were recorded, optionally for one order or channel."""
    query = select(ChannelNotification).order_by(ChannelNotification.id)
    if external_order_id is not None:
        query = query.where(ChannelNotification.external_order_id == external_order_id)
    if channel is not None:
        query = query.where(ChannelNotification.channel == channel)
    with store.session() as s:
        return [notification_view(row) for row in s.scalars(query)]
