"""Returns at the edges: the warehouse simulator's signed ``return.received`` receipts, the
carrier's tracking of return labels, their ingress into the inbox (signals to the return's
workflow ``return-<return key>``), and the Shopify refund that records a platform-refunded return.

The API runs in-process with Temporal "down" (a client factory that fails): the deliveries are
kept in the inbox as commands, which is what these tests look at; relaying them is the inbox
relay's job (tests/test_inbox.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from adapters.carrier.builtin import BuiltinCarrier
from adapters.carrier.webhook import TrackingWebhook, parse_tracking_target
from adapters.channels.shopify.admin import ShopifyAdminChannel, is_platform_refund
from adapters.signing import SIGNATURE_HEADER, sign, verify_signature
from adapters.wms.builtin import BuiltinWms
from adapters.wms.webhook import ReturnReceivedWebhook, ReturnReceivedWebhookLine, parse_return_receipt
from backoffice.bootstrap import open_store
from backoffice.wms import list_return_inbounds
from canonical import Address, Money, TrackingEvent
from canonical.documents import RmaLine
from canonical.returns import ReturnLine, ReturnNotice, ReturnReceipt, return_workflow_id
from sandboxes.carrier import CarrierSimulator
from sandboxes.shopify import DEFAULT_ACCESS_TOKEN, SandboxShop, create_sandbox_app
from sandboxes.shopify.demo_orders import demo_catalog, demo_stock, generate_orders
from sandboxes.wms import WmsSimulator
from settings import Settings
from store import inbox
from tests.test_inbox import api, down, entry, inbox_id, settings_for
from tests.test_simulators import CARRIER_URL, WMS_URL, FakePlatform, quick_settings, until

CA = Address(line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US")
SHOP = "https://sandbox.myshopify.com"


def receipt_payload(return_key: str = "shopify-ret-1", **changes: Any) -> bytes:
    body = ReturnReceivedWebhook(
        event_id="RI-000001-received",
        type="return.received",
        receipt_id="RI-000001-R1",
        return_key=return_key,
        rma_id="RMA-000001",
        location="WH-EAST",
        lines=[ReturnReceivedWebhookLine(line_id="L1", sku="TEE", quantity=1, condition="damaged")],
        received_at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
    ).model_dump(mode="json", exclude_none=True)
    body.update(changes)
    return json.dumps(body).encode()


def signed(raw: bytes, settings: Settings, kind: str) -> dict[str, str]:
    secret = getattr(settings, f"{kind}_webhook_secret").get_secret_value()
    return {"Content-Type": "application/json", SIGNATURE_HEADER: sign(raw, secret)}


# -- simulators ------------------------------------------------------------------------------------


async def test_warehouse_posts_a_signed_return_receipt_after_the_delay(database_url: str) -> None:
    store = open_store(database_url)
    try:
        settings = quick_settings(wms_return_receipt_delay_s=0.1).model_copy(
            update={"wms_damaged_return_skus": ["MUG"]}
        )
        platform = FakePlatform(fail_first=1)
        lines = [RmaLine(line_id="L1", sku="TEE", quantity=2), RmaLine(line_id="L2", sku="MUG", quantity=1)]
        expected = await BuiltinWms(store).expect_return(
            "shopify-ret-1", "RMA-000001", "WH-EAST", lines, "exp-1"
        )
        sim = WmsSimulator(store, BuiltinCarrier(store), platform, settings)

        await until(lambda: len(platform.received) == 1, sim.run_once)

        [delivery] = platform.to(WMS_URL)
        secret = settings.wms_webhook_secret.get_secret_value()
        assert verify_signature(delivery.body, delivery.headers[SIGNATURE_HEADER], secret)
        receipt = parse_return_receipt(delivery.body)
        assert (receipt.return_key, receipt.location) == ("shopify-ret-1", "WH-EAST")
        assert receipt.receipt_id == f"{expected.inbound_id}-R1"
        assert [(ln.line_id, ln.sku, ln.quantity, ln.condition) for ln in receipt.lines] == [
            ("L1", "TEE", 2, "resellable"),
            ("L2", "MUG", 1, "damaged"),
        ]
        assert json.loads(delivery.body)["event_id"] == f"{expected.inbound_id}-received"
        assert [i.status for i in list_return_inbounds(store)] == ["received"]
        # Retried after the first failure with the same bytes, then never again.
        assert platform.failures == ["connect"]
        await sim.run_once()
        assert len(platform.received) == 1
    finally:
        store.dispose()


async def test_return_label_parcel_is_tracked_in_transit_then_delivered(database_url: str) -> None:
    store = open_store(database_url)
    try:
        settings = quick_settings()
        platform = FakePlatform()
        label = await BuiltinCarrier(store).create_return_label("shopify-ret-1", CA, "WH-EAST", "label-1")
        sim = CarrierSimulator(store, platform, settings)

        await until(lambda: len(platform.received) == 2, sim.run_once)

        tracked = [parse_tracking_target(d.body) for d in platform.to(CARRIER_URL)]
        assert [t.return_key for t in tracked] == ["shopify-ret-1", "shopify-ret-1"]
        assert [t.event.status for t in tracked] == ["in_transit", "delivered"]
        assert {t.event.tracking_number for t in tracked} == {label.tracking_number}
        assert all(t.event.order_key == "shopify-ret-1" for t in tracked)
        assert "order_key" not in json.loads(platform.received[0].body)
    finally:
        store.dispose()


# -- ingress -------------------------------------------------------------------------------------------


async def test_return_receipt_webhook_signals_the_return_workflow(database_url: str) -> None:
    store = open_store(database_url)
    try:
        settings = settings_for(database_url)
        async with api(settings, store, factory=down) as (_, http):
            raw = receipt_payload()
            r = await http.post("/webhooks/wms/builtin", content=raw, headers=signed(raw, settings, "wms"))
            assert r.json()["status"] == "queued", r.text
            assert r.json()["receipt_id"] == "RI-000001-R1"
            row = entry(store, inbox_id(r))
            assert row.workflow_id == "return-shopify-ret-1" == return_workflow_id("shopify", "ret-1")
            assert (row.action, row.signal, row.topic) == ("signal", "receipt_reported", "return.received")
            receipt = ReturnReceipt.model_validate_json(json.dumps(row.argument))
            assert receipt.lines[0].condition == "damaged"

            again = await http.post(
                "/webhooks/wms/builtin", content=raw, headers=signed(raw, settings, "wms")
            )
            assert again.json()["status"] == "duplicate"
            # Another delivery of the same receipt (new event id): a duplicate by its receipt id.
            other = receipt_payload(event_id="redelivered-1")
            r3 = await http.post(
                "/webhooks/wms/builtin", content=other, headers=signed(other, settings, "wms")
            )
            assert r3.json()["status"] == "duplicate", r3.text

            bad = json.loads(receipt_payload())
            del bad["return_key"]
            bad["event_id"] = "bad-1"
            raw_bad = json.dumps(bad).encode()
            r4 = await http.post(
                "/webhooks/wms/builtin", content=raw_bad, headers=signed(raw_bad, settings, "wms")
            )
            assert r4.status_code == 422, r4.text
            assert r4.json()["detail"]["path"] == "return_key"
            assert inbox.list_rejections(store)[0].topic == "return.received"
    finally:
        store.dispose()


async def test_return_tracking_webhook_signals_the_return_workflow(database_url: str) -> None:
    store = open_store(database_url)
    try:
        settings = settings_for(database_url)
        hook = TrackingWebhook(
            event_id="1ZRC000000000009-in_transit",
            tracking_number="1ZRC000000000009",
            return_key="shopify-ret-1",
            carrier="builtin",
            status="in_transit",
            occurred_at=datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
        )
        async with api(settings, store, factory=down) as (_, http):
            raw = hook.to_json()
            r = await http.post(
                "/webhooks/carrier/builtin", content=raw, headers=signed(raw, settings, "carrier")
            )
            assert r.json()["status"] == "queued", r.text
            assert r.json()["return_key"] == "shopify-ret-1"
            row = entry(store, inbox_id(r))
            assert (row.workflow_id, row.signal) == ("return-shopify-ret-1", "tracking_updated")
            event = TrackingEvent.model_validate_json(json.dumps(row.argument))
            assert (event.order_key, event.status) == ("shopify-ret-1", "in_transit")

            both = json.loads(raw)
            both.update(event_id="both-1", order_key="shopify-1001")
            raw_both = json.dumps(both).encode()
            r2 = await http.post(
                "/webhooks/carrier/builtin", content=raw_both, headers=signed(raw_both, settings, "carrier")
            )
            assert r2.status_code == 422, r2.text
            assert "exactly one of order_key and return_key" in r2.text
    finally:
        store.dispose()


# -- Shopify -------------------------------------------------------------------------------------------


async def test_shopify_records_a_platform_refunded_return_without_moving_money() -> None:
    shop = SandboxShop()
    shop.seed_catalog(demo_catalog())
    shop.seed_stock(demo_stock())
    skus = [(row["sku"], Decimal(row["price"])) for row in demo_catalog()]
    order = shop.create_order(generate_orders(1, 3, skus)[0])
    line_item = order["line_items"][0]
    notice = ReturnNotice(
        return_key="shopify-ret-1",
        status="refunded",
        lines=[ReturnLine(line_id=str(line_item["id"]), sku=line_item["sku"], quantity=1)],
        refunded=Money.of("10.00", order.get("currency", "USD")),
        restocked=True,
    )
    transport = httpx.ASGITransport(app=create_sandbox_app(shop))
    async with httpx.AsyncClient(transport=transport, base_url=SHOP) as http:
        channel = ShopifyAdminChannel(SHOP, DEFAULT_ACCESS_TOKEN, http=http, inventory_location="WH-EAST")
        ack = await channel.notify_return(str(order["id"]), notice, "return-shopify-ret-1:notify")
        again = await channel.notify_return(str(order["id"]), notice, "return-shopify-ret-1:notify")
        assert again == ack
        [refund] = shop.refunds(order["id"])
        assert str(refund["id"]) == ack.reference
        assert refund["transactions"] == [] and is_platform_refund(refund)
        [rli] = refund["refund_line_items"]
        east = await channel.location_id("WH-EAST")
        assert (rli["line_item_id"], rli["quantity"], rli["restock_type"], rli["location_id"]) == (
            line_item["id"],
            1,
            "return",
            east,
        )
        assert "[return-shopify-ret-1:notify]" in refund["note"]

        expired = notice.model_copy(update={"status": "expired", "refunded": Money.of("0", "USD")})
        skipped = await channel.notify_return(str(order["id"]), expired, "return-shopify-ret-2:notify")
        assert skipped.reference == "return:shopify-ret-1:expired"
        assert len(shop.refunds(order["id"])) == 1
