"""The ERP's share of order to cash, builtin beside Tryton in the same run: per order, what the
workflow asks of the ERP for a one-shipment order (resolve the customer, create the sales order
with its allocation, ship and post the invoice), through the ErpPort adapters directly (no
Temporal, no API: the ERP is what is measured).

Series: ``builtin`` (the baseline), ``tryton-sqlite`` (trytond one request at a time), and
``tryton-postgresql`` when DATABASE_URL names a PostgreSQL server (trytond as the project
serves it there: two processes and a queue worker). Reports orders per second, the ratio to
builtin, JSON-RPC calls per order, and the machine's CPU seconds per order (every process).

    .venv/bin/python -m bench.erp_tryton [--orders 30] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from adapters.erp.builtin import BuiltinErp
from adapters.erp.tryton.erp import TrytonErp
from adapters.erp.tryton.rpc import TrytonRpc
from adapters.errors import TransientError
from backoffice.bootstrap import open_store
from bench._common import (
    STATS_HEADERS,
    Stats,
    bench_dir,
    cpu_busy_s,
    emit_json,
    run_series,
    seed_skus,
    table,
)
from canonical import Order, Shipment, billing
from canonical.fulfillment import ShipmentLine
from services.tryton import TrytonServer
from tests.dbutil import postgres_url
from tests.factories import make_order
from tests.tryton_server import TEMPLATES, free_port

SKUS = [f"BENCH-{i:03d}" for i in range(20)]
T = TypeVar("T")


def _order(i: int, run: str) -> Order:
    sku = SKUS[i % len(SKUS)]
    return make_order(f"{run}-{i}", lines=[(sku, 1, "10.00")], email=f"buyer{i % 25}@example.com")


RETRIES: dict[str, int] = {}
REASONS: Counter[str] = Counter()  # what the transient answers said, abridged


async def _retried(name: str, step: Callable[[], Awaitable[T]]) -> T:
    """As the activity would: a transient answer (Tryton busy: 503 when its locks kept
    conflicting) is retried with backoff, and counted."""
    for attempt in range(20):
        try:
            return await step()
        except TransientError as exc:
            RETRIES[name] = RETRIES.get(name, 0) + 1
            REASONS[str(exc)[:90]] += 1
            await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
    return await step()


async def _one(name: str, erp: Any, order: Order, i: int) -> None:
    customer = await _retried(name, lambda: erp.resolve_customer(order.customer, order.shipping_address))
    ack = await _retried(name, lambda: erp.create_sales_order(order, customer.customer_id, f"so-{order.key}"))
    (alloc,) = ack.allocations
    shipment = Shipment(
        shipment_id=f"S-{order.key}",
        order_key=order.key,
        location=alloc.location,
        lines=[ShipmentLine(line_id=alloc.line_id, sku=alloc.sku, quantity=1)],
        shipped_at=datetime.now(UTC),
    )
    amounts = billing.invoice_for_shipment(order, {}, {alloc.line_id: 1}, True)
    await _retried(
        name, lambda: erp.invoice_shipment(ack.erp_order_id, shipment, amounts, f"inv-{order.key}")
    )


CPU_PER_ORDER: dict[str, float] = {}


async def _series(name: str, erp: Any, orders: int, concurrency: int) -> Stats:
    run = uuid.uuid4().hex[:6]
    busy = cpu_busy_s()
    stats = await run_series(name, orders, concurrency, lambda i: _one(name, erp, _order(i, run), i))
    CPU_PER_ORDER[name] = (cpu_busy_s() - busy) / orders
    return stats


async def _tryton(
    name: str, tmp: Path, orders: int, concurrency: int, database_url: str | None
) -> tuple[Stats, float]:
    server = TrytonServer(
        root=tmp / name,
        database=f"rc_bench_{uuid.uuid4().hex[:8]}",
        port=free_port(),
        templates=TEMPLATES,
        database_url=database_url,
    )
    server.start(timeout=600)
    store = open_store(f"sqlite:///{tmp / f'{name}.db'}")
    seed_skus(store, SKUS, {"WH-EAST": 10_000})
    erp = TrytonErp(
        TrytonRpc(server.url, server.database, "admin", server.password, max_in_flight=concurrency), store
    )
    try:
        await erp.start()
        await erp.seed_stock()
        before = erp.rpc.calls
        erp.rpc.by_method.clear()
        stats = await _series(name, erp, orders, concurrency)
        _print_slowest(name, erp.rpc.by_method, orders)
        print(f"{name}: invoices posted in batches of {_sizes(erp.posting.batches)}")
        return stats, (erp.rpc.calls - before) / orders
    finally:
        await erp.rpc.aclose()
        store.dispose()
        server.stop()
        if database_url:
            import psycopg

            with psycopg.connect(f"{database_url.rstrip('/')}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{server.database}"')


def _sizes(batches: Collection[int]) -> str:
    return f"{sum(batches) / len(batches):.1f} on average (max {max(batches)})" if batches else "-"


def _print_slowest(name: str, by_method: dict[str, list[float]], orders: int) -> None:
    """Where an order's ERP time goes: the methods that waited longest, per order."""
    total = sum(sec for _, sec in by_method.values()) or 1.0
    print(f"{name}: the JSON-RPC methods that took longest")
    for method, (count, sec) in sorted(by_method.items(), key=lambda kv: -kv[1][1])[:6]:
        per_call = 1000 * sec / count
        print(f"  {method:45s} {count / orders:4.1f}/order {per_call:7.1f} ms/call {sec / total:6.1%}")


async def main(orders: int, concurrency: int) -> None:
    with bench_dir() as tmp:
        store = open_store(f"sqlite:///{tmp / 'builtin.db'}")
        seed_skus(store, SKUS, {"WH-EAST": 10_000})
        builtin = await _series("builtin", BuiltinErp(store), orders, concurrency)
        store.dispose()
        results: list[tuple[Stats, float | None]] = [(builtin, None)]
        results.append(await _tryton("tryton-sqlite", tmp, orders, concurrency, None))
        pg = postgres_url()
        if pg:
            netloc = urlsplit(pg.replace("+psycopg", "")).netloc
            results.append(
                await _tryton("tryton-postgresql", tmp, orders, concurrency, f"postgresql://{netloc}/")
            )
    rows = [
        [
            *s.row(),
            f"{builtin.per_s / s.per_s:.1f}" if s.per_s else "inf",
            f"{calls:.1f}" if calls else "-",
            f"{CPU_PER_ORDER.get(s.name, 0):.3f}",
        ]
        for s, calls in results
    ]
    print(table([*STATS_HEADERS, "builtin / x", "rpc per order", "cpu s per order"], rows))
    print(f"transient answers retried: {RETRIES or 'none'}")
    for reason, count in REASONS.most_common(5):
        print(f"  {count:4d} {reason}")
    emit_json(
        "erp_tryton",
        series=[
            {
                **s.asdict(),
                "rpc_per_order": calls,
                "retries": RETRIES.get(s.name, 0),
                "cpu_s_per_order": round(CPU_PER_ORDER.get(s.name, 0), 3),
            }
            for s, calls in results
        ],
        ratios={s.name: round(builtin.per_s / s.per_s, 2) for s, _ in results[1:] if s.per_s},
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.concurrency))
