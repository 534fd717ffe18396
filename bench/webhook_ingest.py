"""Signed Shopify ``orders/create`` ingest against a bare ``client.start_workflow`` loop.

    .venv/bin/python -m bench.webhook_ingest [--deliveries 200] [--concurrency 1 8]

One Temporal dev server, one fresh store, NO worker (ingest is measured, not processing):

- ``bare start``: ``client.start_workflow(OrderToCash.run, ...)`` with exactly the arguments
  ``orchestration.client.start_order`` passes (input, id policies, search attributes, summary), for
  orders mapped beforehand;
- ``api webhook``: ``POST /webhooks/shopify`` through the real FastAPI app in-process
  (``httpx.ASGITransport``): size check, HMAC signature, JSON, Shopify mapping, the inbox row
  (deduplicated), the inline relay that starts the workflow, and the relay's bookkeeping on
  the row. Every answer must be ``accepted`` (relayed inline, not ``queued``).

Each series uses its own order ids, so every call starts a new workflow. Ratios are
API / bare for latency and bare / API for throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from adapters.channels.shopify.mapping import order_from_shopify
from adapters.channels.shopify.signature import sign as shopify_sign
from api.app import create_app
from backoffice.bootstrap import open_store
from bench._common import (
    STATS_HEADERS,
    Stats,
    backend,
    bench_dir,
    database_url,
    emit_json,
    loadavg,
    ratios,
    run_series,
    table,
    temporal_env,
)
from canonical import Order
from orchestration import search_attributes as sa
from orchestration.client import order_summary, policy_from
from orchestration.models import OrderToCashInput
from settings import Settings
from tests.platform import SHOPIFY_SECRET, test_settings
from tests.shopify_payloads import shopify_order
from workflows.order_to_cash import OrderToCash

LINES = [("BENCH-0001", 2, "19.99"), ("BENCH-0002", 1, "5.50")]


def payload(order_id: int) -> dict[str, Any]:
    return shopify_order(order_id, LINES)


def api_call(http: httpx.AsyncClient, first_id: int) -> Callable[[int], Awaitable[object]]:
    async def call(i: int) -> object:
        raw = json.dumps(payload(first_id + i)).encode()
        r = await http.post(
            "/webhooks/shopify",
            content=raw,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Hmac-Sha256": shopify_sign(raw, SHOPIFY_SECRET),
                "X-Shopify-Topic": "orders/create",
                "X-Shopify-Webhook-Id": uuid.uuid4().hex,
                "X-Shopify-Shop-Domain": "bench.myshopify.com",
            },
        )
        if r.status_code != 200 or r.json().get("status") != "accepted":
            raise RuntimeError(f"webhook answered {r.status_code}: {r.text[:300]}")
        return r

    return call


def bare_call(client: Client, settings: Settings, orders: list[Order]) -> Callable[[int], Awaitable[object]]:
    async def call(i: int) -> object:
        order = orders[i]
        cid = uuid.uuid4().hex
        return await client.start_workflow(
            OrderToCash.run,
            OrderToCashInput(order=order, policy=policy_from(settings), correlation_id=cid),
            id=order.workflow_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.ORDER_ID, order.key),
                    SearchAttributePair(sa.CHANNEL, order.channel),
                    SearchAttributePair(sa.ORDER_STATUS, "Received"),
                    SearchAttributePair(sa.CORRELATION_ID, cid),
                ]
            ),
            static_summary=order_summary(order),
            static_details=f"Correlation ID {cid}",
        )

    return call


async def main(args: argparse.Namespace) -> None:
    n = args.deliveries
    results: list[Stats] = []
    next_id = 100_000

    def ids(count: int) -> int:
        nonlocal next_id
        first, next_id = next_id, next_id + count
        return first

    async with temporal_env() as env:
        with bench_dir() as tmp, database_url(tmp) as url:
            client = env.client
            settings = test_settings(url, client.service_client.config.target_host)
            store = open_store(url)
            app = create_app(settings, client, store=store, relay_loop=False)
            try:
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://bench"
                ) as http:

                    def bare(count: int) -> Callable[[int], Awaitable[object]]:
                        first = ids(count)
                        orders = [order_from_shopify(payload(first + i)) for i in range(count)]
                        return bare_call(client, settings, orders)

                    await run_series("warmup", 30, 1, bare(30))
                    await run_series("warmup", 30, 1, api_call(http, ids(30)))
                    for c in args.concurrency:
                        # alternate halves so drift in the server hits both series alike
                        halves: dict[str, list[Stats]] = {"bare start": [], "api webhook": []}
                        for part in (n // 2, n - n // 2):
                            halves["bare start"].append(await run_series("bare start", part, c, bare(part)))
                            halves["api webhook"].append(
                                await run_series("api webhook", part, c, api_call(http, ids(part)))
                            )
                        for name, pair in halves.items():
                            results.append(merge(name, pair))
            finally:
                store.dispose()
            db = backend(url)

    print(f"\nwebhook ingest: {n} deliveries per series, no worker, {db}, load average {loadavg()}")
    print(table(STATS_HEADERS, [s.row() for s in results]))
    out: dict[str, Any] = {}
    rows = []
    for c in args.concurrency:
        base = next(s for s in results if s.name == "bare start" and s.concurrency == c)
        api = next(s for s in results if s.name == "api webhook" and s.concurrency == c)
        r = ratios(api, base)
        out[f"api_webhook_c{c}_vs_bare_start"] = r
        rows.append(
            ["api webhook / bare start", str(c), f"{r['p50']}x", f"{r['p99']}x", f"{r['throughput']}x"]
        )
    print("\nratios (latency: api / bare; throughput: bare / api)")
    print(table(["series", "conc", "p50", "p99", "throughput"], rows))
    emit_json("webhook_ingest", database=db, deliveries=n, series=[s.asdict() for s in results], ratios=out)


def merge(name: str, parts: list[Stats]) -> Stats:
    """Two half-series as one: their samples pooled, their wall times added."""
    samples = [x for p in parts for x in p.samples_s]
    wall = sum(p.wall_s for p in parts)
    return Stats.of(name, samples, wall, parts[0].concurrency)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deliveries", type=int, default=200, help="deliveries (and bare starts) per series")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8], help="concurrency levels")
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
