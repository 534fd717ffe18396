"""Orders reconciliation over a large window against a plain SQL scan of the same rows.

    .venv/bin/python -m bench.reconcile [--orders 100000] [--page 250]

One freshly seeded store: ``--orders`` ERP sales orders of one channel (one or two lines each).
The channel lists the same orders in pages of ``--page`` (in memory, already mapped: the HTTP
calls and the payload mapping are outside this measurement; against a real Shopify the channel's
rate limit, not the comparison, sets the pace), with a few planted differences: 0.05% of them
never reached the ERP, 0.03% with other totals, 0.02% of the ERP's orders not listed.

Series, in one process, one after the other:

- ``plain scan``: ``SELECT external_id, sum(net) FROM erp_sales_orders JOIN erp_sales_order_lines
  GROUP BY`` over the channel's orders, every row fetched: the least any comparison must read;
- ``reconcile``: what the orders activities do with the same rows: stage every page
  (``stage_orders``), then the set-based comparisons (``missing_on_platform``,
  ``total_mismatches``, ``erp_orders_not_listed``), record the findings and clear the stage.
  The planted differences must all be found.

Ratio: reconcile / plain scan (how many times longer).
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, insert, select

from backoffice.bootstrap import open_store
from backoffice.erp import ErpSalesOrder, ErpSalesOrderLine
from backoffice.order_comparison import erp_orders_not_listed, missing_on_platform, total_mismatches
from bench._common import backend, bench_dir, database_url, emit_json, loadavg, table
from store import findings as fs
from store.db import Store
from store.reconcile import StagedOrder, clear_stage, stage_orders

CHANNEL = "shopify"


def seed(store: Store, n: int, rng: random.Random) -> dict[str, Decimal]:
    """``n`` ERP orders created in the last hour; returns external id -> lines total."""
    now = datetime.now(UTC)
    totals: dict[str, Decimal] = {}
    orders, lines = [], []
    line_id = 0
    for i in range(1, n + 1):
        ext = str(5_000_000 + i)
        created = now - timedelta(seconds=rng.uniform(60, 3600))
        orders.append(
            {
                "id": i,
                "erp_order_id": f"SO-{i:07d}",
                "channel": CHANNEL,
                "external_id": ext,
                "order_name": f"#{i}",
                "customer_id": "CUST-000001",
                "currency": "USD",
                "taxes_included": False,
                "status": "shipped",
                "idempotency_key": f"order-{CHANNEL}-{ext}:sales_order",
                "created_at": created,
                "updated_at": created,
            }
        )
        total = Decimal(0)
        for pos in range(rng.choice((1, 1, 2))):
            line_id += 1
            qty = rng.randint(1, 3)
            price = Decimal(rng.randint(500, 9000)) / 100
            net = price * qty
            total += net
            lines.append(
                {
                    "id": line_id,
                    "order_pk": i,
                    "position": pos,
                    "line_id": str(line_id),
                    "sku": f"BENCH-{rng.randint(0, 199):04d}",
                    "title": "Bench item",
                    "quantity": qty,
                    "unit_price": price,
                    "net": net,
                    "tax": Decimal(0),
                    "currency": "USD",
                    "stocked": True,
                    "backordered": 0,
                    "cancelled": 0,
                }
            )
        totals[ext] = total
    with store.session() as s:
        for k in range(0, len(orders), 5000):
            s.execute(insert(ErpSalesOrder), orders[k : k + 5000])
        for k in range(0, len(lines), 5000):
            s.execute(insert(ErpSalesOrderLine), lines[k : k + 5000])
    return totals


def plain_scan(store: Store) -> int:
    so, ln = ErpSalesOrder, ErpSalesOrderLine
    q = (
        select(so.external_id, func.sum(ln.net))
        .join(ln, ln.order_pk == so.id)
        .where(so.channel == CHANNEL)
        .group_by(so.external_id)
    )
    with store.reading() as s:
        return len(s.execute(q).all())


def reconcile(
    store: Store, listing: list[StagedOrder], page: int, since: datetime, until: datetime
) -> dict[str, int]:
    run_key = "bench-run"
    for k in range(0, len(listing), page):
        stage_orders(store, run_key, listing[k : k + page])
    missing = missing_on_platform(store, run_key, CHANNEL)
    mismatched = total_mismatches(store, run_key, CHANNEL)
    unlisted = erp_orders_not_listed(store, run_key, CHANNEL, since, until)
    found = [
        fs.NewFinding(fs.ORDER_MISSING_ON_PLATFORM, [CHANNEL, "erp"], {"external_id": m.external_id}, "", "")
        for m in missing
    ]
    found += [
        fs.NewFinding(fs.ORDER_TOTAL_MISMATCH, [CHANNEL, "erp"], {"external_id": t.external_id}, "", "")
        for t in mismatched
    ]
    found += [
        fs.NewFinding(fs.ORDER_NOT_IN_CHANNEL, ["erp", CHANNEL], {"external_id": u.external_id}, "", "")
        for u in unlisted
    ]
    fs.record_findings(store, found, run_key)
    clear_stage(store, run_key)
    return {"missing": len(missing), "mismatched": len(mismatched), "unlisted": len(unlisted)}


def main(args: argparse.Namespace) -> None:
    rng = random.Random(7)
    with bench_dir() as tmp, database_url(tmp) as url:
        store = open_store(url)
        t0 = time.perf_counter()
        totals = seed(store, args.orders, rng)
        seeded_s = time.perf_counter() - t0
        exts = list(totals)
        rng.shuffle(exts)
        lost = {str(9_000_000 + i) for i in range(max(1, args.orders // 2000))}
        changed = set(exts[: max(1, args.orders // 3333)])
        unlisted = set(exts[-max(1, args.orders // 5000) :])
        now = datetime.now(UTC)
        listing = [
            StagedOrder(
                external_id=ext,
                workflow_id=f"order-{CHANNEL}-{ext}",
                name=None,
                updated_at=now,
                cancelled=False,
                currency="USD",
                lines_total=totals[ext] + (Decimal("1.00") if ext in changed else 0),
                error=None,
            )
            for ext in sorted(set(totals) - unlisted)
        ] + [
            StagedOrder(ext, f"order-{CHANNEL}-{ext}", None, now, False, "USD", Decimal("10.00"), None)
            for ext in sorted(lost)
        ]

        t0 = time.perf_counter()
        scanned = plain_scan(store)
        scan_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        found = reconcile(store, listing, args.page, now - timedelta(hours=2), now)
        reconcile_s = time.perf_counter() - t0
        store.dispose()
    expected = {"missing": len(lost), "mismatched": len(changed), "unlisted": len(unlisted)}
    assert found == expected, f"planted {expected}, found {found}"
    rows = [
        ["plain scan", str(scanned), f"{scan_s:.2f}", "1"],
        ["reconcile", str(len(listing)), f"{reconcile_s:.2f}", f"{reconcile_s / scan_s:.1f}x"],
    ]
    print(f"{args.orders:,} ERP orders on {backend(url)} (seeded in {seeded_s:.1f} s), load {loadavg()}")
    print(table(["series", "orders", "seconds", "vs scan"], rows))
    print(f"planted and found: {found}")
    emit_json(
        "reconcile",
        backend=backend(url),
        orders=args.orders,
        page=args.page,
        scan_s=round(scan_s, 3),
        reconcile_s=round(reconcile_s, 3),
        ratio=round(reconcile_s / scan_s, 2),
        found=found,
    )


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=100_000)
    p.add_argument("--page", type=int, default=250)
    return p.parse_args()


if __name__ == "__main__":
    main(parse())
