"""Shopify ``fulfillments/create`` and ``/update``: a channel that ships its own orders
(RETAIL_FULFILLED_BY_CHANNEL) is billed from its fulfillments; for the others the echo of the
platform's own report is ignored and any other fulfillment is recorded for a person."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowUpdateFailedError

from adapters.channels.errors import MappingError
from adapters.channels.shopify.fulfillments import fulfillment_from_shopify
from backoffice.erp import find_sales_order, list_invoices
from backoffice.wms import FulfillmentOrder
from canonical import ChannelFulfillment, Money, Shipment, ShipmentLine
from canonical.documents import Allocation
from orchestration.models import OperatorRequest
from sandboxes.shopify import (
    DEFAULT_ACCESS_TOKEN,
    SandboxServer,
    SandboxShop,
    WebhookDeliverer,
)
from store import inbox
from tests.platform import API, SHOPIFY_SECRET, Platform, platform
from tests.seed import PRODUCTS, seed_catalog
from tests.shopify_payloads import shopify_order
from workflows.channel_shipments import split_fulfillment
from workflows.order_to_cash import OrderToCash

FULFILLMENT_TOPICS = ("orders/create", "fulfillments/create", "fulfillments/update")


def _fulfillment(**overrides: Any) -> dict[str, Any]:
    """A Fulfillment as the contract documents the webhook body."""
    body: dict[str, Any] = {
        "id": 4900000000001,
        "order_id": 820982911946154508,
        "status": "success",
        "shipment_status": None,
        "service": "manual",
        "location_id": 71000000001,
        "tracking_company": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "tracking_numbers": ["1Z999AA10123456784"],
        "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
        "tracking_urls": ["https://www.ups.com/track?tracknum=1Z999AA10123456784"],
        "name": "#1001.1",
        "created_at": "2026-11-20T10:00:00-05:00",
        "updated_at": "2026-11-20T10:00:00-05:00",
        "line_items": [
            {"id": 466157049, "sku": "MUG-01", "quantity": 2, "fulfillment_status": "fulfilled"},
            {"id": 518995019, "sku": None, "quantity": 1, "fulfillment_status": "fulfilled"},
        ],
        "origin_address": None,
        "receipt": {},
        "admin_graphql_api_id": "gid://shopify/Fulfillment/4900000000001",
    }
    body.update(overrides)
    return body


# -- mapping ----------------------------------------------------------------------------------


def test_a_documented_fulfillment_maps_to_the_canonical_model() -> None:
    f = fulfillment_from_shopify(_fulfillment())
    assert f.fulfillment_id == "4900000000001"
    assert f.order_key == "shopify-820982911946154508"
    assert (f.status, f.shipment_status, f.location, f.name) == ("success", None, "71000000001", "#1001.1")
    assert [(ln.line_id, ln.sku, ln.quantity) for ln in f.lines] == [
        ("466157049", "MUG-01", 2),
        ("518995019", "", 1),  # a custom line without SKU
    ]
    assert (f.carrier, f.tracking_numbers) == ("UPS", ["1Z999AA10123456784"])
    assert f.occurred_at == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def test_older_payloads_carry_one_tracking_number() -> None:
    body = _fulfillment(tracking_number="9400100000000000000000")
    del body["tracking_numbers"]
    assert fulfillment_from_shopify(body).tracking_numbers == ["9400100000000000000000"]
    body = _fulfillment(tracking_number=None, tracking_numbers=[])
    assert fulfillment_from_shopify(body).tracking_numbers == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"status": "shipped"}, "status"),
        ({"status": None}, "status"),
        ({"order_id": None}, "order_id"),
        ({"id": True}, "id"),
        ({"line_items": []}, "line_items"),
        ({"line_items": [{"id": 1, "quantity": 0}]}, "line_items[0].quantity"),
        ({"line_items": [{"quantity": 1}]}, "line_items[0].id"),
        ({"updated_at": "yesterday"}, "updated_at"),
        ({"tracking_numbers": "1Z"}, "tracking_numbers"),
    ],
)
def test_a_fulfillment_that_does_not_map_names_the_field(change: dict[str, Any], path: str) -> None:
    with pytest.raises(MappingError) as err:
        fulfillment_from_shopify(_fulfillment(**change))
    assert err.value.path == path


# -- splitting a channel's fulfillment over the ERP's allocations ------------------------------


def _cf(lines: list[tuple[str, int]], fid: str = "77") -> ChannelFulfillment:
    return ChannelFulfillment(
        fulfillment_id=fid,
        order_key="shopify-1",
        status="success",
        lines=[ShipmentLine(line_id=line, sku=f"SKU-{line}", quantity=q) for line, q in lines],
        tracking_numbers=["TN1"],
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
    )


def _alloc(line: str, location: str, qty: int) -> Allocation:
    return Allocation(location=location, line_id=line, sku=f"SKU-{line}", quantity=qty)


def test_a_fulfillment_is_split_over_the_locations_the_erp_allocated() -> None:
    allocations = [_alloc("1", "WH-EAST", 3), _alloc("1", "WH-WEST", 2), _alloc("2", "WH-EAST", 1)]
    split = split_fulfillment("shopify", _cf([("1", 5), ("2", 1)]), allocations, [], {"1": 5, "2": 1})
    assert [
        (s.shipment_id, s.location, [(ln.line_id, ln.quantity) for ln in s.lines]) for s in split.shipments
    ] == [
        ("shopify-fulfillment-77@WH-EAST", "WH-EAST", [("1", 3), ("2", 1)]),
        ("shopify-fulfillment-77@WH-WEST", "WH-WEST", [("1", 2)]),
    ]
    assert all(s.tracking_numbers == ["TN1"] for s in split.shipments)


def test_what_shipped_before_is_taken_off_and_excess_goes_to_the_first_location() -> None:
    allocations = [_alloc("1", "WH-EAST", 3), _alloc("1", "WH-WEST", 2)]
    before = Shipment(
        shipment_id="s0",
        order_key="shopify-1",
        location="WH-EAST",
        lines=[ShipmentLine(line_id="1", sku="SKU-1", quantity=2)],
        shipped_at=datetime(2026, 11, 19, tzinfo=UTC),
    )
    split = split_fulfillment("shopify", _cf([("1", 2)]), allocations, [before], {"1": 5})
    # One unit left at WH-EAST, then WH-WEST.
    assert [(s.location, s.lines[0].quantity) for s in split.shipments] == [("WH-EAST", 1), ("WH-WEST", 1)]
    over = split_fulfillment("shopify", _cf([("1", 7), ("9", 1)]), allocations, [], {"1": 5})
    assert [(s.location, s.lines[0].quantity) for s in over.shipments] == [("WH-EAST", 5), ("WH-WEST", 2)]
    assert over.not_shipped_here == ["9"]  # not a line the platform ships
    assert over.shipments[0].shipment_id == "shopify-fulfillment-77@WH-EAST"


# -- end to end, on the sandbox storefront ---------------------------------------------------


def _order_id() -> int:
    return 10**9 + uuid.uuid4().int % 10**9  # the session shares one Temporal server


@asynccontextmanager
async def _shop_platform(
    client: Client, tmp: Path, database_url: str, **settings: Any
) -> AsyncIterator[tuple[Platform, SandboxShop, WebhookDeliverer]]:
    shop = SandboxShop(bucket_size=400, leak_per_s=200)
    shop.seed_catalog({"sku": sku, "title": f"Product {sku}", "price": price} for sku, price in PRODUCTS)
    async with (
        SandboxServer(shop) as server,
        platform(
            client,
            tmp,
            database_url,
            seed=seed_catalog,
            shopify_admin_url=server.url,
            shopify_access_token=DEFAULT_ACCESS_TOKEN,
            reconcile_schedule_prefix=f"cf-{uuid.uuid4().hex[:8]}",
            **settings,
        ) as p,
    ):
        deliverer = WebhookDeliverer(
            shop, p.http, SHOPIFY_SECRET, url=f"{API}/webhooks/shopify", topics=FULFILLMENT_TOPICS
        )
        try:
            yield p, shop, deliverer
        finally:
            deliverer.close()


def _warehouse_orders(p: Platform, order_key: str) -> list[FulfillmentOrder]:
    with p.store.session() as s:
        return list(s.scalars(select(FulfillmentOrder).where(FulfillmentOrder.order_key == order_key)))


async def test_a_channel_that_ships_its_own_orders_is_billed_from_its_fulfillments(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _shop_platform(client, tmp_path, database_url, fulfilled_by_channel=["shopify"]) as (
        p,
        shop,
        deliverer,
    ):
        oid = _order_id()
        key = f"shopify-{oid}"
        # 5 hats: the ERP allocates 3 at WH-EAST and 2 at WH-WEST (tests/seed.py).
        shop.create_order(shopify_order(oid, [("HAT-RED", 5, "18.00"), ("MUG-01", 1, "12.50")]))
        await deliverer.drain()
        st = await p.wait_for(key, lambda s: s.waiting_for == "fulfillment at shopify", timeout=60)
        assert st.status == "AwaitingShipment"
        releases = [s for s in st.steps if s.step.startswith("release_fulfillment:")]
        assert {(s.step, s.status) for s in releases} == {
            ("release_fulfillment:WH-EAST", "skipped"),
            ("release_fulfillment:WH-WEST", "skipped"),
        }
        assert _warehouse_orders(p, key) == []  # the warehouse is never asked

        # The merchant ships everything from Shopify's admin: one fulfillment, one location.
        [made] = shop.fulfil_in_admin(oid, tracking_number="1ZCHANNEL0001", company="UPS")
        await deliverer.drain()
        # Redelivered (Shopify delivers at least once): billed once all the same.
        await p.send_shopify(_shop_event_body(shop, "fulfillments/create", made["id"]), "fulfillments/create")
        # Billed (invoice and capture) once per location; the channel is not told what it did.
        st = await p.wait_for(key, lambda s: len(s.invoices) == 2 and s.status == "Shipped", timeout=60)
        so = find_sales_order(p.store, "shopify", str(oid))
        assert so is not None
        invoices = list_invoices(p.store, so.erp_order_id)
        # Split over the ERP's allocations: stock leaves the locations that reserved it.
        assert sorted((s.location, sum(ln.quantity for ln in s.lines)) for s in st.shipments) == [
            ("WH-EAST", 4),
            ("WH-WEST", 2),
        ]
        assert sorted(i.location for i in invoices) == ["WH-EAST", "WH-WEST"]
        assert st.captured == st.total == Money.sum((i.total for i in invoices), "USD")
        assert not any(s.step.startswith("notify_channel:") for s in st.steps)  # it knows
        assert len(shop.fulfillments(oid)) == 1  # nothing created at the channel twice

        # Shopify records the carrier's progress; delivered completes the order.
        shop.update_shipment_status(made["id"], "in_transit")
        await deliverer.drain()
        st = await p.wait_for(key, lambda s: s.waiting_for == "delivery by the carrier", timeout=30)
        shop.update_shipment_status(made["id"], "delivered")
        await deliverer.drain()
        st = await p.wait_status(key, "Completed", timeout=30)
        assert st.tracking == {"1ZCHANNEL0001": "delivered"}


def _shop_event_body(shop: SandboxShop, topic: str, fulfillment_id: int) -> dict[str, Any]:
    event = next(e for e in shop.events() if e.topic == topic and json.loads(e.body)["id"] == fulfillment_id)
    body: dict[str, Any] = json.loads(event.body)
    return body


async def test_the_echo_of_the_platforms_own_fulfillment_is_ignored_and_any_other_is_flagged(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _shop_platform(client, tmp_path, database_url, hold_above={"USD": "500"}) as (
        p,
        shop,
        deliverer,
    ):
        oid = _order_id()
        key = f"shopify-{oid}"
        shop.create_order(shopify_order(oid, [("MUG-01", 2, "12.50")]))
        await deliverer.drain()
        # The warehouse ships; the platform tells Shopify, whose fulfillments/create comes back.
        await p.wait_for(
            key, lambda s: any(x.step.startswith("notify_channel:") for x in s.steps), timeout=60
        )
        assert len(shop.fulfillments(oid)) == 1
        await deliverer.drain()
        echo = [
            a for a in deliverer.attempts if a.topic == "fulfillments/create" and a.outcome == "delivered"
        ]
        assert echo, deliverer.attempts
        st = await p.wait_status(key, "Completed", timeout=60)
        assert not any(s.step.startswith("channel_fulfillment:") for s in st.steps), st.steps
        so = find_sales_order(p.store, "shopify", str(oid))
        assert so is not None and len(list_invoices(p.store, so.erp_order_id)) == 1

        # An order held for approval (it reaches the limit) is fulfilled in Shopify's admin by
        # hand: the warehouse will ship it too, so once approved it waits for a person before
        # it goes on; nothing is billed from the channel's fulfillment.
        held = _order_id()
        held_key = f"shopify-{held}"
        shop.create_order(shopify_order(held, [("MUG-01", 40, "12.50")]))
        await deliverer.drain()
        await p.wait_status(held_key, "NeedsAttention", timeout=60)
        [made] = shop.fulfil_in_admin(held, tracking_number="1ZBYHAND0001", company="UPS")
        await deliverer.drain()
        await p.handle(held_key).execute_update(
            OrderToCash.approve, OperatorRequest(operator="ops", reason="checked the customer")
        )
        st = await p.wait_for(
            held_key, lambda s: s.attention is not None and s.attention.reason == "fulfilled_at_channel"
        )
        assert st.attention is not None and st.attention.step == f"channel_fulfillment:{made['id']}"
        assert "did not ship" in st.attention.message and st.invoiced.is_zero
        await p.handle(held_key).execute_update(
            OrderToCash.skip,
            OperatorRequest(operator="ops", reason="merchant clicked by mistake", reference="SHOP-NOTE-1"),
        )
        # The warehouse ships too; Shopify has nothing left to fulfil, so telling it waits for
        # the same person (who settles the double shipment and skips).
        st = await p.wait_for(
            held_key,
            lambda s: s.attention is not None and s.attention.step.startswith("notify_channel:"),
            timeout=60,
        )
        assert st.attention is not None and "nothing open to fulfil" in st.attention.message
        await p.handle(held_key).execute_update(
            OrderToCash.skip,
            OperatorRequest(operator="ops", reason="already fulfilled at Shopify", reference="SHOP-NOTE-1"),
        )
        st = await p.wait_status(held_key, "Completed", timeout=60)
        assert len(st.invoices) == 1  # billed from the warehouse's shipment only

        # A fulfillment for an order the platform does not have (yet: its webhook may come
        # later; or never: a POS sale): 200, kept and retried for a while, then rejected.
        stranger = _order_id()
        r = await p.send_shopify(_fulfillment(order_id=stranger), "fulfillments/create")
        assert r.status_code == 200 and r.json()["status"] == "queued", r.text
        [row] = inbox.list_inbox(p.store, workflow_id=f"order-shopify-{stranger}")
        assert row.status == "pending" and "in case its order comes" in (row.last_error or ""), row


def _channel_platform(client: Client, tmp: Path, database_url: str, **settings: Any) -> Any:
    """The platform with Shopify shipping its own orders (no sandbox: payloads sent by hand)."""
    settings.setdefault("fulfilled_by_channel", ["shopify"])
    return platform(client, tmp, database_url, seed=seed_catalog, **settings)


def _reported(order: dict[str, Any], fid: int, at: str, **fields: Any) -> dict[str, Any]:
    """A fulfillment of all of ``order``'s lines, as Shopify reports it at ``at``."""
    lines = [{"id": li["id"], "sku": li["sku"], "quantity": li["quantity"]} for li in order["line_items"]]
    body = _fulfillment(id=fid, order_id=order["id"], line_items=lines, updated_at=at, created_at=at)
    body.update(fields)
    return body


async def test_channel_reports_out_of_order_retracked_and_cancelled(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _channel_platform(client, tmp_path, database_url) as p:
        late, pending, cancelled = (shopify_order(_order_id(), [("MUG-01", 2, "12.50")]) for _ in range(3))
        for order in (late, pending, cancelled):
            assert (await p.send_shopify(order)).status_code == 200
        for order in (late, pending, cancelled):
            await p.wait_for(
                f"shopify-{order['id']}", lambda s: s.waiting_for == "fulfillment at shopify", 60
            )

        # Delivered arrives before its own fulfillments/create (Shopify does not keep order):
        # billed once, and the older report does not undo "delivered".
        key = f"shopify-{late['id']}"
        newer = _reported(late, 501, "2026-11-20T12:00:00-05:00", shipment_status="delivered")
        await p.send_shopify(newer, "fulfillments/update")
        await p.send_shopify(_reported(late, 501, "2026-11-20T10:00:00-05:00"), "fulfillments/create")
        st = await p.wait_status(key, "Completed", timeout=60)
        assert len(st.invoices) == 1 and st.captured == st.total

        # Open first (nothing billed), then success; then Shopify's update_tracking replaces the
        # number: the order waits for the new one's delivery, not the old one's.
        key = f"shopify-{pending['id']}"
        await p.send_shopify(
            _reported(pending, 502, "2026-11-20T10:00:00-05:00", status="open"), "fulfillments/create"
        )
        await p.send_shopify(
            _reported(pending, 502, "2026-11-20T11:00:00-05:00", tracking_numbers=["OLD-1"]),
            "fulfillments/update",
        )
        st = await p.wait_for(key, lambda s: len(s.invoices) == 1, 60)
        assert st.tracking == {"OLD-1": "shipped"}
        await p.send_shopify(
            _reported(
                pending,
                502,
                "2026-11-20T12:00:00-05:00",
                tracking_numbers=["NEW-1"],
                shipment_status="in_transit",
            ),
            "fulfillments/update",
        )
        st = await p.wait_for(key, lambda s: s.tracking == {"NEW-1": "in_transit"}, 30)
        await p.send_shopify(
            _reported(
                pending,
                502,
                "2026-11-20T13:00:00-05:00",
                tracking_numbers=["NEW-1"],
                shipment_status="delivered",
            ),
            "fulfillments/update",
        )
        st = await p.wait_status(key, "Completed", timeout=30)
        assert len(st.invoices) == 1

        # Billed, then cancelled at Shopify: the money stands and a person settles it.
        key = f"shopify-{cancelled['id']}"
        await p.send_shopify(_reported(cancelled, 503, "2026-11-20T10:00:00-05:00"), "fulfillments/create")
        await p.wait_for(key, lambda s: len(s.invoices) == 1, 60)
        await p.send_shopify(
            _reported(cancelled, 503, "2026-11-20T11:00:00-05:00", status="cancelled"), "fulfillments/update"
        )
        st = await p.wait_for(
            key,
            lambda s: s.attention is not None and s.attention.reason == "fulfillment_cancelled_at_channel",
            30,
        )
        assert st.captured == st.total and st.tracking == {}
        await p.handle(key).execute_update(
            OrderToCash.skip, OperatorRequest(operator="ops", reason="re-shipped", reference="CS-1")
        )
        await p.wait_status(key, "Completed", timeout=30)


async def test_an_order_the_channel_fulfilled_while_held_cannot_be_cancelled_unbilled(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _channel_platform(client, tmp_path, database_url, hold_above={"USD": "100"}) as p:
        order = shopify_order(_order_id(), [("MUG-01", 9, "12.50")])
        key = f"shopify-{order['id']}"
        await p.send_shopify(order)
        await p.wait_status(key, "NeedsAttention", timeout=60)
        r = await p.send_shopify(_reported(order, 504, "2026-11-20T10:00:00-05:00"), "fulfillments/create")
        assert r.json()["status"] == "accepted", r.text  # signalled before the cancel below
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await p.handle(key).execute_update(
                OrderToCash.cancel, OperatorRequest(operator="ops", reason="fraud check")
            )
        assert "not billed yet" in str(refused.value.cause)
        await p.handle(key).execute_update(
            OrderToCash.approve, OperatorRequest(operator="ops", reason="the goods have left")
        )
        st = await p.wait_for(key, lambda s: len(s.invoices) == 1, 60)
        assert st.captured == st.total


async def test_a_fulfillment_that_overtakes_its_order_is_billed_once_the_order_comes(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _channel_platform(
        client, tmp_path, database_url, webhook_relay_retry_initial_s=0.2, webhook_relay_retry_max_s=0.2
    ) as p:
        order = shopify_order(_order_id(), [("MUG-01", 1, "12.50")])
        key = f"shopify-{order['id']}"
        r = await p.send_shopify(_reported(order, 505, "2026-11-20T10:00:00-05:00"), "fulfillments/create")
        assert r.json()["status"] == "queued", r.text
        assert (await p.send_shopify(order)).json()["status"] == "accepted"
        assert p.app is not None
        for _ in range(50):  # the API's relay loop, by hand (the test app runs no lifespan)
            await p.app.state.relay.run_once()
            [row] = [e for e in inbox.list_inbox(p.store, workflow_id=f"order-{key}") if e.signal]
            if row.status == "relayed":
                break
            await asyncio.sleep(0.1)
        st = await p.wait_for(key, lambda s: len(s.invoices) == 1, 60)
        assert st.captured == st.total


async def test_an_edit_before_the_channel_fulfils_reduces_the_erp_order_and_what_is_billed(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _channel_platform(client, tmp_path, database_url) as p:
        order = shopify_order(_order_id(), [("MUG-01", 3, "12.50"), ("TEE-BLK-M", 1, "25.00")])
        key = f"shopify-{order['id']}"
        await p.send_shopify(order)
        await p.wait_for(key, lambda s: s.waiting_for == "fulfillment at shopify", 60)
        # The customer drops two mugs before the merchant ships (Shopify's order editing).
        edited = json.loads(json.dumps(order)) | {"updated_at": "2026-11-20T11:00:00-05:00"}
        edited["line_items"][0]["current_quantity"] = 1
        await p.send_shopify(edited, "orders/updated")
        st = await p.wait_for(key, lambda s: any(x.step == "order_edit" for x in s.steps), 30)
        [edit] = [x for x in st.steps if x.step == "order_edit"]
        assert edit.status == "done", st.steps
        assert st.attention is None and st.total < Money.of("62.50", "USD")
        so = find_sales_order(p.store, "shopify", str(order["id"]))
        assert so is not None and [ln.quantity for ln in so.lines] == [1, 1]

        mug, tee = order["line_items"]
        lines = [
            {"id": mug["id"], "sku": "MUG-01", "quantity": 1},
            {"id": tee["id"], "sku": "TEE-BLK-M", "quantity": 1},
        ]
        body = _fulfillment(id=506, order_id=order["id"], line_items=lines, tracking_numbers=[])
        body["tracking_number"] = None
        await p.send_shopify(body, "fulfillments/create")
        st = await p.wait_status(key, "Completed", timeout=60)
        assert st.captured == st.invoiced == st.total
