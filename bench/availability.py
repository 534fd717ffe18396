"""Availability API latency and throughput against a bare database read of the same rows.

    .venv/bin/python -m bench.availability [--requests 2000] [--concurrency 1 8] [--uvicorn]

Series, all in one process on one freshly seeded store (200 SKUs x 2 locations, a channel
policy with a safety buffer):

- ``bare select``: ``SELECT sku, location, on_hand, reserved FROM erp_stock WHERE sku = ?`` in a
  store session, called directly (concurrency > 1: that many threads);
- ``plain engine`` (SQLite only): the same select on a plain ``create_engine(url)``, without
  the store's ``BEGIN IMMEDIATE`` hook, to show what that lock costs readers;
- ``ledger``: ``InventoryLedger.channel_availability(channel, [sku])`` called directly (what the
  endpoint computes, without HTTP);
- ``api asgi``: ``GET /v1/availability?sku=..&channel=..`` with an API key through the real
  FastAPI app over ``httpx.ASGITransport`` (in-process, no sockets);
- ``api asgi no auth``: the same app with ``RETAIL_API_AUTH=off`` (what the key check costs);
- ``api uvicorn`` (``--uvicorn``): the same request over HTTP/1.1 keep-alive to the app served
  by uvicorn in a child process.

Ratios are API / bare for latency and bare / API for throughput (how many times slower).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx
from sqlalchemy import Engine, create_engine, select

from adapters.erp.inventory import InventoryLedger
from api.app import create_app
from backoffice.bootstrap import open_store
from backoffice.erp import ErpStock
from bench._common import (
    STATS_HEADERS,
    Stats,
    backend,
    bench_dir,
    bench_skus,
    database_url,
    emit_json,
    loadavg,
    ratios,
    run_series,
    seed_skus,
    table,
)
from settings import Settings
from store import apikeys
from store.db import Store

CHANNEL = "shopify"
SKUS = 200
LOCATIONS = {"WH-EAST": 50, "WH-WEST": 20}


def settings_for(url: str, data_dir: Path, api_auth: Literal["keys", "off"] = "keys") -> Settings:
    return Settings(database_url=url, data_dir=data_dir, temporal_address="127.0.0.1:1", api_auth=api_auth)


def bare_read(store: Store, sku: str) -> list[Any]:
    q = select(ErpStock.sku, ErpStock.location, ErpStock.on_hand, ErpStock.reserved).where(
        ErpStock.sku == sku
    )
    with store.session() as s:
        return list(s.execute(q).all())


def plain_read(engine: Engine, sku: str) -> list[Any]:
    """The same select on a plain engine: pysqlite's deferred BEGIN, no store hooks."""
    q = select(ErpStock.sku, ErpStock.location, ErpStock.on_hand, ErpStock.reserved).where(
        ErpStock.sku == sku
    )
    with engine.connect() as c:
        return list(c.execute(q).all())


async def threaded_series(name: str, n: int, concurrency: int, fn: Callable[[int], object]) -> Stats:
    """``fn(i)`` called synchronously: inline at concurrency 1, else from that many threads."""
    if concurrency == 1:

        async def inline(i: int) -> object:
            return fn(i)

        return await run_series(name, n, 1, inline)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(concurrency) as pool:

        def in_pool(i: int) -> Awaitable[object]:
            return loop.run_in_executor(pool, fn, i)

        return await run_series(name, n, concurrency, in_pool)


def http_call(http: httpx.AsyncClient, skus: list[str]) -> Callable[[int], Awaitable[object]]:
    async def call(i: int) -> object:
        r = await http.get("/v1/availability", params={"sku": skus[i % len(skus)], "channel": CHANNEL})
        if r.status_code != 200:
            raise RuntimeError(f"availability answered {r.status_code}: {r.text[:200]}")
        return r

    return call


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def uvicorn_child(url: str, data_dir: Path) -> Iterator[str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "bench.availability",
        "--serve",
        url,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    proc = subprocess.Popen(cmd)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                raise RuntimeError("the uvicorn child exited")
            time.sleep(0.1)
        else:
            raise RuntimeError("the uvicorn child did not listen in 30 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def serve(url: str, port: int, data_dir: Path) -> None:
    """The child process of ``--uvicorn``: the app on the benchmark's store, no lifespan (no
    relay loop, no Temporal), access log off."""
    import uvicorn

    store = Store(url)
    app = create_app(settings_for(url, data_dir), store=store, relay_loop=False)
    uvicorn.run(app, host="127.0.0.1", port=port, lifespan="off", access_log=False, log_level="warning")


async def main(args: argparse.Namespace) -> None:
    skus = bench_skus(SKUS)
    results: list[Stats] = []
    with bench_dir() as tmp, database_url(tmp) as url:
        store = open_store(url)
        seed_skus(store, skus, LOCATIONS)
        ledger = InventoryLedger(store)
        ledger.set_channel_policy(CHANNEL, list(LOCATIONS), safety_buffer=2)
        app = create_app(settings_for(url, tmp), store=store, relay_loop=False)
        # The API key check (a cached hash lookup) is measured against the same app without it.
        open_app = create_app(settings_for(url, tmp, api_auth="off"), store=store, relay_loop=False)
        _, key = apikeys.create_key(store, "bench", ["availability:read"])
        auth = {"Authorization": f"Bearer {key}"}
        plain = (
            create_engine(url, connect_args={"check_same_thread": False})
            if backend(url) == "sqlite"
            else None
        )
        n = args.requests
        try:
            async with (
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://bench", headers=auth
                ) as asgi,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=open_app), base_url="http://bench"
                ) as anon,
            ):
                # warm up every path (connections, imports, FastAPI's caches)
                await run_series("warmup", 200, 1, http_call(asgi, skus))
                await run_series("warmup", 200, 1, http_call(anon, skus))
                for i in range(200):
                    bare_read(store, skus[i])
                    ledger.channel_availability(CHANNEL, [skus[i]])
                for c in args.concurrency:
                    results.append(
                        await threaded_series("bare select", n, c, lambda i: bare_read(store, skus[i % SKUS]))
                    )
                    if plain is not None:
                        results.append(
                            await threaded_series(
                                "plain engine", n, c, lambda i: plain_read(plain, skus[i % SKUS])
                            )
                        )
                    results.append(
                        await threaded_series(
                            "ledger", n, c, lambda i: ledger.channel_availability(CHANNEL, [skus[i % SKUS]])
                        )
                    )
                    results.append(await run_series("api asgi", n, c, http_call(asgi, skus)))
                    results.append(await run_series("api asgi no auth", n, c, http_call(anon, skus)))
            if args.uvicorn:
                with uvicorn_child(url, tmp) as api_url:
                    limits = httpx.Limits(max_connections=max(args.concurrency), max_keepalive_connections=64)
                    async with httpx.AsyncClient(base_url=api_url, limits=limits, headers=auth) as http:
                        await run_series("warmup", 200, max(args.concurrency), http_call(http, skus))
                        for c in args.concurrency:
                            results.append(await run_series("api uvicorn", n, c, http_call(http, skus)))
        finally:
            store.dispose()
            if plain is not None:
                plain.dispose()
        db = backend(url)

    print(f"\navailability: {n} requests per series over {SKUS} SKUs, {db}, load average {loadavg()}")
    print(table(STATS_HEADERS, [s.row() for s in results]))
    out: dict[str, Any] = {}
    rows = []
    for c in args.concurrency:
        base = next(s for s in results if s.name == "bare select" and s.concurrency == c)
        for s in results:
            if s.concurrency == c and s.name != "bare select":
                r = ratios(s, base)
                out[f"{s.name.replace(' ', '_')}_c{c}_vs_bare"] = r
                rows.append(
                    [f"{s.name} / bare", str(c), f"{r['p50']}x", f"{r['p99']}x", f"{r['throughput']}x"]
                )
    print("\nratios (latency: subject / bare; throughput: bare / subject)")
    print(table(["series", "conc", "p50", "p99", "throughput"], rows))
    emit_json(
        "availability",
        database=db,
        requests=n,
        skus=SKUS,
        series=[s.asdict() for s in results],
        ratios=out,
    )


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000, help="requests per series")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8], help="concurrency levels")
    p.add_argument("--uvicorn", action="store_true", help="also measure over a real uvicorn port")
    p.add_argument("--serve", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    a = parse()
    if a.serve:
        serve(a.serve, a.port, a.data_dir)
    else:
        asyncio.run(main(a))
