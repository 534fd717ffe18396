"""The inventory journal and per-channel selling policy.

Positions (on hand and reserved per sku and location) are the builtin ERP's ``erp_stock``
rows; every change to them appends one row per position touched to ``inventory_movements``,
the append-only journal. Its ``id`` is the sequence a channel sync reads from
(``changes_since``). The rules (what each movement kind does, idempotency, locking) live in
``adapters/erp/inventory.py``; this module holds the tables and plain views only.

The tables sit on their own migration branch (``0006_inventory``) and have no foreign keys to
other branches' tables: sku and location are the journal's own copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from canonical.inventory import MovementKind
from store.db import Base

MOVEMENT_KINDS: tuple[str, ...] = get_args(MovementKind)

# A 64-bit id on PostgreSQL; SQLite's INTEGER PRIMARY KEY (the rowid) is already 64-bit.
JOURNAL_ID = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(at: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were stored in UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _kinds_check() -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in MOVEMENT_KINDS) + ")"


class InventoryMovement(Base):
    """One change to one position, never updated or deleted.

    ``event_id`` + ``leg`` is unique: an event touches one position (leg 0) or, for a
    transfer, two (0 = out of ``location``, 1 = into the destination). ERP operations that
    touch several positions (an order's allocations) write one leg per allocation.
    ``quantity`` is the event's own figure (for a cycle count: the counted on hand); the
    deltas are what it did; the ``*_after`` columns are the position right after it.
    ``stale`` marks a cycle count older than the newest count already applied at its position:
    journalled (its id is taken, a replay answers the same), but it changed nothing.
    """

    __tablename__ = "inventory_movements"
    __table_args__ = (
        UniqueConstraint("event_id", "leg", name="uq_inventory_movements_event_leg"),
        CheckConstraint(_kinds_check(), name="ck_inventory_movements_kind"),
        Index("ix_inventory_movements_sku_id", "sku", "id"),
    )

    id: Mapped[int] = mapped_column(JOURNAL_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200))
    leg: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    sku: Mapped[str] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer)
    on_hand_delta: Mapped[int] = mapped_column(Integer)
    reserved_delta: Mapped[int] = mapped_column(Integer)
    on_hand_after: Mapped[int] = mapped_column(Integer)
    reserved_after: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(100))
    reference: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stale: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class InventoryChannelPolicy(Base):
    """What a channel may sell: the locations it sells from (NULL = all) and a safety buffer
    held back from it per SKU. A channel without a row sells from all locations, buffer 0."""

    __tablename__ = "inventory_channel_policies"
    __table_args__ = (CheckConstraint("safety_buffer >= 0", name="ck_inventory_channel_policies_buffer"),)

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    locations: Mapped[list[str] | None] = mapped_column(JSON)
    safety_buffer: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


# -- views ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    """A journal row, detached from its session."""

    seq: int
    event_id: str
    leg: int
    kind: str
    sku: str
    location: str
    quantity: int
    on_hand_delta: int
    reserved_delta: int
    on_hand_after: int
    reserved_after: int
    source: str
    reference: str | None
    occurred_at: datetime
    recorded_at: datetime
    stale: bool = False  # a cycle count older than the position's newest: changed nothing

    @property
    def available_after(self) -> int:
        return max(0, self.on_hand_after - self.reserved_after)

    @classmethod
    def of(cls, m: InventoryMovement) -> Movement:
        return cls(
            seq=m.id,
            event_id=m.event_id,
            leg=m.leg,
            kind=m.kind,
            sku=m.sku,
            location=m.location,
            quantity=m.quantity,
            on_hand_delta=m.on_hand_delta,
            reserved_delta=m.reserved_delta,
            on_hand_after=m.on_hand_after,
            reserved_after=m.reserved_after,
            source=m.source,
            reference=m.reference,
            occurred_at=aware(m.occurred_at),
            recorded_at=aware(m.recorded_at),
            stale=bool(m.stale),
        )


@dataclass(frozen=True)
class ChannelPolicy:
    channel: str
    locations: list[str] | None  # None: every location
    safety_buffer: int
