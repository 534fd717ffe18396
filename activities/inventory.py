"""Inventory activities: apply events to the ledger, work out and push what channels must hear."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from temporalio import activity

from activities import names
from activities.errors import adapter_errors
from adapters.channels.port import ChannelPort, ChannelReader, CompareAndSetInventory
from adapters.errors import CompareMismatchError, PermanentError
from canonical import ChannelAvailability, InventoryEvent, StockPosition
from orchestration.inventory_models import MismatchResolution, PendingSync, PushAck
from orchestration.metrics import sync_lag_histogram
from store import findings as fs
from store.channel_stock import record_seen, record_told, told
from store.db import Store

log = structlog.get_logger(__name__)


class Ledger(Protocol):
    """What the activities need from the inventory ledger (adapters.erp.inventory)."""

    def apply(self, event: InventoryEvent) -> list[StockPosition]: ...

    def changes_since(self, seq: int) -> tuple[list[str], int]: ...

    def earliest_change_after(self, seq: int, up_to: int) -> datetime | None: ...

    def channel_availability(self, channel: str, skus: list[str]) -> list[ChannelAvailability]: ...

    def positions(self, sku: str | None = None, location: str | None = None) -> list[StockPosition]: ...


class InventoryActivities:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        channel: Callable[[str], ChannelPort],
        *,
        journal_channel_sales: bool = False,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.channel = channel
        # Off by default: a storefront lowers its own number for its web orders before the ERP
        # reserves them, so a drop is only a sale the platform will never hear of where the
        # channel's stock moves by itself (POS-only stores): journalling it elsewhere counts twice.
        self.journal_channel_sales = journal_channel_sales

    def all(self) -> list[Callable[..., Any]]:
        return [self.apply, self.pending_for_channel, self.push_to_channel, self.resolve_mismatch]

    @activity.defn(name=names.INVENTORY_APPLY)
    async def apply(self, event: InventoryEvent) -> list[StockPosition]:
        with adapter_errors():
            return await asyncio.to_thread(self.ledger.apply, event)

    @activity.defn(name=names.INVENTORY_PENDING)
    async def pending_for_channel(self, channel: str, since_seq: int) -> PendingSync:
        """SKUs changed in the ledger since ``since_seq`` whose sellable number differs from what
        the channel was last told (a change that nets to nothing is not pushed)."""

        def work() -> PendingSync:
            skus, seq = self.ledger.changes_since(since_seq)
            if not skus:
                return PendingSync(channel=channel, levels=[], seq=seq, changed_at=None)
            now = self.ledger.channel_availability(channel, sorted(set(skus)))
            last = {t.sku: t.quantity for t in told(self.store, channel, [a.sku for a in now])}
            changed = [a for a in now if last.get(a.sku) != a.available]
            if not changed:
                return PendingSync(channel=channel, levels=[], seq=seq, changed_at=None)
            # The lag runs from the oldest change this push carries, not from when it was noticed.
            since = self.ledger.earliest_change_after(since_seq, seq) or datetime.now(UTC)
            return PendingSync(channel=channel, levels=changed, seq=seq, changed_at=since)

        with adapter_errors():
            return await asyncio.to_thread(work)

    @activity.defn(name=names.INVENTORY_PUSH)
    async def push_to_channel(
        self, channel: str, levels: list[ChannelAvailability], seq: int, changed_at: datetime | None, key: str
    ) -> PushAck:
        port = self.channel(channel)
        with adapter_errors():
            try:
                if isinstance(port, CompareAndSetInventory) and port.compares_inventory:
                    # Compare with what we last told the channel: if its number moved since (a POS
                    # sale, a manual edit), nothing is overwritten and the sync resolves it.
                    last = await asyncio.to_thread(told, self.store, channel, [a.sku for a in levels])
                    compare = {t.sku: t.quantity for t in last}
                    ack = await port.push_inventory_compared(levels, compare, key)
                else:
                    ack = await port.push_inventory(levels, key)
            except CompareMismatchError as err:
                return PushAck(channel=channel, reference="", mismatched=sorted(err.mismatched))
        acknowledged = datetime.now(UTC)
        changed = changed_at or acknowledged
        await asyncio.to_thread(
            record_told,
            self.store,
            channel,
            [(a.sku, a.available) for a in levels],
            seq,
            changed,
            ack.reference,
        )
        # Recorded here, not in the workflow: the acknowledgement time is known only here, and the
        # figure is the one channel_stock keeps (``retail inventory show``). Activities never
        # replay; a push retried after a lost completion records once more (a slight overcount).
        sync_lag_histogram(activity.metric_meter(), channel).record(
            max(0.0, (acknowledged - changed).total_seconds())
        )
        return PushAck(channel=ack.channel, reference=ack.reference)

    @activity.defn(name=names.INVENTORY_RESOLVE_MISMATCH)
    async def resolve_mismatch(
        self, channel: str, levels: list[ChannelAvailability], mismatched: list[str], give_up: list[str]
    ) -> MismatchResolution:
        """After a compare mismatch: read what the channel shows for the mismatched SKUs, journal a
        drop below what we told it as a channel sale when the channel sells on its own
        (``RETAIL_INVENTORY_JOURNAL_CHANNEL_SALES``; idempotent event id, so a retried activity
        journals once), take the channel's number as the next compare value, and recompute the
        batch from the ledger. ``give_up`` SKUs (mismatched too often) become a finding instead
        and leave the batch."""
        port = self.channel(channel)
        if not isinstance(port, ChannelReader):
            raise TypeError(f"channel {channel} compares but cannot be read back")
        with adapter_errors():
            shows = await port.inventory_levels(list(mismatched))
        targets = {a.sku: a for a in levels}

        def work() -> MismatchResolution:
            last = {t.sku: t for t in told(self.store, channel, list(mismatched))}
            journalled: list[str] = []
            for sku in mismatched:
                seen, before, target = shows.get(sku), last.get(sku), targets.get(sku)
                if seen is None or before is None or target is None or seen >= before.quantity:
                    # Higher than we told (a manual edit, a restock on the channel) is not a sale:
                    # the ledger's number goes out again. Never told: nothing to compare with.
                    continue
                if seen == target.available:
                    continue  # our own earlier write went through (its answer was lost): no sale
                if not self.journal_channel_sales:
                    continue  # the ledger's number goes out again; the orders reach it as orders
                event = self._channel_sale(channel, target, before.quantity, seen, before.ledger_seq)
                if event is not None:
                    try:
                        self.ledger.apply(event)
                    except PermanentError as err:
                        # The same observation journalled before at another location (a retry after
                        # the ledger moved): it is in the journal once, which is what matters.
                        if err.reason != "event_id_reuse":
                            raise
                    journalled.append(event.event_id)
            record_seen(self.store, channel, [(sku, shows[sku]) for sku in mismatched if sku in shows])
            if give_up:
                fs.record_findings(
                    self.store,
                    [
                        fs.NewFinding(
                            fs.INVENTORY_COMPARE_CONFLICT,
                            [channel, "ledger"],
                            {"channel": channel, "sku": sku},
                            sku,
                            f"{channel} kept changing {sku} between our reads and writes: it shows"
                            f" {shows.get(sku)}; left for the next change or the inventory reconciliation",
                        )
                        for sku in give_up
                    ],
                )
            keep = [a.sku for a in levels if a.sku not in give_up]
            recomputed = self.ledger.channel_availability(channel, keep) if keep else []
            return MismatchResolution(
                seen={sku: shows[sku] for sku in mismatched if sku in shows},
                journalled=journalled,
                levels=recomputed,
            )

        with adapter_errors():
            return await asyncio.to_thread(work)

    def _channel_sale(
        self, channel: str, target: ChannelAvailability, told_qty: int, seen: int, told_seq: int
    ) -> InventoryEvent | None:
        """The channel sale that explains a drop from ``told_qty`` to ``seen``, at the ledger location
        of the channel's with the most available (the one the sale most likely came out of)."""
        candidates = [p for p in self.ledger.positions(target.sku) if p.location in target.locations]
        if not candidates:
            log.warning("inventory_channel_sale_unplaced", channel=channel, sku=target.sku)
            return None
        where = min(candidates, key=lambda p: (-p.available, -p.on_hand, p.location))
        # Derived from the observation, never random: a retried activity replays the same event.
        raw = f"{channel}:cas:{target.sku}:{told_seq}:{told_qty}>{seen}"
        event_id = raw if len(raw) <= 200 else f"{channel}:cas:{hashlib.sha256(raw.encode()).hexdigest()}"
        return InventoryEvent(
            event_id=event_id,
            kind="channel_sale",
            sku=target.sku,
            location=where.location,
            quantity=told_qty - seen,
            source=f"channel:{channel}",
            reference=f"compare mismatch: told {told_qty}, {channel} shows {seen}",
            occurred_at=datetime.now(UTC),
        )
