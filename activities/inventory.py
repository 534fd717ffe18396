"""Inventory activities: apply events to the ledger, work out and push what channels must hear."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from temporalio import activity

from activities import names
from activities.errors import adapter_errors
from adapters.channels.port import ChannelPort
from canonical import ChannelAvailability, InventoryEvent, StockPosition
from canonical.documents import ChannelAck
from store.channel_stock import record_told, told
from store.db import Store
from workflows.inventory_models import PendingSync
from workflows.metrics import sync_lag_histogram


class Ledger(Protocol):
    """What the activities need from the inventory ledger (adapters.erp.inventory)."""

    def apply(self, event: InventoryEvent) -> list[StockPosition]: ...

    def changes_since(self, seq: int) -> tuple[list[str], int]: ...

    def earliest_change_after(self, seq: int, up_to: int) -> datetime | None: ...

    def channel_availability(self, channel: str, skus: list[str]) -> list[ChannelAvailability]: ...


class InventoryActivities:
    def __init__(self, store: Store, ledger: Ledger, channel: Callable[[str], ChannelPort]) -> None:
        self.store = store
        self.ledger = ledger
        self.channel = channel

    def all(self) -> list[Callable[..., Any]]:
        return [self.apply, self.pending_for_channel, self.push_to_channel]

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
    ) -> ChannelAck:
        with adapter_errors():
            ack = await self.channel(channel).push_inventory(levels, key)
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
        return ack
