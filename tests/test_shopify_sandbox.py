"""The sandbox storefront: its Admin API follows shared/contracts/shopify.md, and its webhooks
arrive signed, with the failure modes a receiver has to survive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from adapters.channels.shopify.mapping import order_from_shopify
from adapters.channels.shopify.signature import sign, verify
from sandboxes.shopify import (
    DEFAULT_ACCESS_TOKEN,
    FailureModes,
    SandboxServer,
    SandboxShop,
    ShopError,
    ShopEvent,
    WebhookDeliverer,
    create_sandbox_app,
    recording_poster,
)
from sandboxes.shopify.demo_orders import demo_catalog, demo_stock, generate_orders

SECRET = "shpss_test_secret"
API = "/admin/api/2025-07"
AUTH = {"X-Shopify-Access-Token": DEFAULT_ACCESS_TOKEN}
FAST = (0.001,) * 8  # Shopify's 8 retries, without the 4 hours
SKUS = [(row["sku"], Decimal(row["price"])) for row in demo_catalog()]


class Clock:
    """Wall clock for the shop (``updated_at``): moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Ticker:
    """Monotonic clock for the rate limiter: moves only when told to."""

    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def demo_payloads(n: int, seed: int = 7) -> list[dict[str, Any]]:
    return generate_orders(n, seed, SKUS)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def shop(clock: Clock, ticker: Ticker) -> SandboxShop:
    s = SandboxShop(clock=clock, monotonic=ticker)
    s.seed_catalog(demo_catalog())
    s.seed_stock(demo_stock())
    return s


@pytest.fixture
async def http(shop: SandboxShop) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_sandbox_app(shop))
    async with httpx.AsyncClient(transport=transport, base_url="https://sandbox.myshopify.com") as client:
        yield client


# -- the contract's facts --------------------------------------------------------------------


def test_the_contract_hmac_test_vector_is_what_the_deliverer_sends(shop: SandboxShop) -> None:
    assert sign(b'{"foo": "bar"}', "test_secret_key") == "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="
    post, _ = recording_poster()
    deliverer = WebhookDeliverer(shop, post, "test_secret_key")
    event = ShopEvent("e-1", "products/create", datetime(2023, 1, 1, tzinfo=UTC), b'{"foo": "bar"}', None, 1)
    headers = deliverer.headers(event, "123456789")
    assert headers["X-Shopify-Hmac-Sha256"] == "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="
    assert headers["X-Shopify-Webhook-Id"] == "123456789"
    assert headers["X-Shopify-Triggered-At"] == "2023-01-01T00:00:00Z"


async def test_requests_without_a_valid_access_token_get_shopifys_401(http: httpx.AsyncClient) -> None:
    for headers in ({}, {"X-Shopify-Access-Token": "shpat_wrong"}):
        r = await http.get(f"{API}/orders.json", headers=headers)
        assert r.status_code == 401
        assert r.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        }
        assert r.headers["X-Shopify-API-Version"] == "2025-07"
        assert "X-Shopify-Shop-Api-Call-Limit" not in r.headers


async def test_the_api_version_used_is_echoed(http: httpx.AsyncClient) -> None:
    r = await http.get(f"{API}/locations.json", headers=AUTH)
    assert r.headers["X-Shopify-API-Version"] == "2025-07"
    # A removed (or unknown) version is served by the oldest supported one.
    r = await http.get("/admin/api/2019-04/locations.json", headers=AUTH)
    assert (r.status_code, r.headers["X-Shopify-API-Version"]) == (200, "2025-01")
    r = await http.get("/admin/api/v1/locations.json", headers=AUTH)
    assert (r.status_code, r.json()) == (404, {"errors": "Not Found"})
    names = [
        loc["name"] for loc in (await http.get(f"{API}/locations.json", headers=AUTH)).json()["locations"]
    ]
    assert names == ["WH-EAST", "WH-WEST"]


async def test_the_leaky_bucket_refuses_the_41st_quick_call(
    shop: SandboxShop, http: httpx.AsyncClient, ticker: Ticker
) -> None:
    for i in range(1, 41):
        r = await http.get(f"{API}/locations.json", headers=AUTH)
        assert r.status_code == 200
        assert r.headers["X-Shopify-Shop-Api-Call-Limit"] == f"{i}/40"
    r = await http.get(f"{API}/orders.json", headers=AUTH)
    assert r.status_code == 429
    assert r.headers["X-Shopify-Shop-Api-Call-Limit"] == "40/40"
    assert float(r.headers["Retry-After"]) == 0.5  # one slot leaks in 1/(2 per s)
    assert "Exceeded 2 calls per second" in r.json()["errors"]
    # Another app (token) has its own bucket.
    shop.add_access_token("shpat_other_app")
    r = await http.get(f"{API}/locations.json", headers={"X-Shopify-Access-Token": "shpat_other_app"})
    assert (r.status_code, r.headers["X-Shopify-Shop-Api-Call-Limit"]) == (200, "1/40")
    # Waiting as told works; the refused call did not count.
    ticker.t += 0.5
    r = await http.get(f"{API}/locations.json", headers=AUTH)
    assert (r.status_code, r.headers["X-Shopify-Shop-Api-Call-Limit"]) == (200, "40/40")
    ticker.t += 10
    r = await http.get(f"{API}/locations.json", headers=AUTH)
    assert r.headers["X-Shopify-Shop-Api-Call-Limit"] == "21/40"  # 40 - 10 s x 2/s + this one


def test_the_bucket_size_and_leak_rate_are_configurable(ticker: Ticker) -> None:
    shop = SandboxShop(bucket_size=2, leak_per_s=4.0, monotonic=ticker)
    assert [shop.rate_limiter.admit("t").allowed for _ in range(3)] == [True, True, False]
    refused = shop.rate_limiter.admit("t")
    assert (refused.call_limit_header, refused.retry_after_header) == ("2/2", "0.3")
    ticker.t += 0.25
    assert shop.rate_limiter.admit("t").allowed


# -- orders: filters and cursor pagination -----------------------------------------------------


async def test_orders_page_with_link_headers_and_filter_on_updated_at(
    shop: SandboxShop, http: httpx.AsyncClient, clock: Clock
) -> None:
    ids = []
    for payload in demo_payloads(7):
        ids.append(shop.create_order(payload)["id"])
        clock.advance(60)
    since = clock.now - timedelta(seconds=60 * 5)  # orders 3..7 were updated at or after this
    shop.update_order(ids[0], {"note": "gift wrap"})  # now: order 1 is updated last

    params = {"updated_at_min": since.isoformat(), "status": "any", "limit": "2", "order": "updated_at asc"}
    r = await http.get(f"{API}/orders.json", params=params, headers=AUTH)
    seen, pages = [o["id"] for o in r.json()["orders"]], 1
    assert (
        r.status_code == 200
        and 'rel="next"' in r.headers["Link"]
        and 'rel="previous"' not in r.headers["Link"]
    )
    while "next" in r.links:
        nxt = r.links["next"]["url"]
        assert "page_info=" in nxt and "updated_at_min" not in nxt  # the cursor carries the filters
        r = await http.get(nxt, headers=AUTH)
        seen += [o["id"] for o in r.json()["orders"]]
        pages += 1
    assert seen == ids[2:] + ids[:1]
    assert pages == 3
    back = await http.get(r.links["previous"]["url"], headers=AUTH)
    assert [o["id"] for o in back.json()["orders"]] == ids[4:6]

    # page_info admits only limit and fields beside it; a forged one is refused.
    bad = await http.get(f"{API}/orders.json", params={"page_info": "abc", "limit": "2"}, headers=AUTH)
    assert (bad.status_code, bad.json()) == (400, {"errors": {"page_info": ["Invalid value."]}})
    token = nxt.split("page_info=")[1].split("&")[0]
    mixed = await http.get(f"{API}/orders.json", params={"page_info": token, "status": "any"}, headers=AUTH)
    assert mixed.status_code == 400
    over = await http.get(f"{API}/orders.json", params={"limit": "251"}, headers=AUTH)
    assert over.status_code == 400
    full = await http.get(f"{API}/orders.json", params={"limit": "250", "status": "any"}, headers=AUTH)
    assert len(full.json()["orders"]) == 7 and "Link" not in full.headers


async def test_status_filters_and_fields(shop: SandboxShop, http: httpx.AsyncClient) -> None:
    a, b = (shop.create_order(p)["id"] for p in demo_payloads(2))
    shop.cancel_order(b, "customer")

    async def ids(**params: str) -> list[int]:
        r = await http.get(f"{API}/orders.json", params=params, headers=AUTH)
        assert r.status_code == 200, r.text
        return sorted(o["id"] for o in r.json()["orders"])

    assert await ids() == [a]  # default status=open
    assert await ids(status="cancelled") == [b]
    assert await ids(status="any") == sorted([a, b])
    r = await http.get(
        f"{API}/orders.json", params={"status": "any", "fields": "id,cancelled_at"}, headers=AUTH
    )
    assert all(set(o) == {"id", "cancelled_at"} for o in r.json()["orders"])
    count = await http.get(f"{API}/orders/count.json", params={"status": "any"}, headers=AUTH)
    assert count.json() == {"count": 2}
    assert (
        await http.get(f"{API}/orders.json", params={"updated_at_min": "yesterday"}, headers=AUTH)
    ).status_code == 400


async def test_one_order_and_not_found(shop: SandboxShop, http: httpx.AsyncClient) -> None:
    order = shop.create_order(demo_payloads(1)[0])
    r = await http.get(f"{API}/orders/{order['id']}.json", headers=AUTH)
    assert r.status_code == 200
    assert order_from_shopify(r.json()["order"]).external_id == str(order["id"])
    for path in ("orders/999.json", "orders/abc.json", "nothing.json"):
        r = await http.get(f"{API}/{path}", headers=AUTH)
        assert (r.status_code, r.json()) == (404, {"errors": "Not Found"})


# -- inventory ---------------------------------------------------------------------------------


async def test_inventory_levels_are_set_and_listed(shop: SandboxShop, http: httpx.AsyncClient) -> None:
    item = shop.inventory_item_id("MUG-WHT")
    east, west = shop.location_id("WH-EAST"), shop.location_id("WH-WEST")
    assert item is not None
    body = {"location_id": west, "inventory_item_id": item, "available": 17}
    r = await http.post(f"{API}/inventory_levels/set.json", json=body, headers=AUTH)
    assert r.status_code == 200
    level = r.json()["inventory_level"]
    assert {k: level[k] for k in body} == body
    assert level["admin_graphql_api_id"] == f"gid://shopify/InventoryLevel/{west}?inventory_item_id={item}"
    assert shop.available("MUG-WHT", "WH-WEST") == 17

    r = await http.get(f"{API}/inventory_levels.json", params={"inventory_item_ids": str(item)}, headers=AUTH)
    assert {(lv["location_id"], lv["available"]) for lv in r.json()["inventory_levels"]} == {
        (east, 2),
        (west, 17),
    }
    r = await http.get(f"{API}/inventory_levels.json", headers=AUTH)
    assert r.status_code == 422

    for broken, field in (
        ({"location_id": 1, "inventory_item_id": item, "available": 1}, "location_id"),
        ({"location_id": east, "inventory_item_id": 1, "available": 1}, "inventory_item_id"),
        ({"location_id": east, "inventory_item_id": item}, "available"),
        ({"location_id": east, "inventory_item_id": item, "available": "many"}, "available"),
    ):
        r = await http.post(f"{API}/inventory_levels/set.json", json=broken, headers=AUTH)
        assert r.status_code == 422 and list(r.json()["errors"]) == [field]


async def test_products_list_the_skus_with_their_inventory_items(
    shop: SandboxShop, http: httpx.AsyncClient
) -> None:
    r = await http.get(f"{API}/products.json", params={"limit": "5"}, headers=AUTH)
    variants = [v for p in r.json()["products"] for v in p["variants"]]
    assert len(variants) == 5 and "next" in r.links
    assert all(shop.inventory_item_id(v["sku"]) == v["inventory_item_id"] for v in variants)


# -- fulfillment, refunds, cancellation ----------------------------------------------------------


async def test_fulfillments_take_quantities_from_fulfillment_orders(
    shop: SandboxShop, http: httpx.AsyncClient
) -> None:
    payload = next(p for p in demo_payloads(20) if any(li["quantity"] > 1 for li in p["line_items"]))
    order = shop.create_order(payload)
    r = await http.get(f"{API}/orders/{order['id']}/fulfillment_orders.json", headers=AUTH)
    [fo] = r.json()["fulfillment_orders"]
    assert fo["assigned_location"]["name"] == "WH-EAST" and fo["status"] == "open"
    line = next(li for li in fo["line_items"] if li["quantity"] > 1)

    def body(qty: int) -> dict[str, Any]:
        return {
            "fulfillment": {
                "line_items_by_fulfillment_order": [
                    {
                        "fulfillment_order_id": fo["id"],
                        "fulfillment_order_line_items": [{"id": line["id"], "quantity": qty}],
                    }
                ],
                "tracking_info": {"number": "1Z999", "company": "UPS", "url": "https://ups.example/1Z999"},
            }
        }

    too_many = await http.post(f"{API}/fulfillments.json", json=body(line["quantity"] + 1), headers=AUTH)
    assert too_many.status_code == 422 and "fulfillment_order_line_items" in too_many.json()["errors"]
    r = await http.post(f"{API}/fulfillments.json", json=body(1), headers=AUTH)
    assert r.status_code == 201
    created = r.json()["fulfillment"]
    assert (created["tracking_numbers"], created["tracking_company"], created["status"]) == (
        ["1Z999"],
        "UPS",
        "success",
    )
    assert (
        created["line_items"][0]["id"] == line["line_item_id"] and created["line_items"][0]["quantity"] == 1
    )
    assert shop.order(order["id"])["fulfillment_status"] == "partial"
    [fo_after] = shop.fulfillment_orders(order["id"])
    assert fo_after["status"] == "in_progress"

    everything = {"fulfillment": {"line_items_by_fulfillment_order": [{"fulfillment_order_id": fo["id"]}]}}
    assert (await http.post(f"{API}/fulfillments.json", json=everything, headers=AUTH)).status_code == 201
    assert shop.order(order["id"])["fulfillment_status"] == "fulfilled"
    assert shop.fulfillment_orders(order["id"])[0]["status"] == "closed"
    again = await http.post(f"{API}/fulfillments.json", json=everything, headers=AUTH)
    assert again.status_code == 422
    listed = await http.get(f"{API}/orders/{order['id']}/fulfillments.json", headers=AUTH)
    assert len(listed.json()["fulfillments"]) == 2
    missing_root = await http.post(f"{API}/fulfillments.json", json={"nope": 1}, headers=AUTH)
    assert missing_root.status_code == 400 and "fulfillment" in missing_root.json()["errors"]

    # A fulfilled order cannot be cancelled (Shopify, since 2018).
    r = await http.post(f"{API}/orders/{order['id']}/cancel.json", json={"reason": "customer"}, headers=AUTH)
    assert r.status_code == 422


async def test_refunds_need_a_parent_and_stop_at_what_was_paid(
    shop: SandboxShop, http: httpx.AsyncClient
) -> None:
    payload = demo_payloads(1)[0] | {"financial_status": "paid"}
    order = shop.create_order(payload)
    [sale] = (await http.get(f"{API}/orders/{order['id']}/transactions.json", headers=AUTH)).json()[
        "transactions"
    ]
    assert (sale["kind"], sale["amount"]) == ("sale", payload["total_price"])

    def refund(amount: str, parent: int = sale["id"]) -> dict[str, Any]:
        txn = {"parent_id": parent, "amount": amount, "kind": "refund", "gateway": sale["gateway"]}
        return {"refund": {"currency": "USD", "note": "test", "transactions": [txn]}}

    r = await http.post(f"{API}/orders/{order['id']}/refunds.json", json=refund("1.00"), headers=AUTH)
    assert r.status_code == 201
    assert r.json()["refund"]["transactions"][0]["parent_id"] == sale["id"]
    assert shop.order(order["id"])["financial_status"] == "partially_refunded"
    rest = str(Decimal(sale["amount"]) - 1)
    over = await http.post(
        f"{API}/orders/{order['id']}/refunds.json", json=refund(str(Decimal(rest) + 1)), headers=AUTH
    )
    assert over.status_code == 422 and "transactions" in over.json()["errors"]
    orphan = await http.post(
        f"{API}/orders/{order['id']}/refunds.json", json=refund("1.00", parent=1), headers=AUTH
    )
    assert orphan.status_code == 422
    r = await http.post(f"{API}/orders/{order['id']}/refunds.json", json=refund(rest), headers=AUTH)
    assert r.status_code == 201 and shop.order(order["id"])["financial_status"] == "refunded"
    assert (
        len((await http.get(f"{API}/orders/{order['id']}/refunds.json", headers=AUTH)).json()["refunds"]) == 2
    )


async def test_a_refund_with_restocked_lines_returns_stock(shop: SandboxShop) -> None:
    order = shop.create_order(demo_payloads(1)[0] | {"financial_status": "paid"})
    line = order["line_items"][0]
    before = shop.available(line["sku"], "WH-WEST")
    assert before is not None
    west = shop.location_id("WH-WEST")
    shop.create_refund(
        order["id"],
        {
            "refund": {
                "refund_line_items": [
                    {"line_item_id": line["id"], "quantity": 1, "restock_type": "return", "location_id": west}
                ]
            }
        },
    )
    assert shop.available(line["sku"], "WH-WEST") == before + 1
    with pytest.raises(ShopError) as err:
        shop.create_refund(
            order["id"], {"refund": {"refund_line_items": [{"line_item_id": line["id"], "quantity": 99}]}}
        )
    assert err.value.status == 422


async def test_cancel_endpoint(shop: SandboxShop, http: httpx.AsyncClient) -> None:
    order = shop.create_order(demo_payloads(1)[0] | {"financial_status": "authorized"})
    r = await http.post(f"{API}/orders/{order['id']}/cancel.json", json={"reason": "inventory"}, headers=AUTH)
    assert r.status_code == 200
    cancelled = r.json()["order"]
    assert cancelled["cancelled_at"] and cancelled["cancel_reason"] == "inventory"
    assert cancelled["financial_status"] == "voided"
    assert [t["kind"] for t in shop.transactions(order["id"])] == ["authorization", "void"]
    again = await http.post(
        f"{API}/orders/{order['id']}/cancel.json", json={"reason": "inventory"}, headers=AUTH
    )
    assert again.status_code == 422
    bad = shop.create_order(demo_payloads(2)[1])
    r = await http.post(f"{API}/orders/{bad['id']}/cancel.json", json={"reason": "bored"}, headers=AUTH)
    assert r.status_code == 422 and "reason" in r.json()["errors"]


async def test_sandbox_controls_place_demo_orders(shop: SandboxShop, http: httpx.AsyncClient) -> None:
    r = await http.post("/_sandbox/orders/generate", json={"count": 3, "seed": 5})
    assert r.status_code == 201
    names = [o["name"] for o in r.json()["orders"]]
    assert names == ["#1001", "#1002", "#1003"]
    assert [e.topic for e in shop.events()[-3:]] == ["orders/create"] * 3
    r = await http.post(
        "/_sandbox/orders", json={"line_items": [{"sku": "MUG-WHT", "quantity": 1, "price": "15.00"}]}
    )
    assert r.status_code == 201 and r.json()["order"]["name"] == "#1004"
    oid = r.json()["order"]["id"]
    r = await http.post(f"/_sandbox/orders/{oid}/cancel")
    assert r.json()["order"]["cancel_reason"] == "customer"


def test_the_shop_is_safe_to_use_from_many_threads() -> None:
    shop = SandboxShop()
    payloads = demo_payloads(40, seed=3)
    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(shop.create_order, payloads))
        list(pool.map(lambda o: shop.update_order(o["id"], {"tags": "x"}), created))
    assert len({o["id"] for o in created}) == 40 == len(shop.orders())
    events = shop.events()
    assert [e.sequence for e in events] == list(range(1, 81))
    assert len({e.event_id for e in events}) == 80


# -- webhooks ------------------------------------------------------------------------------------


async def test_webhooks_are_signed_and_carry_shopifys_headers(shop: SandboxShop) -> None:
    post, received = recording_poster()
    deliverer = WebhookDeliverer(shop, post, SECRET, url="http://platform/webhooks/shopify")
    order = shop.create_order(demo_payloads(1)[0])
    shop.update_order(order["id"], {"note": "leave at the door"})
    shop.cancel_order(order["id"], "customer")
    assert deliverer.pending() == 4
    await deliverer.drain()
    assert [h["X-Shopify-Topic"] for _, _, h in received] == [
        "orders/create",
        "orders/updated",
        "orders/cancelled",
        "orders/updated",
    ]
    for url, body, headers in received:
        assert url == "http://platform/webhooks/shopify"
        assert verify(body, headers["X-Shopify-Hmac-Sha256"], [SECRET])
        assert not verify(body, headers["X-Shopify-Hmac-Sha256"], ["another secret"])
        assert headers["X-Shopify-Shop-Domain"] == shop.domain
        assert headers["X-Shopify-API-Version"] == "2025-07"
        assert datetime.fromisoformat(headers["X-Shopify-Triggered-At"]).tzinfo is not None
        assert json.loads(body)["id"] == order["id"]
    assert len({h["X-Shopify-Event-Id"] for _, _, h in received}) == 4
    assert len({h["X-Shopify-Webhook-Id"] for _, _, h in received}) == 4
    created = order_from_shopify(json.loads(received[0][1]))
    assert created.external_id == str(order["id"])
    assert json.loads(received[2][1])["cancel_reason"] == "customer"
    assert [a.outcome for a in deliverer.attempts] == ["delivered"] * 4


async def test_only_subscribed_topics_are_delivered(shop: SandboxShop) -> None:
    post, received = recording_poster()
    fulfillments = WebhookDeliverer(shop, post, SECRET, topics=["fulfillments/create"])
    default_post, default_received = recording_poster()
    orders = WebhookDeliverer(shop, default_post, SECRET)
    order = shop.create_order(demo_payloads(1)[0])
    shop.set_available("MUG-WHT", "WH-EAST", 3)
    [fo] = shop.fulfillment_orders(order["id"])
    shop.create_fulfillment(
        {"fulfillment": {"line_items_by_fulfillment_order": [{"fulfillment_order_id": fo["id"]}]}}
    )
    assert received == [] and default_received == []  # nothing goes out before deliver_due/drain/run
    await fulfillments.drain()
    await orders.drain()
    assert [h["X-Shopify-Topic"] for _, _, h in received] == ["fulfillments/create"]
    assert [h["X-Shopify-Topic"] for _, _, h in default_received] == ["orders/create", "orders/updated"]


async def test_duplicates_keep_the_event_id_with_a_new_webhook_id(shop: SandboxShop) -> None:
    post, received = recording_poster()
    deliverer = WebhookDeliverer(shop, post, SECRET, FailureModes(duplicate_rate=1.0))
    for payload in demo_payloads(3):
        shop.create_order(payload)
    await deliverer.drain()
    assert len(received) == 6
    by_event: dict[str, list[tuple[bytes, str]]] = {}
    for _, body, headers in received:
        by_event.setdefault(headers["X-Shopify-Event-Id"], []).append((body, headers["X-Shopify-Webhook-Id"]))
    assert len(by_event) == 3
    for deliveries in by_event.values():
        (body1, hook1), (body2, hook2) = deliveries
        assert body1 == body2 and hook1 != hook2
    assert sum(a.duplicate for a in deliverer.attempts) == 3


async def test_dropped_deliveries_never_arrive(shop: SandboxShop) -> None:
    post, received = recording_poster()
    deliverer = WebhookDeliverer(shop, post, SECRET, FailureModes(drop_rate=0.5, seed=11))
    for payload in demo_payloads(12):
        shop.create_order(payload)
    await deliverer.drain()
    dropped = {a.event_id for a in deliverer.attempts if a.outcome == "dropped"}
    arrived = {h["X-Shopify-Event-Id"] for _, _, h in received}
    assert dropped and arrived  # the seed gives some of each
    assert dropped.isdisjoint(arrived)
    assert len(dropped) + len(arrived) == 12
    assert deliverer.summary()["dropped"] == len(dropped)


async def test_reordered_deliveries_arrive_after_later_events(shop: SandboxShop) -> None:
    post, received = recording_poster()
    modes = FailureModes(reorder_rate=0.3, reorder_after=2, max_hold_s=0.05, seed=5)
    deliverer = WebhookDeliverer(shop, post, SECRET, modes)
    for payload in demo_payloads(10):
        shop.create_order(payload)
    await deliverer.drain()
    triggered = [e.event_id for e in shop.events() if e.topic == "orders/create"]
    arrived = [h["X-Shopify-Event-Id"] for _, _, h in received]
    assert sorted(arrived) == sorted(triggered)  # late, not lost
    held = {a.event_id for a in deliverer.attempts if a.held_back}
    assert held and len(held) < 10, "the seed holds some back"
    assert arrived != triggered
    for event_id in held:
        later = triggered[triggered.index(event_id) + 1 :]
        overtaken_by = [e for e in arrived[: arrived.index(event_id)] if e in later]
        if len([e for e in later if e not in held]) >= 2:
            assert len(overtaken_by) >= 2, "held back until two later events went out"


async def test_a_held_event_is_released_after_max_hold_without_later_events(shop: SandboxShop) -> None:
    post, received = recording_poster()
    deliverer = WebhookDeliverer(shop, post, SECRET, FailureModes(reorder_rate=1.0, max_hold_s=0.2))
    shop.create_order(demo_payloads(1)[0])
    assert await deliverer.deliver_due() == 0  # held
    await deliverer.drain(timeout_s=5)
    assert len(received) == 1 and deliverer.attempts[0].held_back


async def test_failed_deliveries_are_retried_until_acknowledged(shop: SandboxShop) -> None:
    answers = [500, 503]

    def flaky(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        return answers.pop(0) if answers else 200

    post, received = recording_poster(flaky)
    deliverer = WebhookDeliverer(shop, post, SECRET, FailureModes(retry_delays_s=FAST))
    shop.create_order(demo_payloads(1)[0])
    await deliverer.drain()
    assert [a.outcome for a in deliverer.attempts] == ["failed", "failed", "delivered"]
    assert [a.status for a in deliverer.attempts] == [500, 503, 200]
    # A retry is the same delivery: same ids, the original bytes.
    assert len({h["X-Shopify-Webhook-Id"] for _, _, h in received}) == 1
    assert len({body for _, body, _ in received}) == 1


async def test_deliveries_are_abandoned_after_eight_retries(shop: SandboxShop) -> None:
    def down(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        raise httpx.ConnectError("connection refused")

    post, received = recording_poster(down)
    deliverer = WebhookDeliverer(shop, post, SECRET, FailureModes(retry_delays_s=FAST))
    shop.create_order(demo_payloads(1)[0])
    await deliverer.drain()
    outcomes = [a.outcome for a in deliverer.attempts]
    assert outcomes == ["failed"] * 9 + ["abandoned"]
    assert "ConnectError" in (deliverer.attempts[0].error or "")
    assert len(received) == 9 and deliverer.pending() == 0


async def test_a_slow_receiver_is_timed_out_and_retried(shop: SandboxShop) -> None:
    calls = 0

    async def slow_then_fast(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(1)
        return 200

    deliverer = WebhookDeliverer(
        shop, slow_then_fast, SECRET, FailureModes(ack_timeout_s=0.05, retry_delays_s=FAST)
    )
    shop.create_order(demo_payloads(1)[0])
    await deliverer.drain()
    assert [a.outcome for a in deliverer.attempts] == ["timeout", "delivered"]
    assert calls == 2


async def test_a_slow_acknowledgement_counts_as_failed_after_the_receiver_processed_it(
    shop: SandboxShop,
) -> None:
    post, received = recording_poster()
    deliverer = WebhookDeliverer(shop, post, SECRET, FailureModes(slow_ack_rate=1.0, retry_delays_s=(0.001,)))
    shop.create_order(demo_payloads(1)[0])
    await deliverer.drain()
    assert [a.outcome for a in deliverer.attempts] == ["slow_ack", "slow_ack", "abandoned"]
    assert len(received) == 2 and received[0][1] == received[1][1]


async def test_the_failure_modes_are_deterministic_for_a_seed() -> None:
    async def run() -> list[tuple[int, str, bool]]:
        shop = SandboxShop(seed=1)
        post, _ = recording_poster()
        modes = FailureModes(drop_rate=0.2, duplicate_rate=0.2, reorder_rate=0.2, seed=42)
        deliverer = WebhookDeliverer(shop, post, SECRET, modes)
        for payload in demo_payloads(15):
            shop.create_order(payload)
        await deliverer.drain()
        return [(a.order_id or 0, a.outcome, a.duplicate) for a in deliverer.attempts]

    first, second = await run(), await run()
    assert first == second
    assert {"dropped", "delivered"} <= {outcome for _, outcome, _ in first}


async def test_delivery_through_an_httpx_client_to_a_receiver_that_verifies() -> None:
    receiver = FastAPI()
    seen: list[str] = []

    @receiver.post("/webhooks/shopify")
    async def hook(request: Request) -> Response:
        raw = await request.body()
        if not verify(raw, request.headers.get("x-shopify-hmac-sha256"), [SECRET]):
            return Response(status_code=401)
        seen.append(request.headers["x-shopify-event-id"])
        return Response(status_code=200)

    shop = SandboxShop()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=receiver), base_url="http://platform"
    ) as client:
        good = WebhookDeliverer(shop, client, SECRET, url="http://platform/webhooks/shopify")
        bad = WebhookDeliverer(
            shop, client, "wrong", FailureModes(retry_delays_s=()), url="http://platform/webhooks/shopify"
        )
        shop.create_order(demo_payloads(1)[0])
        await good.drain()
        await bad.drain()
    assert seen == [shop.events()[0].event_id]
    assert [a.status for a in bad.attempts if a.outcome == "failed"] == [401]


async def test_the_deliverer_runs_in_the_background(shop: SandboxShop) -> None:
    post, received = recording_poster()
    deliverer = WebhookDeliverer(shop, post, SECRET)
    stop = asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop, poll_s=0.01))
    shop.create_order(demo_payloads(1)[0])
    for _ in range(200):
        if received:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert len(received) == 1


async def test_the_server_serves_on_a_real_port(shop: SandboxShop) -> None:
    post, received = recording_poster()
    deliverer = WebhookDeliverer(shop, post, SECRET)
    async with SandboxServer(shop, port=0, deliverer=deliverer) as server:
        assert server.port != 0
        async with httpx.AsyncClient(base_url=server.url) as client:
            r = await client.post("/_sandbox/orders/generate", json={"count": 2, "seed": 9})
            assert r.status_code == 201
            r = await client.get(f"{API}/orders.json", headers=AUTH)
            assert len(r.json()["orders"]) == 2
        for _ in range(200):
            if len(received) == 2:
                break
            await asyncio.sleep(0.01)
    assert len(received) == 2
