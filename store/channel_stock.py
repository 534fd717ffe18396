"""What each channel was last told about each SKU, and when: the sync's memory.

The channel sync pushes absolute numbers; this table lets it skip SKUs whose number did not
change, and gives the lag from the ledger change to the channel's acknowledgement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, Store


class ChannelStock(Base):
    __tablename__ = "channel_stock"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(128), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    ledger_seq: Mapped[int] = mapped_column(Integer, doc="the journal position the number reflects")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), doc="when the ledger changed")
    told_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), doc="when the channel acknowledged")
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)


@dataclass(frozen=True)
class ToldLevel:
    channel: str
    sku: str
    quantity: int
    ledger_seq: int
    changed_at: datetime
    told_at: datetime
    reference: str | None

    @property
    def lag_s(self) -> float:
        return max(0.0, (self.told_at - self.changed_at).total_seconds())


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _view(row: ChannelStock) -> ToldLevel:
    return ToldLevel(
        row.channel,
        row.sku,
        row.quantity,
        row.ledger_seq,
        _aware(row.changed_at),
        _aware(row.told_at),
        row.reference,
    )


def told(store: Store, channel: str | None = None, skus: list[str] | None = None) -> list[ToldLevel]:
    with store.session() as s:
        q = select(ChannelStock).order_by(ChannelStock.channel, ChannelStock.sku)
        if channel is not None:
            q = q.where(ChannelStock.channel == channel)
        if skus is not None:
            q = q.where(ChannelStock.sku.in_(skus))
        return [_view(r) for r in s.scalars(q)]


def record_told(
    store: Store,
    channel: str,
    levels: list[tuple[str, int]],
    ledger_seq: int,
    changed_at: datetime,
    reference: str | None,
) -> list[ToldLevel]:
    """Remember what the channel acknowledged. A record never goes back to an older ledger
    position (a slow, retried push must not overwrite a newer one)."""
    now = datetime.now(UTC)
    with store.session() as s:
        out: list[ToldLevel] = []
        for sku, qty in levels:
            row = s.get(ChannelStock, (channel, sku), with_for_update=True)
            if row is None:
                row = ChannelStock(
                    channel=channel,
                    sku=sku,
                    quantity=qty,
                    ledger_seq=ledger_seq,
                    changed_at=changed_at,
                    told_at=now,
                    reference=reference,
                )
                s.add(row)
            elif ledger_seq >= row.ledger_seq:
                row.quantity, row.ledger_seq, row.changed_at = qty, ledger_seq, changed_at
                row.told_at, row.reference = now, reference
            out.append(_view(row))
        return out


def record_seen(store: Store, channel: str, levels: list[tuple[str, int]]) -> None:
    """Take what the channel shows now as the basis of the next compare-and-set (after a mismatch
    was read back and journalled). The ledger position and the lag figures stay as they were."""
    now = datetime.now(UTC)
    with store.session() as s:
        for sku, qty in levels:
            row = s.get(ChannelStock, (channel, sku), with_for_update=True)
            if row is None:
                s.add(
                    ChannelStock(
                        channel=channel,
                        sku=sku,
                        quantity=qty,
                        ledger_seq=0,
                        changed_at=now,
                        told_at=now,
                        reference="seen",
                    )
                )
            else:
                row.quantity, row.reference = qty, "seen"


def worst_lag(store: Store, since: datetime) -> dict[str, float]:
    """Per channel, the longest ledger-change-to-acknowledgement lag among the numbers it
    acknowledged since ``since`` (each SKU's latest push only)."""
    q = select(ChannelStock.channel, ChannelStock.changed_at, ChannelStock.told_at).where(
        ChannelStock.told_at >= since
    )
    out: dict[str, float] = {}
    with store.session() as s:
        for channel, changed_at, told_at in s.execute(q):
            lag = max(0.0, (_aware(told_at) - _aware(changed_at)).total_seconds())
            out[channel] = max(lag, out.get(channel, 0.0))
    return out
