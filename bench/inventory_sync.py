"""Inventory sync: event-to-channel lag and channel calls per event.

    .venv/bin/python -m bench.inventory_sync [--events 1000] [--rate 10] [--debounce 0.5] [--unsandboxed]

One Temporal dev server, one fresh store with 200 SKUs (10,000 each at WH-EAST), a worker
running ``InventoryAdjustment`` and ``ChannelInventorySync`` with the real inventory
activities, and three recording channels (like tests/test_inventory_sync.py) that acknowledge
every push at once. After the initial catalogue push, ``--events`` adjustments of -1..-3 on
random SKUs are submitted (``client.start_workflow(InventoryAdjustment.run, ...)``) at
``--rate`` per second (0: all at once).

Every event only lowers its SKU, so each SKU's sellable number strictly decreases: an event is
"on a channel" when the channel acknowledges a push of that SKU at or below the number the
event produced (read back from the journal), i.e. of a ledger state that includes it.

Reported: event-to-channel lag (event submitted -> that acknowledgement) per (event, channel),
event-to-ledger latency (submitted -> the journal row's ``recorded_at``) as the baseline, the
lag as a multiple of the debounce, and channel calls per event.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.inventory import InventoryActivities
from adapters.channels.port import ChannelPort
from adapters.erp.inventory import InventoryLedger
from backoffice.bootstrap import open_store
from bench._common import (
    STATS_HEADERS,
    Stats,
    backend,
    bench_dir,
    bench_skus,
    database_url,
    emit_json,
    loadavg,
    seed_skus,
    table,
    temporal_env,
)
from canonical import ChannelAvailability, InventoryEvent, Money, Shipment
from canonical.documents import ChannelAck
from canonical.returns import ReturnNotice
from orchestration.inventory_models import (
    ChannelSyncInput,
    InventoryAdjustmentInput,
    SyncPolicy,
    adjustment_workflow_id,
    sync_workflow_id,
)
from store.db import Store
from store.inventory import InventoryMovement
from workflows.inventory import ChannelInventorySync, InventoryAdjustment

CHANNELS = ["shopify", "amazon", "ebay"]
SKUS = 200
LOCATION = "WH-EAST"
ON_HAND = 10_000


@dataclass
class RecordingChannel:
    """Acknowledges every push at once and records when, and what it was told."""

    name: str
    calls: list[tuple[float, dict[str, int]]] = field(default_factory=list)

    async def push_inventory(self, levels: list[ChannelAvailability], idempotency_key: str) -> ChannelAck:
        self.calls.append((time.monotonic(), {a.sku: a.available for a in levels}))
        return ChannelAck(channel=self.name, reference=f"push-{len(self.calls)}")

    async def notify_fulfillment(self, external_order_id: str, shipment: Shipment, key: str) -> ChannelAck:
        raise NotImplementedError

    async def refund_payment(
        self, external_order_id: str, amount: Money, reason: str, key: str
    ) -> ChannelAck:
        raise NotImplementedError

    async def notify_cancelled(self, external_order_id: str, reason: str, key: str) -> ChannelAck:
        raise NotImplementedError

    async def notify_return(
        self, external_order_id: str, notice: ReturnNotice, idempotency_key: str
    ) -> ChannelAck:
        raise NotImplementedError

    def latest(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, told in self.calls:
            out.update(told)
        return out


@dataclass
class Submitted:
    event: InventoryEvent
    at: float  # time.monotonic() just before the start request
    wall: float  # time.time() at the same moment, to compare with the journal's recorded_at


async def wait_until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def journal(store: Store, event_ids: list[str]) -> dict[str, tuple[int, float]]:
    """Per applied event: what it left available at its location, and when it was recorded."""
    out: dict[str, tuple[int, float]] = {}
    q = select(
        InventoryMovement.event_id,
        InventoryMovement.on_hand_after,
        InventoryMovement.reserved_after,
        InventoryMovement.recorded_at,
    )
    with store.session() as s:
        for n in range(0, len(event_ids), 500):
            for eid, on_hand, reserved, at in s.execute(
                q.where(InventoryMovement.event_id.in_(event_ids[n : n + 500]))
            ):
                at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
                out[eid] = (max(0, on_hand - reserved), at.timestamp())
    return out


def lags(channel: RecordingChannel, events: list[Submitted], result: dict[str, int]) -> list[float]:
    """Per event: from submission to the first acknowledged push of its SKU at or below the number
    it produced."""
    per_sku: dict[str, tuple[list[float], list[int]]] = {}
    for at, told in channel.calls:
        for sku, qty in told.items():
            times, qtys = per_sku.setdefault(sku, ([], []))
            times.append(at)
            qtys.append(qty)
    out = []
    for sub in events:
        times, qtys = per_sku[sub.event.sku]
        target = result[sub.event.event_id]
        i = bisect_left(times, sub.at)
        while qtys[i] > target:
            i += 1
        out.append(times[i] - sub.at)
    return out


async def submit(client: Client, task_queue: str, sub: Submitted) -> None:
    await client.start_workflow(
        InventoryAdjustment.run,
        InventoryAdjustmentInput(event=sub.event, channels=CHANNELS, activity_timeout_s=10, max_attempts=3),
        id=adjustment_workflow_id(sub.event.event_id),
        task_queue=task_queue,
    )


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    skus = bench_skus(SKUS)
    channels = {name: RecordingChannel(name) for name in CHANNELS}
    lookup: dict[str, ChannelPort] = dict(channels)
    tq = f"bench-inv-{uuid.uuid4().hex[:8]}"
    async with temporal_env() as env:
        client = env.client
        with bench_dir() as tmp, database_url(tmp) as url:
            store = open_store(url)
            seed_skus(store, skus, {LOCATION: ON_HAND})
            ledger = InventoryLedger(store)
            acts = InventoryActivities(store, ledger, lookup.__getitem__)
            runner = UnsandboxedWorkflowRunner() if args.unsandboxed else SandboxedWorkflowRunner()
            policy = SyncPolicy(
                debounce_s=args.debounce, poll_s=5, batch_size=args.batch, activity_timeout_s=10
            )
            try:
                async with Worker(
                    client,
                    task_queue=tq,
                    workflows=[InventoryAdjustment, ChannelInventorySync],
                    activities=acts.all(),
                    workflow_runner=runner,
                ):
                    for name in CHANNELS:
                        await client.start_workflow(
                            ChannelInventorySync.run,
                            ChannelSyncInput(channel=name, policy=policy),
                            id=sync_workflow_id(name),
                            task_queue=tq,
                            id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
                        )
                    await wait_until(
                        lambda: all(len(c.latest()) == SKUS for c in channels.values()),
                        60,
                        "the catalogue push",
                    )
                    await asyncio.sleep(args.debounce * 2)
                    before = {name: len(c.calls) for name, c in channels.items()}

                    subs: list[Submitted] = []
                    tasks = []
                    start = time.monotonic()
                    for i in range(args.events):
                        if args.rate > 0:
                            delay = start + i / args.rate - time.monotonic()
                            if delay > 0:
                                await asyncio.sleep(delay)
                        ev = InventoryEvent(
                            event_id=f"bench-{uuid.uuid4().hex[:12]}",
                            kind="adjustment",
                            sku=rng.choice(skus),
                            location=LOCATION,
                            quantity=-rng.randint(1, 3),
                            source="wms",
                            occurred_at=datetime.now(UTC),
                        )
                        sub = Submitted(ev, time.monotonic(), time.time())
                        subs.append(sub)
                        tasks.append(asyncio.create_task(submit(client, tq, sub)))
                    submitted_s = time.monotonic() - start
                    await asyncio.gather(*tasks)
                    ids = [s.event.event_id for s in subs]
                    applied: dict[str, tuple[int, float]] = {}
                    deadline = time.monotonic() + 120
                    while len(applied) < len(ids) and time.monotonic() < deadline:
                        await asyncio.sleep(0.2)
                        applied = await asyncio.to_thread(journal, store, ids)
                    if len(applied) < len(ids):
                        raise TimeoutError(f"only {len(applied)} of {len(ids)} events were applied")
                    result = {eid: qty for eid, (qty, _) in applied.items()}
                    applied_s = max(at for _, at in applied.values()) - subs[0].wall
                    final: dict[str, int] = {}
                    for s in subs:
                        final[s.event.sku] = min(final.get(s.event.sku, ON_HAND), result[s.event.event_id])
                    await wait_until(
                        lambda: all(
                            all(c.latest().get(sku) == q for sku, q in final.items())
                            for c in channels.values()
                        ),
                        60,
                        "every channel to hear the last numbers",
                    )
                    settled_s = time.monotonic() - start
                    states = {
                        name: await client.get_workflow_handle_for(
                            ChannelInventorySync.run, sync_workflow_id(name)
                        ).query(ChannelInventorySync.state)
                        for name in CHANNELS
                    }
                    for name in CHANNELS:
                        await client.get_workflow_handle(sync_workflow_id(name)).terminate("benchmark over")
            finally:
                store.dispose()
            db = backend(url)

    n = len(subs)
    ledger_stats = Stats.of(
        "event -> ledger", [applied[s.event.event_id][1] - s.wall for s in subs], applied_s
    )
    per_channel = {name: lags(c, subs, result) for name, c in channels.items()}
    all_lags = [x for v in per_channel.values() for x in v]
    lag_stats = [Stats.of(f"event -> {name}", v, settled_s) for name, v in per_channel.items()]
    overall = Stats.of("event -> channel (all)", all_lags, settled_s)
    calls = {name: len(c.calls) - before[name] for name, c in channels.items()}
    skus_told = {name: sum(len(t) for _, t in c.calls[before[name] :]) for name, c in channels.items()}
    total_calls = sum(calls.values())

    print(
        f"\ninventory sync: {n} events over {SKUS} SKUs and {len(CHANNELS)} channels, debounce"
        f" {args.debounce:g} s, batch {args.batch}, rate {args.rate or 'burst'}/s, {db},"
        f" load average {loadavg()}"
    )
    print(
        f"submitted in {submitted_s:.1f} s, all applied after {applied_s:.1f} s,"
        f" all channels settled after {settled_s:.1f} s"
    )
    print(table(STATS_HEADERS, [s.row() for s in [ledger_stats, *lag_stats, overall]]))
    rows = [
        [name, str(calls[name]), f"{calls[name] / n:.3f}", f"{skus_told[name] / max(1, calls[name]):.1f}"]
        for name in CHANNELS
    ]
    rows.append(
        [
            "all",
            str(total_calls),
            f"{total_calls / n:.3f}",
            f"{sum(skus_told.values()) / max(1, total_calls):.1f}",
        ]
    )
    print()
    print(table(["channel", "calls", "calls / event", "SKUs / call"], rows))
    errors = {name: st.last_error for name, st in states.items() if st.last_error}
    if errors:
        print(f"\nsync errors seen (last per channel): {errors}")
    r = {
        "channel_p99_vs_ledger_p99": round(overall.p99_ms / ledger_stats.p99_ms, 2),
        "channel_p99_vs_debounce": round(overall.p99_ms / (args.debounce * 1000), 2),
        "channel_calls_per_event": round(total_calls / n, 4),
        "channel_calls_per_event_per_channel": round(total_calls / n / len(CHANNELS), 4),
    }
    print(
        f"\np99 event->channel {overall.p99_ms / 1000:.2f} s = {r['channel_p99_vs_ledger_p99']}x the p99"
        f" event->ledger, {r['channel_p99_vs_debounce']}x the debounce; {r['channel_calls_per_event']}"
        f" channel calls per event ({r['channel_calls_per_event_per_channel']} per channel)"
    )
    emit_json(
        "inventory_sync",
        database=db,
        events=n,
        skus=SKUS,
        channels=len(CHANNELS),
        debounce_s=args.debounce,
        batch_size=args.batch,
        rate_per_s=args.rate,
        submitted_s=round(submitted_s, 2),
        applied_s=round(applied_s, 2),
        settled_s=round(settled_s, 2),
        p50_lag_ms=overall.p50_ms,
        p99_lag_ms=overall.p99_ms,
        max_lag_ms=overall.max_ms,
        series=[s.asdict() for s in [ledger_stats, *lag_stats, overall]],
        channel_calls=calls,
        sync_errors=errors,
        ratios=r,
    )


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--rate", type=float, default=10.0, help="events submitted per second (0: all at once)")
    p.add_argument("--debounce", type=float, default=0.5, help="the sync's debounce, seconds")
    p.add_argument("--batch", type=int, default=100, help="SKUs per channel call")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--unsandboxed", action="store_true", help="diagnostic: run the workflows without the sandbox"
    )
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
