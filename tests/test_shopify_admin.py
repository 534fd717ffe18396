"""ShopifyAdminChannel against the sandbox storefront (in-process) and against broken transports:
idempotent writes without idempotency keys, pagination, and the error taxonomy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.channels.port import ChannelPort
from adapters.channels.shopify.admin import ItemSkus, ShopifyAdminChannel
from adapters.channels.shopify.mapping import order_from_shopify
from adapters.errors import PermanentError, RateLimitedError, TransientError
from canonical import ChannelAvailability, Money, Shipment, ShipmentLine
from sandboxes.shopify import DEFAULT_ACCESS_TOKEN, SandboxShop, create_sandbox_app
from sandboxes.shopify.demo_orders import demo_catalog, demo_stock, generate_orders

BASE = "https://sandbox.myshopify.com"
SKUS = [(row["sku"], Decimal(row["price"])) for row in demo_catalog()]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Ticker:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


class LoseAnswers(httpx.AsyncBaseTransport):
    """Forwards every request, but loses the answer to the first ones matching ``lose``: the
    shop acted, the caller sees a timeout (a worker that dies mid-call sees the same)."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, lose: Callable[[httpx.Request], bool], times: int = 1
    ):
        self.inner = inner
        self.lose = lose
        self.times = times

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.times and self.lose(request):
            self.times -= 1
            await response.aread()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shop(clock: Clock, ticker: Ticker) -> SandboxShop:
    s = SandboxShop(clock=clock, monotonic=ticker)
    s.seed_catalog(demo_catalog())
    s.seed_stock(demo_stock())
    return s


def client_for(shop: SandboxShop, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport or httpx.ASGITransport(app=create_sandbox_app(shop)), base_url=BASE
    )


@pytest.fixture
async def channel(shop: SandboxShop) -> AsyncIterator[ShopifyAdminChannel]:
    async with client_for(shop) as http:
        yield ShopifyAdminChannel(BASE, DEFAULT_ACCESS_TOKEN, "2025-07", http)


def placed(shop: SandboxShop, n: int = 1, **changes: Any) -> list[dict[str, Any]]:
    return [shop.create_order(p | changes) for p in generate_orders(n, 3, SKUS)]


def shipment_of(
    order: dict[str, Any], shipment_id: str = "SHP-1", tracking: list[str] | None = None
) -> Shipment:
    return Shipment(
        shipment_id=shipment_id,
        order_key=f"shopify-{order['id']}",
        location="WH-EAST",
        lines=[
            ShipmentLine(line_id=str(li["id"]), sku=li["sku"], quantity=li["quantity"])
            for li in order["line_items"]
        ],
        carrier="UPS",
        service="Ground",
        tracking_numbers=["1Z999AA10123456784"] if tracking is None else tracking,
        shipped_at=datetime(2026, 11, 21, 15, 30, tzinfo=UTC),
    )


def test_it_implements_the_channel_port() -> None:
    port: ChannelPort = ShopifyAdminChannel(BASE, "shpat_x", http=httpx.AsyncClient())
    assert port.name == "shopify"


# -- reading orders ------------------------------------------------------------------------------


async def test_orders_updated_since_follow_every_page(
    shop: SandboxShop, channel: ShopifyAdminChannel, clock: Clock
) -> None:
    ids = []
    for payload in generate_orders(7, 3, SKUS):
        ids.append(shop.create_order(payload)["id"])
        clock.now += timedelta(minutes=1)
    since = clock.now - timedelta(minutes=4)  # the last four
    got = [o["id"] async for o in channel.list_orders_updated_since(since, page_size=3)]
    assert got == ids[3:]
    everything = [o async for o in channel.list_orders_updated_since(since - timedelta(days=1), page_size=2)]
    assert [o["id"] for o in everything] == ids
    assert all(order_from_shopify(o).external_id == str(o["id"]) for o in everything)
    with pytest.raises(ValueError):
        _ = [o async for o in channel.list_orders_updated_since(datetime(2026, 1, 1))]


async def test_a_pagination_link_to_another_host_is_not_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"orders": [{"id": 1}]},
            headers={"Link": '<https://evil.example/steal?page_info=x>; rel="next"'},
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        channel = ShopifyAdminChannel(BASE, "shpat_x", http=http)
        seen = []
        with pytest.raises(PermanentError) as err:
            async for order in channel.list_orders_updated_since(datetime(2026, 1, 1, tzinfo=UTC)):
                seen.append(order["id"])
    assert seen == [1]
    assert err.value.reason == "shopify_bad_link"


# -- the error taxonomy --------------------------------------------------------------------------


async def test_429_is_rate_limited_with_the_retry_after_delay(shop: SandboxShop, ticker: Ticker) -> None:
    async with client_for(shop) as http:
        channel = ShopifyAdminChannel(BASE, DEFAULT_ACCESS_TOKEN, http=http)
        for _ in range(40):
            r = await http.get(
                "/admin/api/2025-07/locations.json", headers={"X-Shopify-Access-Token": DEFAULT_ACCESS_TOKEN}
            )
        assert r.headers["X-Shopify-Shop-Api-Call-Limit"] == "40/40"
        with pytest.raises(RateLimitedError) as err:
            await channel.set_inventory("MUG-WHT", "WH-EAST", 5)
        assert err.value.retry_after == 0.5
        assert err.value.system == "shopify"
        assert channel.last_call_limit == (40, 40)
        ticker.t += err.value.retry_after
        level = await channel.set_inventory(
            shop.inventory_item_id("MUG-WHT") or 0, shop.location_id("WH-EAST"), 5
        )
        assert level.available == 5


async def test_4xx_are_permanent_with_a_reason(shop: SandboxShop) -> None:
    async with client_for(shop) as http:
        wrong = ShopifyAdminChannel(BASE, "shpat_wrong", http=http)
        with pytest.raises(PermanentError) as err:
            await wrong.get_order("1")
        assert err.value.reason == "shopify_unauthorized"
        assert "shpat_wrong" not in str(err.value)  # the token never shows up in errors or logs

        channel = ShopifyAdminChannel(BASE, DEFAULT_ACCESS_TOKEN, http=http)
        with pytest.raises(PermanentError) as err:
            await channel.get_order("424242")
        assert err.value.reason == "shopify_not_found"

        order = placed(shop)[0]
        await channel.notify_fulfillment(str(order["id"]), shipment_of(order), "k-ship")
        with pytest.raises(PermanentError) as err:
            await channel.notify_cancelled(str(order["id"]), "customer", "k-cancel")
        assert err.value.reason == "shopify_invalid"  # a fulfilled order cannot be cancelled
        assert "fulfilled" in str(err.value)

        with pytest.raises(PermanentError) as err:
            await channel.notify_cancelled("not-an-id", "customer", "k")
        assert err.value.reason == "shopify_invalid"


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (httpx.Response(500, json={"errors": "Internal Server Error"}), TransientError),
        (httpx.Response(503, text="upstream down"), TransientError),
        (httpx.Response(409, json={"errors": "conflict"}), TransientError),
        (httpx.Response(403, json={"errors": "missing scope"}), PermanentError),
        (httpx.Response(423, json={"errors": "locked"}), PermanentError),
        (httpx.Response(429, json={"errors": "slow down"}), RateLimitedError),
    ],
)
async def test_http_statuses_map_to_the_taxonomy(answer: httpx.Response, kind: type[Exception]) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: answer)) as http:
        channel = ShopifyAdminChannel(BASE, "shpat_x", http=http)
        with pytest.raises(kind) as err:
            await channel.get_order("1")
    if isinstance(err.value, RateLimitedError):
        assert err.value.retry_after == 2.0  # no Retry-After: Shopify's usual 2 s
    elif isinstance(err.value, PermanentError):
        assert err.value.reason in ("shopify_forbidden", "shopify_locked")
    else:
        assert not isinstance(err.value, RateLimitedError)


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset")]
)
async def test_transport_failures_are_transient(failure: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        channel = ShopifyAdminChannel(BASE, "shpat_x", http=http)
        with pytest.raises(TransientError) as err:
            await channel.notify_cancelled("1", "customer", "k")
    assert not isinstance(err.value, RateLimitedError)
    assert type(failure).__name__ in str(err.value)


# -- fulfillment ---------------------------------------------------------------------------------


async def test_the_same_shipment_twice_is_one_fulfillment(
    shop: SandboxShop, channel: ShopifyAdminChannel
) -> None:
    order = placed(shop)[0]
    ship = shipment_of(order)
    first = await channel.notify_fulfillment(str(order["id"]), ship, "order-shopify-1:ship:SHP-1")
    again = await channel.notify_fulfillment(str(order["id"]), ship, "order-shopify-1:ship:SHP-1")
    assert first == again and first.channel == "shopify"
    [fulfillment] = shop.fulfillments(order["id"])
    assert str(fulfillment["id"]) == first.reference
    assert fulfillment["tracking_numbers"] == ["1Z999AA10123456784"]
    assert fulfillment["tracking_company"] == "UPS"
    assert shop.order(order["id"])["fulfillment_status"] == "fulfilled"


async def test_a_digital_delivery_fulfils_what_is_open_without_tracking_once(
    shop: SandboxShop, channel: ShopifyAdminChannel
) -> None:
    payload = generate_orders(1, 3, SKUS)[0]
    payload["line_items"][0]["requires_shipping"] = False  # no fulfillment order line at Shopify
    order = shop.create_order(payload)
    ebook, shirt = order["line_items"][0], order["line_items"][1]

    def delivery(line: dict[str, Any]) -> Shipment:
        return shipment_of(order, "digital-delivery", []).model_copy(
            update={
                "lines": [ShipmentLine(line_id=str(line["id"]), sku=line["sku"], quantity=line["quantity"])],
                "digital": True,
                "carrier": None,
            }
        )

    none_open = await channel.notify_fulfillment(str(order["id"]), delivery(ebook), "k-digital")
    assert none_open.reference == "nothing open to fulfil" and shop.fulfillments(order["id"]) == []

    made = await channel.notify_fulfillment(str(order["id"]), delivery(shirt), "k-digital-2")
    again = await channel.notify_fulfillment(str(order["id"]), delivery(shirt), "k-digital-2")
    [fulfillment] = shop.fulfillments(order["id"])
    assert made.reference == str(fulfillment["id"]) and again.reference == "nothing open to fulfil"
    assert fulfillment["tracking_numbers"] == []  # no made-up tracking number for the customer


async def test_a_fulfillment_whose_answer_was_lost_is_not_created_again(shop: SandboxShop) -> None:
    order = placed(shop)[0]
    inner = httpx.ASGITransport(app=create_sandbox_app(shop))
    lossy = LoseAnswers(inner, lambda r: r.method == "POST" and r.url.path.endswith("/fulfillments.json"))
    async with client_for(shop, lossy) as http:
        channel = ShopifyAdminChannel(BASE, DEFAULT_ACCESS_TOKEN, http=http)
        with pytest.raises(TransientError):
            await channel.notify_fulfillment(str(order["id"]), shipment_of(order), "k")
        assert len(shop.fulfillments(order["id"])) == 1  # Shopify did act
        ack = await channel.notify_fulfillment(str(order["id"]), shipment_of(order), "k")
    [fulfillment] = shop.fulfillments(order["id"])
    assert ack.reference == str(fulfillment["id"])


async def test_split_shipments_are_separate_fulfillments(
    shop: SandboxShop, channel: ShopifyAdminChannel
) -> None:
    order = next(o for o in placed(shop, 20) if any(li["quantity"] > 1 for li in o["line_items"]))
    line = next(li for li in order["line_items"] if li["quantity"] > 1)
    first = Shipment(
        shipment_id="SHP-A",
        order_key="k",
        location="WH-WEST",
        lines=[ShipmentLine(line_id=str(line["id"]), sku=line["sku"], quantity=1)],
        tracking_numbers=[],
        shipped_at=datetime(2026, 11, 21, tzinfo=UTC),
    )
    a = await channel.notify_fulfillment(str(order["id"]), first, "k-a")
    a_again = await channel.notify_fulfillment(str(order["id"]), first, "k-a")
    assert a == a_again
    [only] = shop.fulfillments(order["id"])
    assert only["tracking_numbers"] == ["SHP-A"]  # no tracking number: the shipment id is the marker
    rest = shipment_of(order, "SHP-B", ["1ZREST"])
    rest = rest.model_copy(
        update={
            "lines": [
                ShipmentLine(
                    line_id=sl.line_id,
                    sku=sl.sku,
                    quantity=sl.quantity - (1 if sl.line_id == str(line["id"]) else 0),
                )
                for sl in rest.lines
                if sl.quantity - (1 if sl.line_id == str(line["id"]) else 0) > 0
            ]
        }
    )
    b = await channel.notify_fulfillment(str(order["id"]), rest, "k-b")
    assert b.reference != a.reference
    assert len(shop.fulfillments(order["id"])) == 2
    assert shop.order(order["id"])["fulfillment_status"] == "fulfilled"
    with pytest.raises(PermanentError) as err:
        await channel.notify_fulfillment(str(order["id"]), shipment_of(order, "SHP-C", ["1ZLATE"]), "k-c")
    assert err.value.reason == "shopify_nothing_to_fulfill"
    assert len(shop.fulfillments(order["id"])) == 2


# -- refunds -------------------------------------------------------------------------------------


async def test_a_refund_is_made_once_per_idempotency_key(
    shop: SandboxShop, channel: ShopifyAdminChannel
) -> None:
    order = placed(shop, financial_status="paid")[0]
    five = Money.of("5.00", "USD")
    first = await channel.refund_payment(str(order["id"]), five, "order cancelled", "order-shopify-1:refund")
    again = await channel.refund_payment(str(order["id"]), five, "order cancelled", "order-shopify-1:refund")
    assert first == again
    [refund] = shop.refunds(order["id"])
    assert str(refund["id"]) == first.reference
    assert refund["note"] == "order cancelled [order-shopify-1:refund]"
    [txn] = refund["transactions"]
    assert (txn["kind"], txn["amount"]) == ("refund", "5.00")
    assert shop.order(order["id"])["financial_status"] == "partially_refunded"

    with pytest.raises(PermanentError) as err:
        await channel.refund_payment(str(order["id"]), Money.of("6.00", "USD"), "x", "order-shopify-1:refund")
    assert err.value.reason == "idempotency_conflict"

    second = await channel.refund_payment(str(order["id"]), five, "goodwill", "order-shopify-1:refund-2")
    assert second != first and len(shop.refunds(order["id"])) == 2


async def test_a_refund_whose_answer_was_lost_is_not_made_again(shop: SandboxShop) -> None:
    order = placed(shop, financial_status="paid")[0]
    inner = httpx.ASGITransport(app=create_sandbox_app(shop))
    lossy = LoseAnswers(inner, lambda r: r.method == "POST" and r.url.path.endswith("/refunds.json"))
    async with client_for(shop, lossy) as http:
        channel = ShopifyAdminChannel(BASE, DEFAULT_ACCESS_TOKEN, http=http)
        with pytest.raises(TransientError):
            await channel.refund_payment(str(order["id"]), Money.of("1.00", "USD"), "x", "k")
        ack = await channel.refund_payment(str(order["id"]), Money.of("1.00", "USD"), "x", "k")
    [refund] = shop.refunds(order["id"])
    assert ack.reference == str(refund["id"])


async def test_refunds_beyond_what_was_paid_are_refused(
    shop: SandboxShop, channel: ShopifyAdminChannel
) -> None:
    paid = placed(shop, financial_status="paid")[0]
    too_much = Money.of(Decimal(paid["total_price"]) + 1, "USD")
    with pytest.raises(PermanentError) as err:
        await channel.refund_payment(str(paid["id"]), too_much, "x", "k1")
    assert err.value.reason == "shopify_nothing_to_refund"
    all_of_it = await channel.refund_payment(str(paid["id"]), Money.of(paid["total_price"], "USD"), "x", "k2")
    assert all_of_it.reference
    assert shop.order(paid["id"])["financial_status"] == "refunded"

    authorized = shop.create_order(generate_orders(2, 3, SKUS)[1] | {"financial_status": "authorized"})
    with pytest.raises(PermanentError) as err:
        await channel.refund_payment(str(authorized["id"]), Money.of("1.00", "USD"), "x", "k3")
    assert err.value.reason == "shopify_nothing_to_refund"  # nothing captured: void, not refund
    for bad, reason in (
        (Money.of("0.00", "USD"), "invalid_amount"),
        (Money.of("1.00", "EUR"), "currency_mismatch"),
    ):
        with pytest.raises(PermanentError) as err:
            await channel.refund_payment(str(paid["id"]), bad, "x", "k4")
        assert err.value.reason == reason
    assert len(shop.refunds(paid["id"])) == 1


# -- cancellation and inventory ------------------------------------------------------------------


async def test_cancelling_twice_cancels_once(shop: SandboxShop, channel: ShopifyAdminChannel) -> None:
    order = placed(shop)[0]
    first = await channel.notify_cancelled(str(order["id"]), "customer", "k")
    again = await channel.notify_cancelled(str(order["id"]), "customer", "k")
    assert first == again and first.reference == str(order["id"])
    assert shop.order(order["id"])["cancel_reason"] == "customer"
    assert [e.topic for e in shop.events()].count("orders/cancelled") == 1
    other = shop.create_order(generate_orders(2, 3, SKUS)[1])
    await channel.notify_cancelled(str(other["id"]), "payment declined after 3 tries", "k2")
    assert shop.order(other["id"])["cancel_reason"] == "other"  # free text is not one of Shopify's reasons


async def test_inventory_is_set_by_sku_and_location_name(
    shop: SandboxShop, channel: ShopifyAdminChannel
) -> None:
    level = await channel.set_inventory("LAMP-DESK", "WH-WEST", 3)
    assert (level.inventory_item_id, level.location_id, level.available) == (
        shop.inventory_item_id("LAMP-DESK"),
        shop.location_id("WH-WEST"),
        3,
    )
    assert shop.available("LAMP-DESK", "WH-WEST") == 3
    # A SKU added on Shopify later is found on the next miss.
    shop.register_sku("NEW-SKU", title="New")
    assert (await channel.set_inventory("NEW-SKU", "WH-EAST", 9)).available == 9
    with pytest.raises(PermanentError) as err:
        await channel.set_inventory("NO-SUCH-SKU", "WH-EAST", 1)
    assert err.value.reason == "shopify_unknown_sku"
    with pytest.raises(PermanentError) as err:
        await channel.set_inventory("LAMP-DESK", "WH-NORTH", 1)
    assert err.value.reason == "shopify_unknown_location"
    # The fixture seeded demo_stock(): levels exist at both locations.
    assert len(shop.inventory_levels([shop.inventory_item_id("LAMP-DESK") or 0])) == 2


async def test_configured_ids_save_the_lookups(shop: SandboxShop) -> None:
    calls: list[str] = []
    inner = httpx.ASGITransport(app=create_sandbox_app(shop))

    class Counting(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            calls.append(request.url.path.rsplit("/", 1)[-1])
            return await inner.handle_async_request(request)

    async with client_for(shop, Counting()) as http:
        channel = ShopifyAdminChannel(
            BASE,
            DEFAULT_ACCESS_TOKEN,
            http=http,
            location_ids={"WH-EAST": shop.location_id("WH-EAST")},
            inventory_item_ids={"MUG-WHT": shop.inventory_item_id("MUG-WHT") or 0},
        )
        await channel.set_inventory("MUG-WHT", "WH-EAST", 4)
    assert calls == ["set.json"]
    assert shop.available("MUG-WHT", "WH-EAST") == 4


async def test_push_inventory_sets_absolute_levels_and_skips_unsold_skus(shop: SandboxShop) -> None:
    def availability(sku: str, n: int, locations: list[str]) -> ChannelAvailability:
        return ChannelAvailability(
            channel="shopify", sku=sku, available=n, locations=locations, safety_buffer=0
        )

    async with client_for(shop) as http:
        single = ShopifyAdminChannel(BASE, DEFAULT_ACCESS_TOKEN, http=http)
        levels = [availability("MUG-WHT", 11, ["WH-WEST"]), availability("NOT-ON-SHOPIFY", 4, ["WH-WEST"])]
        ack = await single.push_inventory(levels, "inv-1")
        assert ack.reference == "inventory:inv-1:1"  # one level pushed, the unknown SKU skipped
        assert shop.available("MUG-WHT", "WH-WEST") == 11
        assert shop.inventory_item_id("NOT-ON-SHOPIFY") is None
        again = await single.push_inventory(levels, "inv-1")  # a retried batch changes nothing
        assert again == ack and shop.available("MUG-WHT", "WH-WEST") == 11

        with pytest.raises(PermanentError) as err:
            await single.push_inventory([availability("MUG-WHT", 20, ["WH-EAST", "WH-WEST"])], "inv-2")
        assert err.value.reason == "shopify_inventory_location"
        pooled = ShopifyAdminChannel(BASE, DEFAULT_ACCESS_TOKEN, http=http, inventory_location="WH-EAST")
        await pooled.push_inventory([availability("MUG-WHT", 20, ["WH-EAST", "WH-WEST"])], "inv-3")
        assert (shop.available("MUG-WHT", "WH-EAST"), shop.available("MUG-WHT", "WH-WEST")) == (20, 11)


async def test_sku_of_answers_from_the_listing_and_lists_again_once_for_an_item_it_does_not_know() -> None:
    variants = [
        {"id": 1, "sku": "MUG-WHT", "inventory_item_id": 501},
        {"id": 2, "sku": "", "inventory_item_id": 502},  # Shopify allows variants without a SKU
    ]
    listings: list[str] = []

    def shopify(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/products.json")
        listings.append(str(request.url))
        return httpx.Response(200, json={"products": [{"id": 9, "variants": variants}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(shopify), base_url=BASE) as http:
        shared = ItemSkus()
        channel = ShopifyAdminChannel(BASE, DEFAULT_ACCESS_TOKEN, http=http, item_skus=shared)
        assert await channel.sku_of(501) == "MUG-WHT" and len(listings) == 1
        assert await channel.sku_of(501) == "MUG-WHT" and len(listings) == 1  # cached
        assert await channel.sku_of(502) is None and len(listings) == 1  # listed, without a SKU
        assert await channel.sku_of(503) is None and len(listings) == 2  # unknown: listed once more
        # Another instance over the same listing (the relay makes one per row) lists nothing.
        other = ShopifyAdminChannel(BASE, DEFAULT_ACCESS_TOKEN, http=http, item_skus=shared)
        assert await other.sku_of(501) == "MUG-WHT" and len(listings) == 2
        # Renamed on Shopify: a listing older than max_age_s is not trusted; the old name is gone.
        variants[0]["sku"] = "MUG-WHITE"
        assert await other.sku_of(501, max_age_s=0.0) == "MUG-WHITE" and len(listings) == 3
        assert shared.by_item == {501: "MUG-WHITE"} and shared.without_sku == {502}
