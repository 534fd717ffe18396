"""The warehouse and carrier simulators: they move orders and parcels along and report them
to the platform as signed webhooks, delivered at least once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx
import pytest

from adapters.carrier.builtin import BuiltinCarrier
from adapters.carrier.webhook import parse_tracking
from adapters.signing import SIGNATURE_HEADER, sign, verify_signature
from adapters.wms.builtin import BuiltinWms
from adapters.wms.webhook import parse_shipment
from backoffice.carrier import list_carrier_webhooks, list_labels
from backoffice.wms import get_fulfillment_order, list_fulfillment_orders, list_wms_webhooks
from canonical import Address, FulfillmentLine, FulfillmentRequest
from sandboxes.carrier import CarrierSimulator
from sandboxes.wms import WmsSimulator
from settings import Settings
from store.db import Store

API = "http://api.test"
WMS_URL = f"{API}/webhooks/wms/builtin"
CARRIER_URL = f"{API}/webhooks/carrier/builtin"


def quick_settings(**overrides: float) -> Settings:
    values: dict[str, float] = {
        "wms_pick_delay_s": 0.05,
        "wms_ship_delay_s": 0.05,
        "carrier_transit_delay_s": 0.05,
        "carrier_delivery_delay_s": 0.05,
        "simulator_poll_s": 0.01,
    }
    values.update(overrides)
    return Settings(public_api_url=API, **values)  # type: ignore[arg-type]


@dataclass
class Delivery:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class FakePlatform:
    """Stands in for the platform's webhook endpoints: records deliveries, fails the first N."""

    fail_first: int = 0
    failures: list[str] = field(default_factory=list)
    received: list[Delivery] = field(default_factory=list)
    attempts: int = 0

    async def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            kind = "connect" if self.attempts % 2 else "503"
            self.failures.append(kind)
            if kind == "connect":
                raise httpx.ConnectError("connection refused")
            return 503
        self.received.append(Delivery(url, body, dict(headers)))
        return 202

    def to(self, url: str) -> list[Delivery]:
        return [d for d in self.received if d.url == url]


async def until(
    condition: Callable[[], bool], *passes: Callable[[], Awaitable[object]], timeout: float = 10
) -> None:
    """Run simulator passes until ``condition`` holds (tiny delays make this quick)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for run in passes:
            await run()
        if condition():
            return
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def release_request(n: int = 1001, location: str = "WH-EAST") -> FulfillmentRequest:
    return FulfillmentRequest(
        order_key=f"shopify-{n}",
        order_name=f"#{n}",
        location=location,
        lines=[
            FulfillmentLine(line_id="L1", sku="TEE-BLK-M", quantity=2),
            FulfillmentLine(line_id="L2", sku="MUG-WHT", quantity=1),
        ],
        ship_to=Address(line1="1 Main St", city="Portland", region="OR", country="US"),
        shipping_method="ground",
        idempotency_key=f"order-shopify-{n}:release:{location}",
    )


def status_of(store: Store, fulfillment_id: str) -> str:
    fo = get_fulfillment_order(store, fulfillment_id)
    assert fo is not None
    return fo.status


async def test_nothing_moves_before_the_pick_delay(store: Store) -> None:
    settings = quick_settings(wms_pick_delay_s=3600)
    platform = FakePlatform()
    ack = await BuiltinWms(store).release(release_request())

    result = await WmsSimulator(store, BuiltinCarrier(store), platform, settings).run_once()

    assert result.picking == 0
    assert status_of(store, ack.fulfillment_id) == "released"
    assert platform.received == []


async def test_order_is_picked_then_shipped_and_reported_by_a_signed_webhook(store: Store) -> None:
    settings = quick_settings()
    platform = FakePlatform()
    ack = await BuiltinWms(store).release(release_request())
    sim = WmsSimulator(store, BuiltinCarrier(store), platform, settings)

    await until(lambda: status_of(store, ack.fulfillment_id) == "picking", sim.run_once)
    await until(lambda: len(platform.received) == 1, sim.run_once)

    [delivery] = platform.received
    assert delivery.url == WMS_URL
    assert delivery.headers["Content-Type"] == "application/json"
    secret = settings.wms_webhook_secret.get_secret_value()
    assert verify_signature(delivery.body, delivery.headers[SIGNATURE_HEADER], secret)
    assert not verify_signature(delivery.body, delivery.headers[SIGNATURE_HEADER], "another-secret")
    assert not verify_signature(delivery.body + b" ", delivery.headers[SIGNATURE_HEADER], secret)

    shipment = parse_shipment(delivery.body)
    [label] = list_labels(store, "shopify-1001")
    assert shipment.shipment_id == f"{ack.fulfillment_id}-1"
    assert shipment.fulfillment_id == ack.fulfillment_id
    assert (shipment.order_key, shipment.location) == ("shopify-1001", "WH-EAST")
    assert [(ln.line_id, ln.sku, ln.quantity) for ln in shipment.lines] == [
        ("L1", "TEE-BLK-M", 2),
        ("L2", "MUG-WHT", 1),
    ]
    assert shipment.tracking_numbers == [label.tracking_number]
    assert (shipment.carrier, shipment.service) == ("builtin", "ground")
    assert json.loads(delivery.body)["type"] == "shipment.shipped"

    fo = get_fulfillment_order(store, ack.fulfillment_id)
    assert fo is not None
    assert (fo.status, fo.tracking_number) == ("shipped", label.tracking_number)
    assert fo.shipped_at == shipment.shipped_at
    assert label.handed_over_at is not None  # acknowledged: the carrier has the parcel


async def test_failed_delivery_is_retried_with_the_same_bytes_until_acknowledged(store: Store) -> None:
    settings = quick_settings(wms_pick_delay_s=0, wms_ship_delay_s=0)
    platform = FakePlatform(fail_first=3)
    ack = await BuiltinWms(store).release(release_request())
    sim = WmsSimulator(store, BuiltinCarrier(store), platform, settings, retry_max_s=0.05)

    first = await sim.run_once()
    assert (first.shipped, first.delivered, first.failed) == (1, 0, 1)
    [pending] = list_wms_webhooks(store, ack.fulfillment_id)
    assert pending.delivered_at is None and pending.last_error is not None
    assert [label.handed_over_at for label in list_labels(store)] == [None]  # not reported yet

    await until(lambda: len(platform.received) == 1, sim.run_once)

    assert platform.failures == ["connect", "503", "connect"]
    [webhook] = list_wms_webhooks(store, ack.fulfillment_id)
    assert webhook.attempts == 4
    assert webhook.delivered_at is not None and webhook.last_error is None
    assert platform.received[0].body == webhook.body.encode()
    assert [label.handed_over_at is not None for label in list_labels(store)] == [True]
    # Nothing more to send: a delivered webhook is never sent again.
    await sim.run_once()
    assert len(platform.received) == 1


async def test_cancelled_orders_are_not_shipped_and_shipped_ones_cannot_be_cancelled(store: Store) -> None:
    settings = quick_settings(wms_pick_delay_s=0, wms_ship_delay_s=0)
    platform = FakePlatform()
    wms = BuiltinWms(store)
    keep = await wms.release(release_request(1001))
    drop = await wms.release(release_request(1002))
    assert (await wms.cancel(drop.fulfillment_id, "fraud")).cancelled

    await WmsSimulator(store, BuiltinCarrier(store), platform, settings).run_once()

    assert status_of(store, keep.fulfillment_id) == "shipped"
    assert status_of(store, drop.fulfillment_id) == "cancelled"
    assert [parse_shipment(d.body).order_key for d in platform.received] == ["shopify-1001"]
    assert len(list_labels(store)) == 1
    late = await wms.cancel(keep.fulfillment_id, "too late")
    assert (late.cancelled, late.status) == (False, "shipped")


async def test_a_slow_warehouse_holds_only_its_own_orders(store: Store) -> None:
    settings = quick_settings(wms_pick_delay_s=0, wms_ship_delay_s=0)
    wms = BuiltinWms(store)
    east = await wms.release(release_request(1001, "WH-EAST"))
    slow = await wms.release(release_request(1002, "WH-SLOW"))
    sim = WmsSimulator(
        store, BuiltinCarrier(store), FakePlatform(), settings, location_delays={"WH-SLOW": 3600}
    )

    await sim.run_once()

    assert status_of(store, east.fulfillment_id) == "shipped"
    assert status_of(store, slow.fulfillment_id) == "released"


async def test_concurrent_simulators_move_each_order_exactly_once(store: Store) -> None:
    settings = quick_settings(wms_pick_delay_s=0, wms_ship_delay_s=0)
    platform = FakePlatform()
    wms = BuiltinWms(store)
    acks = [await wms.release(release_request(n)) for n in range(1001, 1007)]
    sims = [WmsSimulator(store, BuiltinCarrier(store), platform, settings) for _ in range(3)]

    async def all_at_once() -> None:
        await asyncio.gather(*(sim.run_once() for sim in sims))

    await until(lambda: len(platform.received) >= len(acks), all_at_once)
    await all_at_once()

    assert all(status_of(store, ack.fulfillment_id) == "shipped" for ack in acks)
    assert len(list_labels(store)) == len(acks)
    shipments = [parse_shipment(d.body).shipment_id for d in platform.received]
    assert sorted(shipments) == sorted(f"{ack.fulfillment_id}-1" for ack in acks)


async def test_carrier_reports_in_transit_then_delivered_after_the_shipment(store: Store) -> None:
    settings = quick_settings(wms_pick_delay_s=0, wms_ship_delay_s=0)
    platform = FakePlatform()
    await BuiltinWms(store).release(release_request())
    wms_sim = WmsSimulator(store, BuiltinCarrier(store), platform, settings)
    carrier_sim = CarrierSimulator(store, platform, settings)

    # Before the shipment is reported the parcel has not left: no tracking yet.
    await carrier_sim.run_once()
    assert platform.received == []

    await until(lambda: len(platform.to(CARRIER_URL)) == 2, wms_sim.run_once, carrier_sim.run_once)

    secret = settings.carrier_webhook_secret.get_secret_value()
    events = []
    for delivery in platform.to(CARRIER_URL):
        assert verify_signature(delivery.body, delivery.headers[SIGNATURE_HEADER], secret)
        assert not verify_signature(delivery.body, delivery.headers[SIGNATURE_HEADER], "wms_sandbox_secret")
        events.append(parse_tracking(delivery.body))
    [label] = list_labels(store)
    assert [e.status for e in events] == ["in_transit", "delivered"]
    assert {e.tracking_number for e in events} == {label.tracking_number}
    assert {(e.order_key, e.carrier) for e in events} == {("shopify-1001", "builtin")}
    assert [e.event_id for e in events] == [
        f"{label.tracking_number}-in_transit",
        f"{label.tracking_number}-delivered",
    ]
    assert events[0].occurred_at <= events[1].occurred_at
    assert label.status == "delivered"
    # The shipment webhook came first.
    assert platform.received[0].url == WMS_URL


async def test_tracking_events_stay_in_order_when_deliveries_fail(store: Store) -> None:
    settings = quick_settings(wms_pick_delay_s=0, wms_ship_delay_s=0, carrier_delivery_delay_s=0)
    wms_platform = FakePlatform()
    carrier_platform = FakePlatform(fail_first=2)
    await BuiltinWms(store).release(release_request())
    wms_sim = WmsSimulator(store, BuiltinCarrier(store), wms_platform, settings)
    carrier_sim = CarrierSimulator(store, carrier_platform, settings, retry_max_s=0.05)

    await until(lambda: len(carrier_platform.received) == 2, wms_sim.run_once, carrier_sim.run_once)

    assert carrier_platform.failures == ["connect", "503"]
    assert [parse_tracking(d.body).status for d in carrier_platform.received] == ["in_transit", "delivered"]
    webhooks = list_carrier_webhooks(store, list_labels(store)[0].tracking_number)
    assert [(w.event_type, w.delivered_at is not None) for w in webhooks] == [("tracking.updated", True)] * 2
    assert webhooks[0].attempts == 3


async def test_simulators_deliver_through_an_httpx_client(store: Store) -> None:
    settings = quick_settings(wms_pick_delay_s=0, wms_ship_delay_s=0, carrier_transit_delay_s=0)
    seen: list[tuple[str, bool]] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        secret = settings.wms_webhook_secret if "wms" in request.url.path else settings.carrier_webhook_secret
        ok = verify_signature(
            request.content, request.headers.get(SIGNATURE_HEADER), secret.get_secret_value()
        )
        seen.append((request.url.path, ok))
        return httpx.Response(202 if ok else 401)

    await BuiltinWms(store).release(release_request())
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        wms_sim = WmsSimulator(store, BuiltinCarrier(store), client, settings)
        carrier_sim = CarrierSimulator(store, client, settings)
        await until(lambda: len(seen) >= 2, wms_sim.run_once, carrier_sim.run_once)

    assert seen[:2] == [("/webhooks/wms/builtin", True), ("/webhooks/carrier/builtin", True)]


async def test_run_loops_until_stopped(store: Store) -> None:
    settings = quick_settings(wms_pick_delay_s=0, wms_ship_delay_s=0)
    platform = FakePlatform()
    await BuiltinWms(store).release(release_request())
    stop = asyncio.Event()
    wms_sim = WmsSimulator(store, BuiltinCarrier(store), platform, settings)
    carrier_sim = CarrierSimulator(store, platform, settings)
    loops = asyncio.gather(wms_sim.run(stop), carrier_sim.run(stop))

    try:
        await until(lambda: len(platform.received) == 3)
    finally:
        stop.set()
        await asyncio.wait_for(loops, timeout=5)

    assert [d.url for d in platform.received] == [WMS_URL, CARRIER_URL, CARRIER_URL]
    assert [fo.status for fo in list_fulfillment_orders(store)] == ["shipped"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "invalid builtin WMS shipment webhook"),
        (b'{"event_id": "e1", "type": "shipment.shipped"}', "fulfillment_id"),
        (
            b'{"event_id":"e1","type":"shipment.shipped","fulfillment_id":"FO-000001","order_key":"k",'
            b'"location":"WH","lines":[{"line_id":"L1","sku":"S","quantity":0}],"shipped_at":"2026-01-01T00:00:00Z"}',
            "lines.0.quantity",
        ),
        (
            b'{"event_id":"e1","type":"shipment.shipped","fulfillment_id":"FO-000001","order_key":"k",'
            b'"location":"WH","lines":[{"line_id":"L1","sku":"S","quantity":1}],"shipped_at":"2026-01-01T00:00:00"}',
            "shipped_at",
        ),
        (
            b'{"event_id":"e1","type":"shipment.cancelled","fulfillment_id":"FO-000001","order_key":"k",'
            b'"location":"WH","lines":[{"line_id":"L1","sku":"S","quantity":1}],"shipped_at":"2026-01-01T00:00:00Z"}',
            "not supported",
        ),
    ],
)
def test_bad_shipment_payloads_are_refused_clearly(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shipment(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "invalid builtin carrier tracking webhook"),
        (
            b'{"event_id":"e1","tracking_number":"1ZRC1","order_key":"k","carrier":"builtin",'
            b'"status":"lost_in_space","occurred_at":"2026-01-01T00:00:00Z"}',
            "status",
        ),
        (
            b'{"event_id":"e1","type":"label.voided","tracking_number":"1ZRC1","order_key":"k","carrier":"builtin",'
            b'"status":"delivered","occurred_at":"2026-01-01T00:00:00Z"}',
            "not supported",
        ),
    ],
)
def test_bad_tracking_payloads_are_refused_clearly(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_tracking(body)


def test_signature_is_hmac_sha256_hex_of_the_raw_body() -> None:
    body = b'{"event_id":"e1"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert sign(body, "s3cret") == f"sha256={expected}"
    assert verify_signature(body, f"sha256={expected}", "s3cret")


def test_signature_check_rejects_missing_or_foreign_headers() -> None:
    body = b'{"event_id":"e1"}'
    assert not verify_signature(body, None, "s")
    assert not verify_signature(body, "", "s")
    assert not verify_signature(body, "sha1=abc", "s")
    assert not verify_signature(body, "sha256=" + "0" * 64, "s")
    assert not verify_signature(body, "sha256=whatever", "")
