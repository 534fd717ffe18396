"""The write side of the polled channels, against the Amazon SP-API and Adobe Commerce fakes over
real HTTP: shipments confirmed (one package / one shipment however often the call is retried),
Amazon MFN stock, Adobe Commerce cancellations, errors in the taxonomy; what stays recorded by the
builtin channel; and end to end, an order polled, shipped by the builtin warehouse and told back
to the channel. Order ids come from uuid4: every test shares one Temporal server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.routing import channel_adapter
from adapters.channels.adobe_commerce import AdobeCommerceClient, AdobeCommerceWriter
from adapters.channels.adobe_commerce.writer import marker
from adapters.channels.amazon import AmazonClient, AmazonWriter
from adapters.channels.amazon.writer import package_reference_id, split_packages
from adapters.channels.builtin import BuiltinChannel, list_notifications
from adapters.channels.polled import PolledChannel
from adapters.errors import PermanentError, RateLimitedError, TransientError
from canonical import ChannelAvailability, Money, Shipment
from canonical.fulfillment import ShipmentLine
from orchestration.models import OperatorRequest
from sandboxes.adobe_commerce import (
    TOKEN,
    AdobeCommerceSandbox,
    adobe_order,
    create_adobe_commerce_app,
)
from sandboxes.amazon import (
    CLIENT_ID,
    CLIENT_SECRET,
    MARKETPLACE_US,
    REFRESH_TOKEN,
    SELLER_ID,
    AmazonSandbox,
    amazon_order,
    create_amazon_app,
)
from sandboxes.app_server import AppServer
from settings import Settings
from store.db import Store
from tests.platform import Platform, platform
from tests.seed import seed_catalog
from workflows.order_to_cash import OrderToCash
from workflows.schedules import start_poll

PLANS = {
    "getOrders": (5.0, 50),
    "getOrder": (5.0, 50),
    "getOrderItems": (20.0, 100),
    "confirmShipment": (2.0, 10),
    "patchListingsItem": (5.0, 5),
    "getListingsItem": (5.0, 10),
}


def _amazon_id() -> str:
    n = uuid.uuid4().int
    return f"{n % 900 + 100}-{n // 1000 % 10**7:07d}-{n // 10**10 % 10**7:07d}"


def _entity_id() -> int:
    return uuid.uuid4().int % 90_000_000 + 10_000_000


def _ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def _shipment(
    order_key: str,
    lines: list[tuple[str, str, int]],
    tracking: list[str],
    *,
    carrier: str | None = "UPS",
    shipment_id: str | None = None,
) -> Shipment:
    return Shipment(
        shipment_id=shipment_id or f"SH-{uuid.uuid4().hex[:8]}",
        order_key=order_key,
        location="WH-EAST",
        lines=[ShipmentLine(line_id=line, sku=sku, quantity=q) for line, sku, q in lines],
        carrier=carrier,
        service="ground",
        tracking_numbers=tracking,
        shipped_at=datetime.now(UTC),
    )


@asynccontextmanager
async def _amazon(
    marketplaces: tuple[str, ...] = (MARKETPLACE_US,), **knobs: Any
) -> AsyncIterator[tuple[AmazonWriter, AmazonSandbox]]:
    sandbox = AmazonSandbox(lag_s=0.0, min_before_s=1.0, plans=dict(PLANS), **knobs)
    async with AppServer(create_amazon_app(sandbox)) as server, httpx.AsyncClient(timeout=10) as http:
        client = AmazonClient(
            server.url,
            list(marketplaces),
            CLIENT_ID,
            CLIENT_SECRET,
            REFRESH_TOKEN,
            http,
            lwa_url=f"{server.url}/auth/o2/token",
        )
        yield AmazonWriter(client, seller_id=SELLER_ID), sandbox


@asynccontextmanager
async def _adobe() -> AsyncIterator[tuple[AdobeCommerceWriter, AdobeCommerceSandbox]]:
    sandbox = AdobeCommerceSandbox()
    async with AppServer(create_adobe_commerce_app(sandbox)) as server, httpx.AsyncClient(timeout=10) as http:
        yield AdobeCommerceWriter(AdobeCommerceClient(server.url, "default", TOKEN, http)), sandbox


def _add_amazon(
    sandbox: AmazonSandbox, lines: list[tuple[str, int, str]], **kw: Any
) -> tuple[str, list[str]]:
    oid = _amazon_id()
    order, items = amazon_order(oid, lines, updated=_ago(60), **kw)
    sandbox.add_order(order, items)
    return oid, [i["OrderItemId"] for i in items]


# -- Amazon confirmShipment -------------------------------------------------------------------------


def test_package_reference_ids_are_positive_stable_and_distinct() -> None:
    ref = package_reference_id("111-1111111-1111111", "SH-1", 0)
    assert ref.isdigit() and 0 < int(ref) <= 999_999_999
    assert ref == package_reference_id("111-1111111-1111111", "SH-1", 0)
    assert len({ref, package_reference_id("111-1111111-1111111", "SH-1", 1)}) == 2
    assert ref != package_reference_id("111-1111111-1111111", "SH-2", 0)
    assert split_packages({"A": 2, "B": 1}, 2) == [{"A": 2}, {"B": 1}]
    assert split_packages({"A": 1}, 3) == [{"A": 1}]


async def test_amazon_confirms_a_shipment_once_however_often_it_is_retried() -> None:
    async with _amazon() as (writer, amazon):
        oid, (first, second) = _add_amazon(amazon, [("MUG-01", 2, "12.50"), ("TEE-BLK-M", 1, "25.00")])
        shipment = _shipment(f"amazon-{oid}", [(first, "MUG-01", 2), (second, "TEE-BLK-M", 1)], ["1Z999AA1"])
        ack = await writer.notify_fulfillment(oid, shipment, f"order-amazon-{oid}:channel_fulfillment:x")
        # A retry (the activity's, or an operator's under a new key) edits the same package.
        again = await writer.notify_fulfillment(oid, shipment, f"order-amazon-{oid}:channel_fulfillment:x:r1")
        assert (
            ack.reference
            == again.reference
            == f"package:{package_reference_id(oid, shipment.shipment_id, 0)}"
        )
        assert len(amazon.confirmations) == 2
        [package] = amazon.packages[oid].values()
        assert package["trackingNumber"] == "1Z999AA1" and package["carrierCode"] == "UPS"
        assert "carrierName" not in package and package["shippingMethod"] == "ground"
        assert sorted((r["orderItemId"], r["quantity"]) for r in package["orderItems"]) == [
            (first, 2),
            (second, 1),
        ]
        order = amazon.orders[oid]
        assert (order["OrderStatus"], order["NumberOfItemsShipped"], order["NumberOfItemsUnshipped"]) == (
            "Shipped",
            3,
            0,
        )
        assert [i["QuantityShipped"] for i in amazon.items[oid]] == [2, 1]


async def test_amazon_partial_shipments_and_several_tracking_numbers_are_separate_packages() -> None:
    async with _amazon() as (writer, amazon):
        oid, (first, second) = _add_amazon(amazon, [("MUG-01", 3, "12.50"), ("TEE-BLK-M", 1, "25.00")])
        one = _shipment(f"amazon-{oid}", [(first, "MUG-01", 3)], ["T-1", "T-2"], carrier="builtin")
        await writer.notify_fulfillment(oid, one, "k1")
        assert amazon.orders[oid]["OrderStatus"] == "PartiallyShipped"
        packages = list(amazon.packages[oid].values())
        assert [p["trackingNumber"] for p in packages] == ["T-1", "T-2"]
        assert [p["orderItems"][0]["quantity"] for p in packages] == [2, 1]  # 3 units over 2 boxes
        assert {(p["carrierCode"], p["carrierName"]) for p in packages} == {("Other", "builtin")}
        two = _shipment(f"amazon-{oid}", [(second, "TEE-BLK-M", 1)], ["T-3"])
        await writer.notify_fulfillment(oid, two, "k2")
        assert amazon.orders[oid]["OrderStatus"] == "Shipped" and len(amazon.packages[oid]) == 3


async def test_amazon_refusals_and_throttling_are_in_the_taxonomy() -> None:
    async with _amazon(auto_confirmed=set()) as (writer, amazon):
        oid, (item,) = _add_amazon(amazon, [("MUG-01", 1, "12.50")])
        ship = _shipment(f"amazon-{oid}", [(item, "MUG-01", 1)], ["1Z1"])

        # No tracking number: refused before anything is sent (Amazon requires one).
        with pytest.raises(PermanentError) as none:
            await writer.notify_fulfillment(oid, ship.model_copy(update={"tracking_numbers": []}), "k")
        assert none.value.reason == "amazon_tracking_required" and not amazon.confirmations

        amazon.fail_next("confirmShipment", 429, 503)
        with pytest.raises(RateLimitedError) as throttled:
            await writer.notify_fulfillment(oid, ship, "k")
        assert throttled.value.retry_after == pytest.approx(0.5)  # 1 / the 2 per second plan
        with pytest.raises(TransientError):
            await writer.notify_fulfillment(oid, ship, "k")

        too_many = _shipment(f"amazon-{oid}", [(item, "MUG-01", 2)], ["1Z2"])
        with pytest.raises(PermanentError) as rejected:
            await writer.notify_fulfillment(oid, too_many, "k")
        assert rejected.value.reason == "amazon_shipment_rejected"
        assert "more than the 1 unshipped" in rejected.value.message

        amazon.auto_confirmed.add(oid)  # the label was bought through Amazon: confirmed by Amazon
        with pytest.raises(PermanentError) as auto:
            await writer.notify_fulfillment(oid, ship, "k")
        assert auto.value.reason == "amazon_shipment_rejected" and "Amazon" in auto.value.message

        cancelled, (c_item,) = _add_amazon(amazon, [("MUG-01", 1, "12.50")], status="Canceled")
        with pytest.raises(PermanentError) as gone:
            await writer.notify_fulfillment(cancelled, _shipment("k", [(c_item, "MUG-01", 1)], ["1Z3"]), "k")
        assert gone.value.reason == "amazon_shipment_rejected" and "Canceled" in gone.value.message

        with pytest.raises(PermanentError) as unknown:
            await writer.notify_fulfillment(_amazon_id(), ship, "k")
        assert unknown.value.reason == "amazon_order_not_found"
        assert not amazon.packages


async def test_amazon_with_several_marketplaces_confirms_in_the_orders_own() -> None:
    async with _amazon(marketplaces=("A2EUQ1WTGCTBG2", MARKETPLACE_US)) as (writer, amazon):
        oid, (item,) = _add_amazon(amazon, [("MUG-01", 1, "12.50")])
        await writer.notify_fulfillment(oid, _shipment(f"amazon-{oid}", [(item, "MUG-01", 1)], ["1Z1"]), "k")
        assert amazon.confirmations[0][1]["marketplaceId"] == MARKETPLACE_US  # from getOrder
        assert amazon.orders[oid]["OrderStatus"] == "Shipped"


# -- Amazon stock -----------------------------------------------------------------------------------


async def test_amazon_stock_is_patched_per_sku_through_the_rate_limit_each_sku_once() -> None:
    async with _amazon() as (writer, amazon):
        amazon.set_listing(
            "SKU-0", [{"fulfillment_channel_code": "DEFAULT", "quantity": 1, "lead_time_to_ship_max_days": 3}]
        )
        levels = [
            ChannelAvailability(
                channel="amazon", sku=f"SKU-{n}", available=n * 2, locations=["WH-EAST"], safety_buffer=0
            )
            for n in range(8)
        ]
        attempts = 0
        while True:  # what Temporal does with RateLimitedError: the same activity, after the delay
            attempts += 1
            try:
                ack = await writer.push_inventory(levels, "sync:42:abc")
                break
            except RateLimitedError as err:
                assert err.retry_after == pytest.approx(0.2)  # 1 / the 5 per second plan
                await asyncio.sleep(err.retry_after)
        assert attempts > 1 and amazon.throttled["patchListingsItem"] >= 1
        assert sorted(sku for sku, _ in amazon.listing_patches) == sorted(a.sku for a in levels)  # once each
        assert [amazon.listing_quantity(a.sku) for a in levels] == [a.available for a in levels]
        assert amazon.listings["SKU-0"][0]["lead_time_to_ship_max_days"] == 3  # merge keeps the handling time
        assert ack.reference == "listings:sync:42:abc"
        patch = amazon.listing_patches[0][1]
        assert patch["productType"] == "PRODUCT" and patch["patches"][0]["op"] == "merge"

        await asyncio.sleep(0.25)  # a token back in the bucket
        with pytest.raises(PermanentError) as bad:
            await writer.push_inventory(
                [
                    ChannelAvailability(
                        channel="amazon", sku="BadSKU", available=1, locations=[], safety_buffer=0
                    )
                ],
                "k2",
            )
        assert bad.value.reason == "amazon_listing_rejected"


async def test_amazon_applies_an_accepted_quantity_later() -> None:
    async with _amazon(listing_delay_s=0.3) as (writer, amazon):
        level = ChannelAvailability(channel="amazon", sku="SKU-L", available=5, locations=[], safety_buffer=0)
        await writer.push_inventory([level], "k")
        assert amazon.listing_quantity("SKU-L") is None  # ACCEPTED is queued, not applied
        await asyncio.sleep(0.35)
        assert amazon.listing_quantity("SKU-L") == 5
        assert await writer.client.listing_quantities(SELLER_ID, "SKU-L", MARKETPLACE_US) == {"DEFAULT": 5}


# -- Adobe Commerce ---------------------------------------------------------------------------------


async def test_adobe_commerce_ships_once_however_often_it_is_retried() -> None:
    async with _adobe() as (writer, adobe):
        eid = _entity_id()
        order = adobe.add_order(
            adobe_order(eid, [("MUG-01", 2, "12.50"), ("HAT-RED", 1, "18.00")], updated=_ago(60))
        )
        for item in order["items"]:
            item["qty_invoiced"] = item["qty_ordered"]  # paid at the store: invoiced
        number = order["increment_id"]
        lines = [(str(i["item_id"]), i["sku"], i["qty_ordered"]) for i in order["items"]]
        shipment = _shipment(f"adobe_commerce-{number}", lines, ["1Z999AA1"])
        ack = await writer.notify_fulfillment(number, shipment, "k")
        again = await writer.notify_fulfillment(number, shipment, "k:r1")  # after a lost answer, say
        assert ack == again and len(adobe.ship_requests) == 1
        [created] = adobe.order_shipments(eid)
        assert ack.reference == f"shipment:{created['entity_id']}"
        assert [(t["track_number"], t["carrier_code"], t["title"]) for t in created["tracks"]] == [
            ("1Z999AA1", "ups", "UPS")
        ]
        assert sorted((i["order_item_id"], i["qty"]) for i in created["items"]) == sorted(
            (int(line), q) for line, _, q in lines
        )
        assert marker(shipment.shipment_id) in created["comments"][0]["comment"]
        assert adobe.orders[eid]["state"] == "complete"  # shipped and invoiced

        # Without tracking: a shipment without tracks, recognised on a retry by its comment.
        eid2 = _entity_id()
        o2 = adobe.add_order(adobe_order(eid2, [("MUG-01", 1, "12.50")], updated=_ago(60)))
        plain = _shipment("x", [(str(o2["items"][0]["item_id"]), "MUG-01", 1)], [], carrier="My Courier")
        first = await writer.notify_fulfillment(o2["increment_id"], plain, "k")
        assert await writer.notify_fulfillment(o2["increment_id"], plain, "k") == first
        [bare] = adobe.order_shipments(eid2)
        assert bare["tracks"] == [] and adobe.orders[eid2]["state"] == "processing"  # not invoiced


async def test_adobe_commerce_refusals_and_throttling_are_in_the_taxonomy() -> None:
    async with _adobe() as (writer, adobe):
        eid = _entity_id()
        order = adobe.add_order(adobe_order(eid, [("MUG-01", 1, "12.50")], updated=_ago(60)))
        item = str(order["items"][0]["item_id"])
        ship = _shipment("x", [(item, "MUG-01", 1)], ["1Z1"])
        adobe.fail_next(429)
        with pytest.raises(RateLimitedError) as throttled:
            await writer.notify_fulfillment(order["increment_id"], ship, "k")
        assert throttled.value.retry_after == 1.0
        adobe.fail_next(503)
        with pytest.raises(TransientError):
            await writer.notify_fulfillment(order["increment_id"], ship, "k")
        with pytest.raises(PermanentError) as over:
            await writer.notify_fulfillment(
                order["increment_id"], _shipment("x", [(item, "MUG-01", 5)], ["1Z2"]), "k"
            )
        assert (
            over.value.reason == "adobe_commerce_bad_request"
            and "Shipment Document Validation" in over.value.message
        )
        with pytest.raises(PermanentError) as unknown:
            await writer.notify_fulfillment("999999999", ship, "k")
        assert unknown.value.reason == "adobe_commerce_not_found"
        adobe.update_order(eid, state="canceled", status="canceled")
        with pytest.raises(PermanentError) as cancelled:
            await writer.notify_fulfillment(order["increment_id"], ship, "k")
        assert "does not allow a shipment" in cancelled.value.message and not adobe.ship_requests


async def test_adobe_commerce_cancels_once_and_refuses_an_invoiced_order() -> None:
    async with _adobe() as (writer, adobe):
        eid = _entity_id()
        order = adobe.add_order(adobe_order(eid, [("MUG-01", 1, "12.50")], updated=_ago(60)))
        ack = await writer.notify_cancelled(order["increment_id"], "customer asked", "k")
        assert ack.reference == f"cancelled:{eid}" and adobe.orders[eid]["state"] == "canceled"
        assert await writer.notify_cancelled(order["increment_id"], "customer asked", "k") == ack  # already

        eid2 = _entity_id()
        paid = adobe.add_order(adobe_order(eid2, [("MUG-01", 1, "12.50")], updated=_ago(60)))
        paid["items"][0]["qty_invoiced"] = 1
        with pytest.raises(PermanentError) as refused:
            await writer.notify_cancelled(paid["increment_id"], "customer asked", "k")
        assert (
            refused.value.reason == "adobe_commerce_cannot_cancel" and "credit memo" in refused.value.message
        )
        assert adobe.orders[eid2]["state"] == "processing"


# -- routing: what goes to the vendor, what is recorded -----------------------------------------------


async def test_writes_the_vendor_does_not_take_are_recorded_by_the_builtin_channel(store: Store) -> None:
    base = {
        "database_url": "sqlite://",
        "amazon_client_id": CLIENT_ID,
        "adobe_commerce_url": "http://store.test",
    }
    amazon = channel_adapter(Settings(**base), store, "amazon")
    assert isinstance(amazon, PolledChannel) and isinstance(amazon.fulfillment, AmazonWriter)
    assert amazon.cancellation is None and amazon.inventory is None  # no seller id: stock recorded
    with_seller = channel_adapter(Settings(**base, amazon_seller_id=SELLER_ID), store, "amazon")
    assert isinstance(with_seller, PolledChannel) and isinstance(with_seller.inventory, AmazonWriter)
    adobe = channel_adapter(Settings(**base), store, "adobe_commerce")
    assert isinstance(adobe, PolledChannel) and adobe.fulfillment is adobe.cancellation is not None
    assert adobe.inventory is None

    recorded = PolledChannel(
        amazon.reader, BuiltinChannel(store, channel="amazon"), fulfillment=amazon.fulfillment
    )
    ack = await recorded.refund_payment(
        "111-0000000-0000001", Money.of("5.00", "USD"), "cancelled", "k-refund"
    )
    await recorded.notify_cancelled("111-0000000-0000001", "cancelled", "k-cancel")
    kinds = sorted(n.kind for n in list_notifications(store, channel="amazon"))
    assert kinds == ["cancelled", "refund"] and ack.channel == "amazon"


# -- end to end: polled, shipped by the builtin warehouse, told to the channel ------------------------


def _settings(amazon: AppServer, adobe: AppServer) -> dict[str, Any]:
    return {
        "poll_channels": ["amazon", "adobe_commerce"],
        "poll_schedule_prefix": f"poll-{uuid.uuid4().hex[:8]}",
        "poll_page_size": 2,
        "poll_settle_s": 1.5,
        "poll_overlap_s": 60.0,
        "amazon_endpoint": amazon.url,
        "amazon_lwa_url": f"{amazon.url}/auth/o2/token",
        "amazon_client_id": CLIENT_ID,
        "amazon_client_secret": CLIENT_SECRET,
        "amazon_refresh_token": REFRESH_TOKEN,
        "adobe_commerce_url": adobe.url,
        "adobe_commerce_token": TOKEN,
        "inventory_channels": [],
        "hold_above": {"USD": "100"},
    }


@asynccontextmanager
async def _polled(
    client: Client, tmp: Path, database_url: str
) -> AsyncIterator[tuple[Platform, AmazonSandbox, AdobeCommerceSandbox]]:
    amazon = AmazonSandbox(lag_s=0.0, min_before_s=1.0, plans=dict(PLANS))
    adobe = AdobeCommerceSandbox()
    async with (
        AppServer(create_amazon_app(amazon)) as a,
        AppServer(create_adobe_commerce_app(adobe)) as b,
        platform(client, tmp, database_url, seed=seed_catalog, **_settings(a, b)) as p,
    ):
        yield p, amazon, adobe


async def _poll(p: Platform, channel: str) -> dict[str, int]:
    result = await (await start_poll(p.client, p.settings, channel, None)).result()
    return {k: result.count(k) for k in ("imported", "known", "held", "cancelled")}


async def test_an_amazon_order_polled_and_shipped_is_confirmed_at_amazon_with_its_tracking(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _polled(client, tmp_path, database_url) as (p, amazon, _):
        oid, _items = _add_amazon(amazon, [("MUG-01", 2, "12.50"), ("TEE-BLK-M", 1, "25.00")])
        assert (await _poll(p, "amazon"))["imported"] == 1
        st = await p.wait_status(f"amazon-{oid}", "Completed", timeout=60)
        tracking = [t for s in st.shipments for t in s.tracking_numbers]
        assert tracking and amazon.tracking_numbers(oid) == tracking  # one package per tracking number
        assert amazon.orders[oid]["OrderStatus"] == "Shipped"
        # The confirmation moved LastUpdateDate: the next window sees the order again, as known.
        await asyncio.sleep(p.settings.poll_settle_s + 0.5)
        assert (await _poll(p, "amazon"))["known"] == 1


async def test_an_adobe_commerce_order_is_shipped_at_the_store_and_a_cancelled_one_cancelled_there(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _polled(client, tmp_path, database_url) as (p, _, adobe):
        shipped, cancelled = _entity_id(), _entity_id()
        adobe.add_order(adobe_order(shipped, [("MUG-01", 1, "12.50")], updated=_ago(60)))
        adobe.add_order(adobe_order(cancelled, [("MUG-01", 10, "12.50")], updated=_ago(50)))  # held: > 100
        assert (await _poll(p, "adobe_commerce"))["imported"] == 2
        st = await p.wait_status(f"adobe_commerce-{shipped:09d}", "Completed", timeout=60)
        [made] = adobe.order_shipments(shipped)
        assert [t["track_number"] for t in made["tracks"]] == [
            t for s in st.shipments for t in s.tracking_numbers
        ]

        key = f"adobe_commerce-{cancelled:09d}"
        await p.wait_status(key, "NeedsAttention")
        await p.handle(key).execute_update(
            OrderToCash.cancel, OperatorRequest(operator="ops", reason="fraud")
        )
        await p.wait_status(key, "Cancelled")
        assert adobe.orders[cancelled]["state"] == "canceled"
        # Paid at the store: the refund of the channel payment is recorded, not sent (see polled.py).
        kinds = sorted(n.kind for n in list_notifications(p.store, channel="adobe_commerce"))
        assert kinds == ["refund"]

        # Invoiced at the store too, Magento marks the shipped one complete: still known, not held.
        with adobe._lock:
            adobe.orders[shipped]["state"] = adobe.orders[shipped]["status"] = "complete"
        await asyncio.sleep(p.settings.poll_settle_s + 0.5)
        again = await _poll(p, "adobe_commerce")
        assert (again["imported"], again["known"], again["cancelled"], again["held"]) == (0, 1, 1, 0)


class _Listings:
    """An AmazonClient's listing write as Amazon answers it per SKU: ``NOPE`` is not listed
    (404), ``BAD/1`` is refused (403, as for SKUs with a slash), the rest are accepted."""

    marketplace_ids = [MARKETPLACE_US]

    def __init__(self) -> None:
        self.patched: list[str] = []

    async def patch_listing(self, seller_id: str, sku: str, marketplace_id: str, body: Any) -> dict[str, Any]:
        self.patched.append(sku)
        if sku == "NOPE":
            raise PermanentError("not found", reason="amazon_listing_not_found", system="amazon")
        if sku == "BAD/1":
            raise PermanentError("access denied", reason="amazon_unauthorized", system="amazon")
        return {"sku": sku, "status": "ACCEPTED", "submissionId": "s1", "issues": []}


async def test_one_sku_amazon_refuses_does_not_stop_the_others() -> None:
    listings = _Listings()
    writer = AmazonWriter(listings, seller_id="A1SELLER")  # type: ignore[arg-type]
    levels = [
        ChannelAvailability(channel="amazon", sku=sku, available=n, locations=["WH-EAST"], safety_buffer=0)
        for sku, n in (("BAD/1", 1), ("NOPE", 2), ("MUG-01", 3))
    ]
    with pytest.raises(PermanentError) as refused:
        await writer.push_inventory(levels, "push-1")
    assert listings.patched == ["BAD/1", "NOPE", "MUG-01"]  # every SKU was sent
    assert "BAD/1" in refused.value.message and "NOPE" not in refused.value.message
    # Retried under the same key: only the refused SKU is sent again.
    with pytest.raises(PermanentError):
        await writer.push_inventory(levels, "push-1")
    assert listings.patched[3:] == ["BAD/1"]
    # Without it, the batch goes through; an unlisted SKU is simply not sold on Amazon.
    ack = await writer.push_inventory(levels[1:], "push-2")
    assert ack.channel == "amazon" and listings.patched[4:] == ["NOPE", "MUG-01"]


async def test_adobe_commerce_two_shipments_sharing_a_master_tracking_number_are_both_created() -> None:
    async with _adobe() as (writer, adobe):
        eid = _entity_id()
        order = adobe.add_order(
            adobe_order(eid, [("MUG-01", 2, "12.50"), ("HAT-RED", 1, "18.00")], updated=_ago(60))
        )
        number = order["increment_id"]
        mug, hat = ((str(i["item_id"]), i["sku"], i["qty_ordered"]) for i in order["items"])
        # Freight: one master tracking number on two shipments of different items.
        first = await writer.notify_fulfillment(number, _shipment("k", [mug], ["MASTER-1"]), "k1")
        second = await writer.notify_fulfillment(number, _shipment("k", [hat], ["MASTER-1"]), "k2")
        assert first != second and len(adobe.order_shipments(eid)) == 2
