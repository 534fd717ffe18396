"""The builtin carrier's tables: shipping labels (one per tracking number) and the outbox of
signed tracking webhooks the carrier owes the platform."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast, get_args

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from backoffice.wms import WebhookOutboxMixin, WebhookRecord
from store.columns import UtcDateTime, rowcount
from store.db import Base, Store

LabelStatus = Literal["label_created", "in_transit", "delivered"]
LABEL_STATUSES: tuple[str, ...] = get_args(LabelStatus)


class CarrierLabel(Base):
    """A bought label. ``handed_over_at`` is set when the warehouse's shipment report was
    acknowledged by the platform: only then does the parcel start moving (and tracking)."""

    __tablename__ = "carrier_labels"
    __table_args__ = (
        Index("ux_carrier_labels_tracking_number", "tracking_number", unique=True),
        Index("ux_carrier_labels_idempotency_key", "idempotency_key", unique=True),
        Index("ix_carrier_labels_order_key", "order_key"),
        Index("ix_carrier_labels_status", "status", "status_changed_at"),
        CheckConstraint(
            "status IN ('label_created', 'in_transit', 'delivered')",
            name="ck_carrier_labels_status",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tracking_number: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    order_key: Mapped[str] = mapped_column(String(255))
    carrier: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(64))
    ship_from: Mapped[str] = mapped_column(String(64))
    ship_to: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    label_url: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16))
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    handed_over_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class CarrierWebhookOutbox(WebhookOutboxMixin, Base):
    __tablename__ = "carrier_webhook_outbox"
    __table_args__ = (
        Index("ux_carrier_webhook_outbox_event_id", "event_id", unique=True),
        Index("ix_carrier_webhook_outbox_pending", "delivered_at", "next_attempt_at"),
        Index("ix_carrier_webhook_outbox_label_id", "label_id"),
    )

    label_id: Mapped[int] = mapped_column(
        ForeignKey("carrier_labels.id", ondelete="CASCADE", name="fk_carrier_webhook_outbox_label")
    )


class CarrierReturnLabel(Base):
    """Marks a label as a return label (migration 0008_returns, no foreign key across branches):
    its tracking webhooks name the return (``return_key``) instead of an order."""

    __tablename__ = "carrier_return_labels"
    __table_args__ = (Index("ix_carrier_return_labels_return_key", "return_key"),)

    tracking_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    return_key: Mapped[str] = mapped_column(String(255))
    to_location: Mapped[str] = mapped_column(String(64))
    ship_from: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


def return_key_of(s: Session, tracking_number: str) -> str | None:
    return s.scalar(
        select(CarrierReturnLabel.return_key).where(CarrierReturnLabel.tracking_number == tracking_number)
    )


def hand_over(s: Session, tracking_number: str, at: datetime) -> bool:
    """The parcel leaves the warehouse with the carrier; idempotent (first hand-over wins)."""
    stmt = (
        update(CarrierLabel)
        .where(CarrierLabel.tracking_number == tracking_number, CarrierLabel.handed_over_at.is_(None))
        .values(handed_over_at=at, status_changed_at=at)
        .execution_options(synchronize_session=False)
    )
    return rowcount(s.execute(stmt)) == 1


# -- read helpers (tests, CLI) -----------------------------------------------------------------


@dataclass(frozen=True)
class LabelRecord:
    tracking_number: str
    order_key: str
    carrier: str
    service: str
    ship_from: str
    ship_to: dict[str, Any] | None
    label_url: str
    created_at: datetime
    status: LabelStatus
    status_changed_at: datetime
    handed_over_at: datetime | None


def to_label_record(label: CarrierLabel) -> LabelRecord:
    return LabelRecord(
        tracking_number=label.tracking_number,
        order_key=label.order_key,
        carrier=label.carrier,
        service=label.service,
        ship_from=label.ship_from,
        ship_to=label.ship_to,
        label_url=label.label_url,
        created_at=label.created_at,
        status=cast(LabelStatus, label.status),
        status_changed_at=label.status_changed_at,
        handed_over_at=label.handed_over_at,
    )


def list_labels(store: Store, order_key: str | None = None) -> list[LabelRecord]:
    """Labels, oldest first; only one order's when ``order_key`` is given."""
    stmt = select(CarrierLabel).order_by(CarrierLabel.id)
    if order_key is not None:
        stmt = stmt.where(CarrierLabel.order_key == order_key)
    with store.session() as s:
        return [to_label_record(label) for label in s.scalars(stmt)]


def list_carrier_webhooks(store: Store, tracking_number: str | None = None) -> list[WebhookRecord]:
    """The carrier's tracking webhooks (delivered or pending), oldest first."""
    stmt = select(CarrierWebhookOutbox).order_by(CarrierWebhookOutbox.id)
    if tracking_number is not None:
        stmt = stmt.join(CarrierLabel, CarrierLabel.id == CarrierWebhookOutbox.label_id).where(
            CarrierLabel.tracking_number == tracking_number
        )
    with store.session() as s:
        return [
            WebhookRecord(w.event_id, w.event_type, w.body, w.attempts, w.delivered_at, w.last_error)
            for w in s.scalars(stmt)
        ]
