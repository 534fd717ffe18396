"""Temporal goes down while orders keep arriving: nothing is lost, nothing is duplicated.

A dedicated Temporal dev server (its own SQLite file, its own ports) runs the platform: the API
in-process with its lifespan (so its inbox relay loop runs), a worker, and the warehouse and
carrier simulators posting back through the API. The server is stopped; signed Shopify
``orders/create`` deliveries are all acknowledged (200) and kept in the inbox; the server is
restarted on the same port and database; the relay starts the workflows, and every order
completes with one workflow and one capture."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from activities.routing import build_adapters
from adapters.channels.shopify.signature import sign as shopify_sign
from api.app import create_app
from backoffice.bootstrap import open_store
from backoffice.payment import list_captures
from canonical import OrderState
from cli.stack import run_simulators
from devserver import start_dev_server
from orchestration.client import connect
from settings import Settings
from store import inbox
from store.db import Store
from tests.platform import API, SHOPIFY_SECRET
from tests.platform import test_settings as platform_settings
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from worker import build_worker
from workflows.order_to_cash import OrderToCash

ORDERS = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TemporalServer:
    """A dev server that can be stopped and started again with its state."""

    port: int
    ui_port: int
    db_file: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = start_dev_server(
            host="127.0.0.1", port=self.port, ui_port=self.ui_port, db_file=self.db_file, log=self.log
        )

    def crash(self) -> None:
        """Kill the server outright (no graceful shutdown): an outage, not a maintenance."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(15)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class RestartableWorker:
    """The worker, restarted if it gives up while the server is away (a supervisor would)."""

    def __init__(self, make: Callable[[], Worker]) -> None:
        self.make = make
        self.restarts = 0
        self.task: asyncio.Task[None] | None = None
        self.worker: Worker | None = None

    def start(self) -> None:
        self.worker = self.make()
        self.task = asyncio.create_task(self.worker.run())

    def ensure_running(self) -> None:
        if self.task is not None and self.task.done():
            self.restarts += 1
            self.start()

    async def stop(self) -> None:
        if self.worker is not None and self.task is not None and not self.task.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.worker.shutdown(), 15)
        if self.task is not None:
            with contextlib.suppress(BaseException):
                await self.task


@asynccontextmanager
async def outage_platform(
    tmp_path: Path, database_url: str, client_factory: Callable[[], Awaitable[Client]], settings: Settings
) -> AsyncIterator[tuple[Store, httpx.AsyncClient, RestartableWorker, Client]]:
    """Store, API (with its relay loop), worker and simulators on the given server."""
    store = open_store(database_url)
    seed_catalog(store)
    client = await client_factory()
    app = create_app(settings, client, store=store)
    stop = asyncio.Event()
    worker = RestartableWorker(lambda: build_worker(client, settings, build_adapters(settings, store)))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=API) as http,
    ):
        sims = asyncio.create_task(run_simulators(settings, store, stop, http_client=http))
        worker.start()
        try:
            yield store, http, worker, client
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sims, 10)
            await worker.stop()
            store.dispose()


async def send_order(http: httpx.AsyncClient, order_id: int, event_id: str) -> httpx.Response:
    raw = json.dumps(shopify_order(order_id, [("MUG-01", 1, "12.50")])).encode()
    return await http.post(
        "/webhooks/shopify",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": shopify_sign(raw, SHOPIFY_SECRET),
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Webhook-Id": uuid.uuid4().hex,
            "X-Shopify-Event-Id": event_id,
            "X-Shopify-Shop-Domain": "sandbox.myshopify.com",
        },
    )


async def wait_completed(
    client: Client, order_ids: list[int], worker: RestartableWorker, timeout: float
) -> dict[int, OrderState]:
    deadline = time.monotonic() + timeout
    done: dict[int, OrderState] = {}
    last: dict[int, Any] = {}
    while time.monotonic() < deadline and len(done) < len(order_ids):
        worker.ensure_running()
        for oid in order_ids:
            if oid in done:
                continue
            try:
                st = await client.get_workflow_handle_for(OrderToCash.run, f"order-shopify-{oid}").query(
                    OrderToCash.state
                )
            except Exception as exc:  # not started yet, or the server still warming up
                last[oid] = exc
                continue
            last[oid] = st.status
            if st.status == "Completed":
                done[oid] = st
        await asyncio.sleep(0.2)
    missing = {oid: last.get(oid) for oid in order_ids if oid not in done}
    assert not missing, f"orders not completed: {missing}"
    return done


async def connect_when_healthy(settings: Settings, timeout: float = 30.0) -> Client:
    """The port opens before the frontend is healthy: retry the first connect a little."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await connect(settings)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_webhooks_accepted_while_temporal_is_down_complete_once_it_is_back(
    tmp_path: Path, database_url: str
) -> None:
    server = TemporalServer(free_port(), free_port(), tmp_path / "temporal.db", tmp_path / "temporal.log")
    server.start()
    try:
        settings = platform_settings(
            database_url,
            server.address,
            webhook_inline_relay_timeout_s=1.0,
            webhook_relay_timeout_s=3.0,
            webhook_relay_interval_s=0.2,
            webhook_relay_retry_initial_s=0.5,
            webhook_relay_retry_max_s=5.0,
        )
        async with outage_platform(
            tmp_path, database_url, lambda: connect_when_healthy(settings), settings
        ) as (store, http, worker, client):
            server.crash()
            order_ids = [5001 + i for i in range(ORDERS)]  # the server is this test's own
            answers = await asyncio.gather(*(send_order(http, oid, f"evt-{oid}") for oid in order_ids))
            assert [r.status_code for r in answers] == [200] * ORDERS, [r.text for r in answers]
            assert {r.json()["status"] for r in answers} == {"queued"}
            # Shopify redelivers one of them while Temporal is still down.
            again = await send_order(http, order_ids[0], f"evt-{order_ids[0]}")
            assert again.status_code == 200 and again.json()["status"] == "duplicate"
            pending = inbox.list_inbox(store, status="pending")
            assert sorted(e.workflow_id for e in pending) == [f"order-shopify-{oid}" for oid in order_ids]

            server.start()  # same port, same database; the API's relay loop does the rest
            states = await wait_completed(client, order_ids, worker, timeout=90)

            # Nothing lost: every delivery (orders, shipments, tracking) relayed.
            deadline = time.monotonic() + 15
            while inbox.list_inbox(store, status="pending") and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert inbox.list_inbox(store, status="pending") == []
            orders = [e for e in inbox.list_inbox(store, limit=1000) if e.topic == "orders/create"]
            assert sorted((e.workflow_id, e.status) for e in orders) == sorted(
                [(f"order-shopify-{oid}", "relayed") for oid in order_ids]
                + [(f"order-shopify-{order_ids[0]}", "duplicate")]
            )
            # Nothing duplicated: one capture per order, of its total, and one workflow run per
            # order on a server that holds nothing else.
            for st in states.values():
                assert st.authorization_id is not None
                captures = list_captures(store, st.authorization_id)
                assert len(captures) == 1 and captures[0].amount == st.total == st.captured
            query = 'WorkflowType = "OrderToCash"'
            deadline = time.monotonic() + 10
            while (await client.count_workflows(query)).count < ORDERS and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            runs = [wf async for wf in client.list_workflows(query)]
            assert sorted(wf.id for wf in runs) == sorted(f"order-shopify-{oid}" for oid in order_ids)
            assert {wf.status for wf in runs} == {WorkflowExecutionStatus.COMPLETED}
    finally:
        server.stop()
