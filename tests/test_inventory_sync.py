"""InventoryAdjustment and the per-channel sync on a real Temporal server: absolute numbers reach
every channel, bursts coalesce, a rate-limiting channel only slows the sync down."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from activities.inventory import InventoryActivities
from adapters.channels.port import ChannelPort
from adapters.erp.inventory import InventoryLedger
from adapters.errors import PermanentError, RateLimitedError
from backoffice.bootstrap import open_store
from canonical import ChannelAvailability, InventoryEvent, Money, Shipment
from canonical.documents import ChannelAck
from orchestration.inventory_models import ChannelSyncInput, InventoryAdjustmentInput, SyncPolicy, SyncState
from store.channel_stock import told
from store.db import Store
from tests.seed import seed_catalog
from workflows.inventory import (
    ChannelInventorySync,
    InventoryAdjustment,
    adjustment_workflow_id,
    sync_workflow_id,
)

CHANNELS = ["shopify", "amazon"]


@dataclass
class RecordingChannel:
    """A channel that records every push, and answers 429 to the first ``limited`` calls."""

    name: str
    limited: int = 0
    rejected: int = 0
    calls: list[list[tuple[str, int]]] = field(default_factory=list)
    refused: int = 0

    async def push_inventory(self, levels: list[ChannelAvailability], idempotency_key: str) -> ChannelAck:
        if self.rejected > 0:
            self.rejected -= 1
            raise PermanentError("401 token expired", reason="unauthorized", system=f"channel:{self.name}")
        if self.refused < self.limited:
            self.refused += 1
            raise RateLimitedError("429 Too Many Requests", retry_after=0.3, system=f"channel:{self.name}")
        self.calls.append([(a.sku, a.available) for a in levels])
        return ChannelAck(channel=self.name, reference=f"push-{len(self.calls)}")

    async def notify_fulfillment(self, external_order_id: str, shipment: Shipment, key: str) -> ChannelAck:
        raise NotImplementedError

    async def refund_payment(
        self, external_order_id: str, amount: Money, reason: str, key: str
    ) -> ChannelAck:
        raise NotImplementedError

    async def notify_cancelled(self, external_order_id: str, reason: str, key: str) -> ChannelAck:
        raise NotImplementedError


@dataclass
class Rig:
    client: Client
    store: Store
    ledger: InventoryLedger
    channels: dict[str, RecordingChannel]
    task_queue: str

    async def event(self, kind: str, sku: str, location: str, qty: int, **kw: str) -> None:
        ev = InventoryEvent(
            event_id=f"ev-{uuid.uuid4().hex[:10]}",
            kind=kind,
            sku=sku,
            location=location,
            quantity=qty,  # type: ignore[arg-type]
            source=kw.pop("source", "wms"),
            occurred_at=datetime.now(UTC),
            **kw,
        )
        await self.client.execute_workflow(
            InventoryAdjustment.run,
            InventoryAdjustmentInput(event=ev, channels=list(self.channels)),
            id=adjustment_workflow_id(ev.event_id),
            task_queue=self.task_queue,
        )

    def sync(self, channel: str) -> WorkflowHandle[ChannelInventorySync, None]:
        return self.client.get_workflow_handle_for(ChannelInventorySync.run, sync_workflow_id(channel))

    async def until_told(self, channel: str, sku: str, qty: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = {t.sku: t.quantity for t in told(self.store, channel)}.get(sku)
            if last == qty:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{channel} was told {last} for {sku}, expected {qty}")


@asynccontextmanager
async def rig(client: Client, database_url: str, limited: int = 0, rejected: int = 0) -> AsyncIterator[Rig]:
    store = open_store(database_url)
    seed_catalog(store)
    ledger = InventoryLedger(store)
    channels = {name: RecordingChannel(name, limited=limited, rejected=rejected) for name in CHANNELS}
    lookup: Callable[[str], ChannelPort] = lambda name: channels[name]  # noqa: E731
    tq = f"inv-{uuid.uuid4().hex[:8]}"
    acts = InventoryActivities(store, ledger, lookup)
    policy = SyncPolicy(debounce_s=0.3, poll_s=0.5, batch_size=50, activity_timeout_s=5)
    async with Worker(
        client, task_queue=tq, workflows=[InventoryAdjustment, ChannelInventorySync], activities=acts.all()
    ):
        for name in CHANNELS:
            await client.start_workflow(
                ChannelInventorySync.run,
                ChannelSyncInput(channel=name, policy=policy),
                id=sync_workflow_id(name),
                task_queue=tq,
                id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
            )
        try:
            yield Rig(client, store, ledger, channels, tq)
        finally:
            for name in CHANNELS:
                await client.get_workflow_handle(sync_workflow_id(name)).terminate("test over")
            store.dispose()


async def test_receipt_and_cycle_count_reach_every_channel_as_absolute_numbers(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with rig(client, database_url) as r:
        await r.event("receipt", "MUG-01", "WH-EAST", 5)
        for ch in CHANNELS:
            await r.until_told(ch, "MUG-01", 105)
        await r.event("cycle_count", "MUG-01", "WH-EAST", 40)
        for ch in CHANNELS:
            await r.until_told(ch, "MUG-01", 40)
        pushed = [q for call in r.channels["amazon"].calls for sku, q in call if sku == "MUG-01"]
        assert pushed[-1] == 40 and all(q in (100, 105, 40) for q in pushed)


async def test_a_burst_of_events_coalesces_into_few_channel_calls(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with rig(client, database_url) as r:
        await r.until_told("shopify", "MUG-01", 100)  # the first look pushes the catalogue as it is
        before = len(r.channels["shopify"].calls)
        await asyncio.gather(*[r.event("adjustment", "MUG-01", "WH-EAST", -1) for _ in range(20)])
        await r.until_told("shopify", "MUG-01", 80)
        calls = len(r.channels["shopify"].calls) - before
        assert 1 <= calls <= 6, f"20 events took {calls} channel calls"
        state: SyncState = await r.sync("shopify").query(ChannelInventorySync.state)
        assert state.skus_pushed >= 1


async def test_a_rate_limiting_channel_slows_the_sync_without_losing_the_last_value(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with rig(client, database_url, limited=3) as r:
        await r.event("receipt", "TEE-BLK-M", "WH-EAST", 2)
        await r.event("adjustment", "TEE-BLK-M", "WH-EAST", -5)
        for ch in CHANNELS:
            await r.until_told(ch, "TEE-BLK-M", 7)
            assert r.channels[ch].refused == 3


async def test_a_pos_sale_at_one_channel_lowers_the_ledger_and_the_other_channels(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with rig(client, database_url) as r:
        await r.until_told("amazon", "HAT-RED", 6)
        await r.event("channel_sale", "HAT-RED", "WH-WEST", 2, source="channel:shopify")
        await r.until_told("amazon", "HAT-RED", 4)
        west = [p for p in r.ledger.positions("HAT-RED") if p.location == "WH-WEST"]
        assert west[0].on_hand == 1


async def test_a_channel_refusing_a_push_for_good_does_not_stop_its_sync(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with rig(client, database_url, rejected=1) as r:
        # The first push is refused (say, an expired token, then renewed): the sync stays up,
        # records why, and the next round delivers the numbers.
        await r.until_told("shopify", "MUG-01", 100)
        state: SyncState = await r.sync("shopify").query(ChannelInventorySync.state)
        assert state.last_error is not None and "unauthorized" in state.last_error
        await r.event("receipt", "MUG-01", "WH-EAST", 1)
        await r.until_told("shopify", "MUG-01", 101)
