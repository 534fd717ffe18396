"""Reconciliation's working tables and its set-based order comparison.

* ``reconcile_watermarks``: per kind and scope (a channel), the end of the last window compared,
  so the next run starts there (minus an overlap: late writes at the edge are seen twice, never
  missed).
* ``reconcile_channel_orders``: what a channel listed for one run (staged page by page), so the
  comparison with the ERP and the webhook inbox is a handful of joins instead of one lookup per
  order. A run's rows are deleted when it ends; rows of runs that died are purged by later runs.
* ``inventory_accuracy``: per channel and run, how many SKUs matched what the ledger says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.db import Base, Store

# Money compared across systems: SQLite keeps NUMERIC as a float, so sums are compared within
# half the smallest minor unit (3-decimal currencies) and the Python side confirms exactly.
TOLERANCE = Decimal("0.0005")


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


class ReconcileWatermark(Base):
    __tablename__ = "reconcile_watermarks"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    until_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StagedChannelOrder(Base):
    __tablename__ = "reconcile_channel_orders"
    __table_args__ = (Index("ix_reconcile_channel_orders_staged_at", "staged_at"),)

    run_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(300))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cancelled: Mapped[bool] = mapped_column(Boolean)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    lines_total: Mapped[Decimal | None] = mapped_column(nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    staged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InventoryAccuracyRow(Base):
    __tablename__ = "inventory_accuracy"
    __table_args__ = (Index("ix_inventory_accuracy_channel_measured", "channel", "measured_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(64))
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    skus_compared: Mapped[int] = mapped_column(Integer)
    skus_matching: Mapped[int] = mapped_column(Integer)
    skus_healed: Mapped[int] = mapped_column(Integer)
    run: Mapped[str | None] = mapped_column(String(300), nullable=True)


# -- watermarks ---------------------------------------------------------------------------------


def get_watermark(store: Store, kind: str, scope: str) -> datetime | None:
    with store.reading() as s:
        row = s.get(ReconcileWatermark, (kind, scope))
        return aware(row.until_at) if row is not None else None


def advance_watermark(store: Store, kind: str, scope: str, until: datetime) -> datetime:
    """Move the watermark to ``until``; never backwards (a late, slow run must not rewind it)."""
    with store.session() as s:
        row = s.get(ReconcileWatermark, (kind, scope), with_for_update=True)
        if row is None:
            s.add(ReconcileWatermark(kind=kind, scope=scope, until_at=until, updated_at=utcnow()))
            return until
        if until > aware(row.until_at):
            row.until_at = until
        row.updated_at = utcnow()
        return aware(row.until_at)


# -- staging a channel's orders -------------------------------------------------------------------


@dataclass(frozen=True)
class StagedOrder:
    external_id: str
    workflow_id: str
    name: str | None
    updated_at: datetime
    cancelled: bool
    currency: str | None
    lines_total: Decimal | None
    error: str | None


def _upsert(s: Session, rows: list[dict[str, Any]]) -> None:
    """Insert or replace (an order updated while we paged shows up twice: the later wins)."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        ins: Any = postgresql.insert(StagedChannelOrder)
    else:
        ins = sqlite.insert(StagedChannelOrder)
    cols = ("workflow_id", "name", "updated_at", "cancelled", "currency", "lines_total", "error", "staged_at")
    stmt = ins.on_conflict_do_update(
        index_elements=["run_key", "external_id"], set_={c: ins.excluded[c] for c in cols}
    )
    s.execute(stmt, rows)


def stage_orders(store: Store, run_key: str, orders: Sequence[StagedOrder]) -> int:
    if not orders:
        return 0
    now = utcnow()
    rows = [
        {
            "run_key": run_key,
            "external_id": o.external_id,
            "workflow_id": o.workflow_id,
            "name": o.name,
            "updated_at": o.updated_at,
            "cancelled": o.cancelled,
            "currency": o.currency,
            "lines_total": o.lines_total,
            "error": (o.error or "")[:500] or None,
            "staged_at": now,
        }
        for o in {o.external_id: o for o in orders}.values()
    ]
    with store.session() as s:
        _upsert(s, rows)
    return len(rows)


def clear_stage(store: Store, run_key: str) -> None:
    with store.session() as s:
        s.execute(delete(StagedChannelOrder).where(StagedChannelOrder.run_key == run_key))


def purge_stale_stage(store: Store, older_than: timedelta = timedelta(days=1)) -> int:
    """Rows of runs that died before their comparison (a run lasts minutes, not days)."""
    with store.session() as s:
        result = s.execute(
            delete(StagedChannelOrder).where(StagedChannelOrder.staged_at < utcnow() - older_than)
        )
        return int(getattr(result, "rowcount", 0) or 0)


def staged_count(store: Store, run_key: str) -> int:
    with store.reading() as s:
        q = select(func.count()).select_from(StagedChannelOrder).where(StagedChannelOrder.run_key == run_key)
        return int(s.scalar(q) or 0)


# -- inventory accuracy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Accuracy:
    channel: str
    measured_at: datetime
    skus_compared: int
    skus_matching: int
    skus_healed: int

    @property
    def ratio(self) -> float:
        """Share of SKUs whose channel number matched the ledger (1.0 when nothing to compare)."""
        return self.skus_matching / self.skus_compared if self.skus_compared else 1.0


def record_accuracy(
    store: Store, channel: str, compared: int, matching: int, healed: int, run: str | None
) -> Accuracy:
    now = utcnow()
    with store.session() as s:
        s.add(
            InventoryAccuracyRow(
                channel=channel,
                measured_at=now,
                skus_compared=compared,
                skus_matching=matching,
                skus_healed=healed,
                run=run,
            )
        )
    return Accuracy(channel, now, compared, matching, healed)


def latest_accuracy(store: Store) -> list[Accuracy]:
    """The most recent measurement per channel."""
    a = InventoryAccuracyRow
    newest = select(a.channel, func.max(a.id).label("id")).group_by(a.channel).subquery()
    q = select(a).join(newest, a.id == newest.c.id).order_by(a.channel)
    with store.reading() as s:
        return [
            Accuracy(r.channel, aware(r.measured_at), r.skus_compared, r.skus_matching, r.skus_healed)
            for r in s.scalars(q)
        ]
