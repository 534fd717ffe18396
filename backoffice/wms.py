"""The builtin warehouse's tables: fulfillment orders, their lines, and the outbox of signed
webhooks the warehouse owes the platform.

Also the outbox columns and operations the carrier tables share, because both builtin systems
report by webhook the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar, cast, get_args

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, selectinload

from store.columns import UtcDateTime, rowcount
from store.db import Base, Store

FulfillmentStatus = Literal["released", "picking", "packed", "shipped", "cancelled"]
FULFILLMENT_STATUSES: tuple[str, ...] = get_args(FulfillmentStatus)
CANCELLABLE: tuple[str, ...] = ("released", "picking")

FULFILLMENT_ID_PREFIX = "FO-"


def format_fulfillment_id(pk: int) -> str:
    return f"{FULFILLMENT_ID_PREFIX}{pk:06d}"


def parse_fulfillment_id(fulfillment_id: str) -> int | None:
    """The primary key behind ``FO-000012``; None for anything that is not one of ours."""
    if not fulfillment_id.startswith(FULFILLMENT_ID_PREFIX):
        return None
    digits = fulfillment_id[len(FULFILLMENT_ID_PREFIX) :]
    return int(digits) if digits.isdigit() and len(digits) >= 6 else None


class FulfillmentOrder(Base):
    """One location's share of an order, as the warehouse works it.

    The public id (``FO-000012``) is derived from the primary key, so it needs no second
    sequence and is unique by construction.
    """

    __tablename__ = "wms_fulfillment_orders"
    __table_args__ = (
        Index("ux_wms_fulfillment_orders_idempotency_key", "idempotency_key", unique=True),
        Index("ix_wms_fulfillment_orders_order_key", "order_key"),
        Index("ix_wms_fulfillment_orders_status", "status", "status_changed_at"),
        CheckConstraint(
            "status IN ('released', 'picking', 'packed', 'shipped', 'cancelled')",
            name="ck_wms_fulfillment_orders_status",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    order_key: Mapped[str] = mapped_column(String(255))
    order_name: Mapped[str | None] = mapped_column(String(255))
    location: Mapped[str] = mapped_column(String(64))
    ship_to: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    shipping_method: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    carrier: Mapped[str | None] = mapped_column(String(64))
    service: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    shipped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    lines: Mapped[list[FulfillmentOrderLine]] = relationship(
        back_populates="order",
        cascade="all, delete-orphan",
        order_by="FulfillmentOrderLine.position",
    )

    @property
    def fulfillment_id(self) -> str:
        return format_fulfillment_id(self.id)


class FulfillmentOrderLine(Base):
    __tablename__ = "wms_fulfillment_lines"
    __table_args__ = (Index("ix_wms_fulfillment_lines_fulfillment_order_id", "fulfillment_order_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fulfillment_order_id: Mapped[int] = mapped_column(
        ForeignKey("wms_fulfillment_orders.id", ondelete="CASCADE", name="fk_wms_fulfillment_lines_order")
    )
    position: Mapped[int] = mapped_column(Integer)
    line_id: Mapped[str] = mapped_column(String(255))
    sku: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(Integer)

    order: Mapped[FulfillmentOrder] = relationship(back_populates="lines")


class WebhookOutboxMixin:
    """A signed webhook a builtin system owes the platform, kept until a 2xx acknowledges it.

    The body is frozen when the event happens, so every redelivery sends the same bytes and
    the same event id (the receiver's dedupe key). ``attempts`` doubles as a version number:
    a sender claims a row with ``UPDATE ... WHERE attempts = <seen>``, so two simulators do
    not post the same event at once.
    """

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class WmsWebhookOutbox(WebhookOutboxMixin, Base):
    __tablename__ = "wms_webhook_outbox"
    __table_args__ = (
        Index("ux_wms_webhook_outbox_event_id", "event_id", unique=True),
        Index("ix_wms_webhook_outbox_pending", "delivered_at", "next_attempt_at"),
        Index("ix_wms_webhook_outbox_fulfillment_order_id", "fulfillment_order_id"),
    )

    fulfillment_order_id: Mapped[int] = mapped_column(
        ForeignKey("wms_fulfillment_orders.id", ondelete="CASCADE", name="fk_wms_webhook_outbox_order")
    )


# -- returns (migration 0008_returns) ---------------------------------------------------------

ReturnInboundStatus = Literal["expected", "received"]
RETURN_INBOUND_PREFIX = "RI-"


def format_inbound_id(pk: int) -> str:
    return f"{RETURN_INBOUND_PREFIX}{pk:06d}"


class ReturnInbound(Base):
    """A return the warehouse expects (``RI-000001``): it posts a receipt once the parcel is in."""

    __tablename__ = "wms_return_inbounds"
    __table_args__ = (
        Index("ux_wms_return_inbounds_idempotency_key", "idempotency_key", unique=True),
        Index("ix_wms_return_inbounds_return_key", "return_key"),
        Index("ix_wms_return_inbounds_status", "status", "status_changed_at"),
        CheckConstraint("status IN ('expected', 'received')", name="ck_wms_return_inbounds_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    return_key: Mapped[str] = mapped_column(String(255))
    rma_id: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    lines: Mapped[list[ReturnInboundLine]] = relationship(
        back_populates="inbound", cascade="all, delete-orphan", order_by="ReturnInboundLine.position"
    )

    @property
    def inbound_id(self) -> str:
        return format_inbound_id(self.id)


class ReturnInboundLine(Base):
    __tablename__ = "wms_return_lines"
    __table_args__ = (Index("ix_wms_return_lines_inbound_id", "inbound_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inbound_id: Mapped[int] = mapped_column(
        ForeignKey("wms_return_inbounds.id", ondelete="CASCADE", name="fk_wms_return_lines_inbound")
    )
    position: Mapped[int] = mapped_column(Integer)
    line_id: Mapped[str] = mapped_column(String(255))
    sku: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(Integer)

    inbound: Mapped[ReturnInbound] = relationship(back_populates="lines")


class WmsReturnOutbox(WebhookOutboxMixin, Base):
    """Return receipts the warehouse owes the platform (same delivery rules as shipments)."""

    __tablename__ = "wms_return_outbox"
    __table_args__ = (
        Index("ux_wms_return_outbox_event_id", "event_id", unique=True),
        Index("ix_wms_return_outbox_pending", "delivered_at", "next_attempt_at"),
        Index("ix_wms_return_outbox_inbound_id", "inbound_id"),
    )

    inbound_id: Mapped[int] = mapped_column(
        ForeignKey("wms_return_inbounds.id", ondelete="CASCADE", name="fk_wms_return_outbox_inbound")
    )


# -- outbox operations (shared with the carrier) ---------------------------------------------

OutboxT = TypeVar("OutboxT", bound=WebhookOutboxMixin)


def due_webhooks(s: Session, model: type[OutboxT], now: datetime, limit: int = 100) -> list[OutboxT]:
    """Undelivered webhooks whose next attempt is due, oldest first."""
    stmt = (
        select(model)
        .where(model.delivered_at.is_(None), model.next_attempt_at <= now)
        .order_by(model.id)
        .limit(limit)
    )
    return list(s.scalars(stmt))


def claim_webhook(
    s: Session, model: type[OutboxT], row_id: int, attempts_seen: int, lease_until: datetime
) -> bool:
    """Take the row for one delivery attempt; False when another sender got there first.

    The lease (``next_attempt_at`` pushed forward) lets a crashed sender's row be retried.
    """
    stmt = (
        update(model)
        .where(model.id == row_id, model.attempts == attempts_seen, model.delivered_at.is_(None))
        .values(attempts=attempts_seen + 1, next_attempt_at=lease_until)
        .execution_options(synchronize_session=False)
    )
    return rowcount(s.execute(stmt)) == 1


def webhook_delivered(s: Session, model: type[OutboxT], row_id: int, now: datetime) -> None:
    stmt = (
        update(model)
        .where(model.id == row_id)
        .values(delivered_at=now, last_error=None)
        .execution_options(synchronize_session=False)
    )
    s.execute(stmt)


def webhook_failed(s: Session, model: type[OutboxT], row_id: int, retry_at: datetime, error: str) -> None:
    stmt = (
        update(model)
        .where(model.id == row_id, model.delivered_at.is_(None))
        .values(next_attempt_at=retry_at, last_error=error[:500])
        .execution_options(synchronize_session=False)
    )
    s.execute(stmt)


def retry_delay(attempts: int, base_s: float, max_s: float) -> timedelta:
    """Exponential backoff after the ``attempts``-th failed delivery, capped."""
    return timedelta(seconds=min(max_s, base_s * 2 ** max(0, attempts - 1)))


# -- read helpers (tests, CLI) -----------------------------------------------------------------


@dataclass(frozen=True)
class FulfillmentLineRecord:
    line_id: str
    sku: str
    quantity: int


@dataclass(frozen=True)
class FulfillmentOrderRecord:
    """A detached snapshot of a fulfillment order, safe to use after the session closed."""

    fulfillment_id: str
    order_key: str
    order_name: str | None
    location: str
    status: FulfillmentStatus
    lines: tuple[FulfillmentLineRecord, ...]
    ship_to: dict[str, Any] | None
    shipping_method: str | None
    created_at: datetime
    status_changed_at: datetime
    cancel_reason: str | None
    carrier: str | None
    service: str | None
    tracking_number: str | None
    shipped_at: datetime | None


@dataclass(frozen=True)
class WebhookRecord:
    event_id: str
    event_type: str
    body: str
    attempts: int
    delivered_at: datetime | None
    last_error: str | None


def to_record(fo: FulfillmentOrder) -> FulfillmentOrderRecord:
    return FulfillmentOrderRecord(
        fulfillment_id=fo.fulfillment_id,
        order_key=fo.order_key,
        order_name=fo.order_name,
        location=fo.location,
        status=cast(FulfillmentStatus, fo.status),
        lines=tuple(FulfillmentLineRecord(ln.line_id, ln.sku, ln.quantity) for ln in fo.lines),
        ship_to=fo.ship_to,
        shipping_method=fo.shipping_method,
        created_at=fo.created_at,
        status_changed_at=fo.status_changed_at,
        cancel_reason=fo.cancel_reason,
        carrier=fo.carrier,
        service=fo.service,
        tracking_number=fo.tracking_number,
        shipped_at=fo.shipped_at,
    )


def list_fulfillment_orders(store: Store, order_key: str | None = None) -> list[FulfillmentOrderRecord]:
    """Fulfillment orders, oldest first; only one order's when ``order_key`` is given."""
    stmt = (
        select(FulfillmentOrder).options(selectinload(FulfillmentOrder.lines)).order_by(FulfillmentOrder.id)
    )
    if order_key is not None:
        stmt = stmt.where(FulfillmentOrder.order_key == order_key)
    with store.session() as s:
        return [to_record(fo) for fo in s.scalars(stmt)]


def get_fulfillment_order(store: Store, fulfillment_id: str) -> FulfillmentOrderRecord | None:
    pk = parse_fulfillment_id(fulfillment_id)
    if pk is None:
        return None
    with store.session() as s:
        fo = s.get(FulfillmentOrder, pk, options=[selectinload(FulfillmentOrder.lines)])
        return to_record(fo) if fo is not None else None


def list_wms_webhooks(store: Store, fulfillment_id: str | None = None) -> list[WebhookRecord]:
    """The warehouse's webhooks (delivered or pending), oldest first."""
    stmt = select(WmsWebhookOutbox).order_by(WmsWebhookOutbox.id)
    if fulfillment_id is not None:
        pk = parse_fulfillment_id(fulfillment_id)
        stmt = stmt.where(WmsWebhookOutbox.fulfillment_order_id == (pk if pk is not None else -1))
    with store.session() as s:
        return [
            WebhookRecord(w.event_id, w.event_type, w.body, w.attempts, w.delivered_at, w.last_error)
            for w in s.scalars(stmt)
        ]


@dataclass(frozen=True)
class ReturnInboundRecord:
    inbound_id: str
    return_key: str
    rma_id: str
    location: str
    status: ReturnInboundStatus
    lines: tuple[FulfillmentLineRecord, ...]
    received_at: datetime | None


def list_return_inbounds(store: Store, return_key: str | None = None) -> list[ReturnInboundRecord]:
    stmt = select(ReturnInbound).options(selectinload(ReturnInbound.lines)).order_by(ReturnInbound.id)
    if return_key is not None:
        stmt = stmt.where(ReturnInbound.return_key == return_key)
    with store.session() as s:
        return [
            ReturnInboundRecord(
                inbound_id=r.inbound_id,
                return_key=r.return_key,
                rma_id=r.rma_id,
                location=r.location,
                status=cast(ReturnInboundStatus, r.status),
                lines=tuple(FulfillmentLineRecord(ln.line_id, ln.sku, ln.quantity) for ln in r.lines),
                received_at=r.received_at,
            )
            for r in s.scalars(stmt)
        ]


def list_return_webhooks(store: Store) -> list[WebhookRecord]:
    """The warehouse's return receipts (delivered or pending), oldest first."""
    with store.session() as s:
        return [
            WebhookRecord(w.event_id, w.event_type, w.body, w.attempts, w.delivered_at, w.last_error)
            for w in s.scalars(select(WmsReturnOutbox).order_by(WmsReturnOutbox.id))
        ]
