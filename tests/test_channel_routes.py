"""WooCommerce and BigCommerce through the hardened webhook ingress, on a real Temporal server.

Deliveries are signed as the vendors sign them, kept in the inbox before they are answered,
deduplicated, and end as completed orders (the warehouse and carrier simulators run in the
platform). BigCommerce callbacks are thin: the relay, not the request, fetches the order from
an in-process fake of BigCommerce's documented V2 API (``httpx.MockTransport``).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from temporalio.client import Client

from adapters.channels.bigcommerce import sign as bc_sign
from adapters.channels.woocommerce import sign as woo_sign
from api.app import create_app
from api.relay import InboxRelay
from store import inbox
from store.inbox import InboxEntry
from tests.platform import API, Platform, platform
from tests.seed import seed_catalog

Json = dict[str, Any]
FIXTURES = Path(__file__).parent / "fixtures"
WOO_SECRET = "wc_route_s3cret"
BC_SECRET = "bc_client_secret_for_tests"
STORE_HASH = "abc123"
TOKEN = "bc-test-token"
BC_API = "https://api.bigcommerce.test"
LINES = [("MUG-01", 2, "12.50"), ("HAT-RED", 1, "18.00")]  # seeded SKUs (tests/seed.py)

CHANNEL_SETTINGS: dict[str, Any] = {
    "woocommerce_webhook_secret": WOO_SECRET,
    "bigcommerce_webhook_secret": BC_SECRET,
    "bigcommerce_store_hash": STORE_HASH,
    "bigcommerce_access_token": TOKEN,
    "bigcommerce_api_url": BC_API,
    "webhook_relay_retry_initial_s": 0.1,
    "webhook_relay_retry_max_s": 0.5,
}


def new_id() -> int:
    """An order id no other test uses (workflow ids are deterministic; Temporal is shared)."""
    return 10**6 + uuid.uuid4().int % 10**9


# -- payloads: the fixtures, with seeded SKUs and totals that add up --------------------------


def woo_order(order_id: int, status: str = "processing") -> Json:
    data: Json = json.loads((FIXTURES / "woocommerce" / "order_guest_no_sku.json").read_text())
    template = data["line_items"][0]
    items, total = [], Decimal(0)
    for i, (sku, qty, price) in enumerate(LINES):
        amount = Decimal(price) * qty
        total += amount
        item = copy.deepcopy(template)
        item.update(
            id=order_id * 10 + i,
            product_id=100 + i,
            name=f"Product {sku}",
            sku=sku,
            quantity=qty,
            subtotal=f"{amount:.2f}",
            total=f"{amount:.2f}",
            price=float(price),
        )
        items.append(item)
    data.update(id=order_id, number=str(order_id), status=status, line_items=items, total=f"{total:.2f}")
    return data


def woo_headers(
    raw: bytes, topic: str, *, delivery_id: str | None = None, secret: str = WOO_SECRET
) -> dict[str, str]:
    resource, _, event = topic.partition(".")
    return {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7)",
        "X-WC-Webhook-Source": "https://shop.example.com/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": woo_sign(raw, secret),
        "X-WC-Webhook-ID": "17",
        "X-WC-Webhook-Delivery-ID": delivery_id or uuid.uuid4().hex,
    }


async def send_woo(p: Platform, payload: Json, topic: str = "order.created", **kw: Any) -> httpx.Response:
    raw = json.dumps(payload).encode()
    return await p.http.post("/webhooks/woocommerce", content=raw, headers=woo_headers(raw, topic, **kw))


def bc_order(order_id: int, status_id: int = 11) -> Json:
    """``{"order", "products", "shipping_addresses", "coupons"}`` as the V2 API returns them."""
    data: Json = json.loads((FIXTURES / "bigcommerce" / "order_guest_gift_certificate.json").read_text())
    template = data["products"][0]  # the physical line; the gift certificate is dropped
    products, total = [], Decimal(0)
    for i, (sku, qty, price) in enumerate(LINES):
        unit, amount = Decimal(price), Decimal(price) * qty
        total += amount
        item = copy.deepcopy(template)
        item.update(
            id=order_id * 10 + i,
            order_id=order_id,
            sku=sku,
            name=f"Product {sku}",
            quantity=qty,
            base_price=f"{unit:.4f}",
            price_ex_tax=f"{unit:.4f}",
            price_inc_tax=f"{unit:.4f}",
            base_total=f"{amount:.4f}",
            total_ex_tax=f"{amount:.4f}",
            total_inc_tax=f"{amount:.4f}",
            discounted_total_inc_tax=f"{amount:.4f}",
        )
        products.append(item)
    units = sum(q for _, q, _ in LINES)
    t = f"{total:.4f}"
    data["order"].update(
        id=order_id,
        status_id=status_id,
        subtotal_ex_tax=t,
        subtotal_inc_tax=t,
        total_ex_tax=t,
        total_inc_tax=t,
        gift_certificate_amount="0.0000",
        items_total=units,
    )
    for address in data["shipping_addresses"]:
        address.update(order_id=order_id, items_total=units)
    data["products"] = products
    return data


def bc_envelope(scope: str, data: Json, created_at: int | None = None) -> bytes:
    body = {
        "scope": scope,
        "store_id": "1025646",
        "producer": f"stores/{STORE_HASH}",
        "created_at": created_at or int(time.time()),
        "hash": hashlib.sha1(json.dumps(data).encode()).hexdigest(),
        "data": data,
    }
    return json.dumps(body).encode()


def bc_headers(raw: bytes, *, secret: str = BC_SECRET, msg_id: str | None = None) -> dict[str, str]:
    msg = msg_id or f"msg_{uuid.uuid4().hex[:12]}"
    ts = int(datetime.now(UTC).timestamp())
    return {
        "Content-Type": "application/json",
        "webhook-id": msg,
        "webhook-timestamp": str(ts),
        "webhook-signature": bc_sign(msg, ts, raw, secret),
    }


@dataclass
class FakeBigCommerce:
    """``GET /stores/{hash}/v2/orders/{id}`` and its sub-resources; ``script`` answers first."""

    orders: dict[int, Json] = field(default_factory=dict)
    script: list[httpx.Response] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            return self.script.pop(0)
        if request.headers.get("X-Auth-Token") != TOKEN:
            return httpx.Response(401, json=[{"status": 401, "message": "You are not authorized."}])
        parts = request.url.path.split("/")  # "", stores, hash, v2, orders, id[, sub]
        not_found = httpx.Response(
            404, json=[{"status": 404, "message": "The requested resource was not found."}]
        )
        if parts[:5] != ["", "stores", STORE_HASH, "v2", "orders"] or len(parts) not in (6, 7):
            return not_found
        data = self.orders.get(int(parts[5]))
        if data is None:
            return not_found
        if len(parts) == 6:
            return httpx.Response(200, json=data["order"])
        page = int(request.url.params.get("page", 1))
        items = data.get(parts[6], []) if page == 1 else []
        return httpx.Response(200, json=items) if items else httpx.Response(204)

    def fetches(self, order_id: int) -> int:
        return sum(1 for r in self.requests if r.url.path.endswith(f"/orders/{order_id}"))


@dataclass
class BigCommerceSide:
    """A second app on the platform's store and Temporal whose relay calls the fake."""

    fake: FakeBigCommerce
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def relay(self) -> InboxRelay:
        relay: InboxRelay = self.app.state.relay
        return relay

    async def send(self, raw: bytes, **kw: Any) -> httpx.Response:
        return await self.http.post("/webhooks/bigcommerce", content=raw, headers=bc_headers(raw, **kw))


@asynccontextmanager
async def bigcommerce_side(p: Platform) -> AsyncIterator[BigCommerceSide]:
    fake = FakeBigCommerce()
    app = create_app(
        p.settings,
        p.client,
        store=p.store,
        relay_loop=False,
        http_client_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(fake)),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=API) as http:
        yield BigCommerceSide(fake, app, http)


def rows(p: Platform, workflow_id: str) -> list[InboxEntry]:
    return sorted(inbox.list_inbox(p.store, workflow_id=workflow_id), key=lambda e: e.id)


async def relay_until_settled(
    relay: InboxRelay, store_p: Platform, entry_id: int, timeout: float = 15.0
) -> InboxEntry:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await relay.run_once()
        entry = inbox.get_entry(store_p.store, entry_id)
        assert entry is not None
        if entry.status != "pending":
            return entry
        await asyncio.sleep(0.1)
    raise AssertionError(f"inbox row {entry_id} still pending: {inbox.get_entry(store_p.store, entry_id)}")


def channel_platform(client: Client, tmp_path: Path, database_url: str, **kw: Any) -> Any:
    return platform(client, tmp_path, database_url, seed=seed_catalog, **(CHANNEL_SETTINGS | kw))


# -- WooCommerce -------------------------------------------------------------------------------


async def test_woocommerce_order_from_signed_delivery_to_completed(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with channel_platform(client, tmp_path, database_url) as p:
        oid = new_id()
        r = await send_woo(p, woo_order(oid))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "accepted" and r.json()["workflow_id"] == f"order-woocommerce-{oid}"
        entry = inbox.get_entry(p.store, int(r.headers["X-Retail-Inbox-Id"]))
        assert entry is not None and entry.status == "relayed" and entry.source == "woocommerce"
        state = await p.wait_status(f"woocommerce-{oid}", "Completed")
        assert state.status == "Completed"


async def test_woocommerce_ping_is_acknowledged_unsigned_and_kept(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with channel_platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        r = await p.http.post(
            "/webhooks/woocommerce",
            content=b"webhook_id=17",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "pong", "webhook_id": "17"}
        entry = inbox.get_entry(p.store, int(r.headers["X-Retail-Inbox-Id"]))
        assert entry is not None and (entry.topic, entry.status) == ("ping", "ignored")
        # A second activation is a duplicate, still answered 200.
        again = await p.http.post("/webhooks/woocommerce", content=b"webhook_id=17")
        assert again.status_code == 200 and again.json()["status"] == "duplicate"


async def test_woocommerce_bad_signature_is_401_and_recorded_without_the_signature(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with channel_platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        raw = json.dumps(woo_order(new_id())).encode()
        headers = woo_headers(raw, "order.created", secret="not-the-secret")
        r = await p.http.post("/webhooks/woocommerce", content=raw, headers=headers)
        assert r.status_code == 401 and r.json()["detail"]["reason"] == "invalid_signature"
        [rejection] = inbox.list_rejections(p.store)
        assert (rejection.source, rejection.status_code, rejection.reason) == (
            "woocommerce",
            401,
            "invalid_signature",
        )
        assert rejection.body is None  # unauthenticated: only the hash is kept
        assert "x-wc-webhook-signature" not in rejection.headers
        assert headers["X-WC-Webhook-Signature"] not in json.dumps(rejection.summary())


async def test_woocommerce_duplicate_delivery_starts_one_workflow(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with channel_platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        oid = new_id()
        delivery = uuid.uuid4().hex
        first = await send_woo(p, woo_order(oid), delivery_id=delivery)
        again = await send_woo(p, woo_order(oid), delivery_id=delivery)  # same delivery id
        resent = await send_woo(p, woo_order(oid))  # a new send of the same change
        assert first.json()["status"] == "accepted", first.text
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert resent.status_code == 200 and resent.json()["status"] == "duplicate"
        wf = f"order-woocommerce-{oid}"
        assert [e.status for e in rows(p, wf)] == ["relayed", "duplicate", "duplicate"]
        runs = [w async for w in client.list_workflows(f'WorkflowId = "{wf}"')]
        assert len(runs) <= 1  # visibility may lag; the describe below is authoritative
        await client.get_workflow_handle(wf).describe()
        await client.get_workflow_handle(wf).terminate("test cleanup: no worker runs it")


async def test_woocommerce_pending_order_waits_for_payment_then_deleted_order_is_cancelled(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with channel_platform(client, tmp_path, database_url, simulators=False) as p:
        oid = new_id()
        wf = f"order-woocommerce-{oid}"
        pending = woo_order(oid, status="pending")
        r = await send_woo(p, pending)
        assert r.status_code == 200 and r.json()["status"] == "ignored", r.text
        paid = woo_order(oid) | {"date_modified_gmt": "2026-11-23T03:46:00"}
        r = await send_woo(p, paid, "order.updated")
        assert r.json()["status"] == "accepted", r.text
        await p.wait_status(f"woocommerce-{oid}", "AwaitingShipment", "PartiallyShipped", "NeedsAttention")
        r = await send_woo(p, {"id": oid}, "order.deleted")
        assert r.json() == {"status": "cancel requested", "workflow_id": wf}, r.text
        await p.wait_status(f"woocommerce-{oid}", "Cancelled")
        assert [e.status for e in rows(p, wf)] == ["ignored", "relayed", "relayed"]


async def test_woocommerce_update_of_a_released_order_is_an_edit_conflict(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with channel_platform(client, tmp_path, database_url, simulators=False) as p:
        oid = new_id()
        key = f"woocommerce-{oid}"
        order = woo_order(oid) | {"date_modified_gmt": "2026-11-23T03:46:00"}
        assert (await send_woo(p, order)).json()["status"] == "accepted"
        await p.wait_status(key, "AwaitingShipment")
        # The same figures again (WooCommerce fires order.updated on many changes): nothing to do.
        same = order | {"date_modified_gmt": "2026-11-23T03:50:00"}
        assert (await send_woo(p, same, "order.updated")).json()["status"] == "accepted"
        st = await p.wait_for(key, lambda s: any(x.step == "order_edit" for x in s.steps))
        assert st.status == "AwaitingShipment"
        assert [x.detail for x in st.steps if x.step == "order_edit"] == [
            "update of 2026-11-23T03:50:00+00:00: nothing to apply"
        ]
        moved = copy.deepcopy(same) | {"date_modified_gmt": "2026-11-23T04:00:00"}
        moved["shipping"] = {**moved["shipping"], "address_1": "9 Other Rd"}
        assert (await send_woo(p, moved, "order.updated")).json()["status"] == "accepted"
        st = await p.wait_status(key, "NeedsAttention")
        assert st.attention is not None and st.attention.reason == "edit_conflict"
        assert "after release to WH-EAST" in st.attention.message and "9 Other Rd" in st.attention.message


async def test_woocommerce_authenticated_refusals_are_recorded_but_answered_200(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with channel_platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        bad = woo_order(new_id()) | {"total": "99.00"}  # totals that do not add up
        r = await send_woo(p, bad)
        assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
        assert r.json()["reason"] == "mapping_error" and r.json()["path"] == "total"
        unknown = await send_woo(p, {"id": new_id()}, "order.deleted")  # never started here
        assert unknown.status_code == 200 and unknown.json()["reason"] == "unknown_order", unknown.text
        reasons = {(x.source, x.reason, x.status_code) for x in inbox.list_rejections(p.store)}
        assert reasons == {("woocommerce", "mapping_error", 422), ("woocommerce", "unknown_order", 404)}


# -- BigCommerce -------------------------------------------------------------------------------


async def test_bigcommerce_order_from_signed_callback_to_completed(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with channel_platform(client, tmp_path, database_url) as p, bigcommerce_side(p) as bc:
        oid = new_id()
        bc.fake.orders[oid] = bc_order(oid)
        r = await bc.send(bc_envelope("store/order/created", {"type": "order", "id": oid}))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "queued" and r.json()["workflow_id"] == f"order-bigcommerce-{oid}"
        assert bc.fake.requests == []  # the request did no adapter work
        entry = await relay_until_settled(bc.relay, p, int(r.headers["X-Retail-Inbox-Id"]))
        assert entry.status == "relayed", entry
        assert bc.fake.fetches(oid) == 1
        await p.wait_status(f"bigcommerce-{oid}", "Completed")


async def test_bigcommerce_bad_signature_is_401_and_recorded(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with (
        channel_platform(client, tmp_path, database_url, worker=False, simulators=False) as p,
        bigcommerce_side(p) as bc,
    ):
        raw = bc_envelope("store/order/created", {"type": "order", "id": new_id()})
        r = await bc.send(raw, secret="some-other-secret")
        assert r.status_code == 401 and r.json()["detail"]["reason"] == "invalid_signature"
        stale = bc_headers(raw) | {"webhook-timestamp": str(int(time.time()) - 3600)}
        r = await bc.http.post("/webhooks/bigcommerce", content=raw, headers=stale)
        assert r.status_code == 401
        rejections = inbox.list_rejections(p.store)
        assert [(x.source, x.status_code) for x in rejections] == [("bigcommerce", 401)] * 2
        assert all("webhook-signature" not in x.headers for x in rejections)
        assert inbox.list_inbox(p.store) == []


async def test_bigcommerce_duplicate_callback_fetches_and_starts_once(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with (
        channel_platform(client, tmp_path, database_url, worker=False, simulators=False) as p,
        bigcommerce_side(p) as bc,
    ):
        oid = new_id()
        bc.fake.orders[oid] = bc_order(oid)
        raw = bc_envelope("store/order/created", {"type": "order", "id": oid})
        first = await bc.send(raw)
        retry = await bc.send(raw)  # BigCommerce's retry: same body, new webhook-id
        assert first.json()["status"] == "queued" and retry.json()["status"] == "duplicate"
        await relay_until_settled(bc.relay, p, int(first.headers["X-Retail-Inbox-Id"]))
        wf = f"order-bigcommerce-{oid}"
        assert [e.status for e in rows(p, wf)] == ["relayed", "duplicate"]
        assert bc.fake.fetches(oid) == 1
        await client.get_workflow_handle(wf).terminate("test cleanup: no worker runs it")


async def test_bigcommerce_rate_limit_delays_the_fetch_but_loses_nothing(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with channel_platform(client, tmp_path, database_url) as p, bigcommerce_side(p) as bc:
        oid = new_id()
        bc.fake.orders[oid] = bc_order(oid)
        bc.fake.script.append(
            httpx.Response(
                429,
                json={"status": 429, "title": "Too many requests"},
                headers={"X-Rate-Limit-Time-Reset-Ms": "1500"},
            )
        )
        r = await bc.send(bc_envelope("store/order/created", {"type": "order", "id": oid}))
        entry_id = int(r.headers["X-Retail-Inbox-Id"])
        before = datetime.now(UTC)
        report = await bc.relay.run_once()
        assert report.outcomes["failed"] == 1 and not report.stopped_early
        entry = inbox.get_entry(p.store, entry_id)
        assert entry is not None and entry.status == "pending" and entry.attempts == 1
        assert entry.last_error is not None and "rate limit" in entry.last_error
        waited = (entry.next_attempt_at - before).total_seconds()
        assert waited >= 1.3, waited  # the vendor's reset time, not the 0.1 s backoff
        assert bc.relay.temporal_ok  # BigCommerce's limit says nothing about Temporal
        await bc.relay.run_once()
        assert inbox.get_entry(p.store, entry_id).status == "pending"  # type: ignore[union-attr]
        settled = await relay_until_settled(bc.relay, p, entry_id)
        assert settled.status == "relayed" and settled.attempts == 2
        await p.wait_status(f"bigcommerce-{oid}", "Completed")


async def test_bigcommerce_incomplete_orders_are_ignored_and_unknown_ones_rejected(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with (
        channel_platform(client, tmp_path, database_url, worker=False, simulators=False) as p,
        bigcommerce_side(p) as bc,
    ):
        incomplete, missing = new_id(), new_id()
        bc.fake.orders[incomplete] = bc_order(incomplete, status_id=0)
        r1 = await bc.send(bc_envelope("store/order/created", {"type": "order", "id": incomplete}))
        r2 = await bc.send(bc_envelope("store/order/created", {"type": "order", "id": missing}))
        e1 = await relay_until_settled(bc.relay, p, int(r1.headers["X-Retail-Inbox-Id"]))
        e2 = await relay_until_settled(bc.relay, p, int(r2.headers["X-Retail-Inbox-Id"]))
        assert e1.status == "ignored" and e1.outcome is not None and "status 0" in e1.outcome
        assert e2.status == "rejected" and e2.outcome is not None
        assert e2.outcome.startswith("order_not_found")
        [rejection] = inbox.list_rejections(p.store)
        assert (rejection.reason, rejection.status_code, rejection.inbox_id) == (
            "order_not_found",
            404,
            e2.id,
        )
        # Placing the incomplete order rings again and starts it.
        bc.fake.orders[incomplete] = bc_order(incomplete)
        status = {"previous_status_id": 0, "new_status_id": 11}
        r3 = await bc.send(
            bc_envelope("store/order/statusUpdated", {"type": "order", "id": incomplete, "status": status})
        )
        assert r3.json()["status"] == "queued", r3.text
        e3 = await relay_until_settled(bc.relay, p, int(r3.headers["X-Retail-Inbox-Id"]))
        assert e3.status == "relayed", e3
        await client.get_workflow_handle(f"order-bigcommerce-{incomplete}").terminate("test cleanup")
