"""BigCommerce: Standard Webhooks signatures (contract vector), thin callbacks, the V2 order
client against an in-process fake of the documented API, and the order mapper.

Shapes follow ``shared/contracts/bigcommerce_adobe_commerce.md`` (envelope, V2 order skeleton,
product line fields, 429 + ``X-Rate-Limit-Time-Reset-Ms``, v2/v3 error bodies); the
sub-resources the contract only links follow BigCommerce's Orders V2 reference.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.errors import to_application_error
from adapters.channels.bigcommerce import (
    NOT_PLACED_STATUS_IDS,
    BigCommerceClient,
    SignatureError,
    WebhookError,
    order_from_bigcommerce,
    parse_webhook,
    sign,
    verify,
)
from adapters.channels.bigcommerce.client import DEFAULT_RETRY_AFTER_S
from adapters.channels.bigcommerce.signature import check, signing_key
from adapters.channels.errors import MappingError
from adapters.errors import PermanentError, RateLimitedError, TransientError
from canonical import Money, Order

FIXTURES = Path(__file__).parent / "fixtures" / "bigcommerce"
FIXTURE_NAMES = ["order_tax_exclusive_coupon", "order_tax_inclusive_gb", "order_guest_gift_certificate"]

# The contract's V2 order skeleton and product line fields.
ORDER_KEYS = {
    "id", "customer_id", "status_id", "status", "date_created", "currency_code", "subtotal_ex_tax",
    "subtotal_inc_tax", "subtotal_tax", "shipping_cost_ex_tax", "shipping_cost_inc_tax", "total_ex_tax",
    "total_inc_tax", "total_tax", "discount_amount", "coupon_discount", "items_total", "payment_method",
    "payment_status", "refunded_amount", "channel_id", "external_id", "billing_address", "products",
    "shipping_addresses", "coupons",
}  # fmt: skip
BILLING_KEYS = {
    "first_name", "last_name", "company", "street_1", "street_2", "city", "state", "zip", "country",
    "country_iso2", "phone", "email",
}  # fmt: skip
PRODUCT_KEYS = {
    "id", "order_id", "product_id", "variant_id", "sku", "name", "quantity", "base_price", "price_ex_tax",
    "price_inc_tax", "total_ex_tax", "total_inc_tax", "total_tax", "applied_discounts", "order_address_id",
}  # fmt: skip

# Standard Webhooks test vector (contract): standard-webhooks libraries/python/tests/test_webhooks.py
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

CLIENT_SECRET = "bc_app_client_secret_9f8e7d6c5b4a"  # a BigCommerce app client secret: used as raw bytes
STORE_HASH = "abc123"
TOKEN = "bc_access_token_0123456789"
NOW = datetime(2026, 11, 24, 15, 35, 40, tzinfo=UTC)
STATUS_CODES_DOC = "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def mapped(name: str) -> Order:
    d = load(name)
    return order_from_bigcommerce(d["order"], d["products"], d["shipping_addresses"], d["coupons"])


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def gbp(amount: str) -> Money:
    return Money.of(amount, "GBP")


def envelope(scope: str, data: dict[str, Any], created_at: int = 1795620935) -> bytes:
    body = {
        "scope": scope,
        "store_id": "1025646",
        "producer": f"stores/{STORE_HASH}",
        "created_at": created_at,
        "hash": hashlib.sha1(json.dumps(data).encode()).hexdigest(),
        "data": data,
    }
    return json.dumps(body).encode()


def callback_headers(raw: bytes, *, msg_id: str = "msg_2pQ8sRkTz", at: datetime = NOW) -> dict[str, str]:
    ts = int(at.timestamp())
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(msg_id, ts, raw, CLIENT_SECRET),
    }


# -- signatures -----------------------------------------------------------------------------


def test_sign_matches_the_standard_webhooks_test_vector() -> None:
    assert sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY, VECTOR_SECRET) == VECTOR_SIGNATURE
    assert signing_key(VECTOR_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


def test_check_accepts_the_vector_within_tolerance() -> None:
    now = datetime.fromtimestamp(VECTOR_TS, UTC) + timedelta(seconds=30)
    sent = check(
        VECTOR_BODY,
        msg_id=VECTOR_ID,
        timestamp=str(VECTOR_TS),
        signature=VECTOR_SIGNATURE,
        secrets=[VECTOR_SECRET],
        now=now,
    )
    assert sent == datetime.fromtimestamp(VECTOR_TS, UTC)


def test_a_bigcommerce_client_secret_is_the_key_as_raw_bytes() -> None:
    digest = hmac.new(CLIENT_SECRET.encode(), f"{VECTOR_ID}.{VECTOR_TS}.".encode() + VECTOR_BODY, "sha256")
    expected = "v1," + base64.b64encode(digest.digest()).decode()
    assert sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY, CLIENT_SECRET) == expected
    # BigCommerce's samples give the library whsec_ + base64(client secret): the same key.
    wrapped = "whsec_" + base64.b64encode(CLIENT_SECRET.encode()).decode()
    assert sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY, wrapped) == expected


def _verify(
    signature: str | None, secrets: list[str], *, now_offset: int = 0, body: bytes = VECTOR_BODY
) -> bool:
    now = datetime.fromtimestamp(VECTOR_TS, UTC) + timedelta(seconds=now_offset)
    return verify(
        body, msg_id=VECTOR_ID, timestamp=str(VECTOR_TS), signature=signature, secrets=secrets, now=now
    )


def test_a_wrong_secret_a_tampered_body_or_another_version_never_verifies() -> None:
    assert _verify(VECTOR_SIGNATURE, [VECTOR_SECRET])
    assert not _verify(VECTOR_SIGNATURE, [CLIENT_SECRET])
    assert not _verify(VECTOR_SIGNATURE, [VECTOR_SECRET], body=b'{"test":2432232314}')
    assert not _verify(VECTOR_SIGNATURE.replace("v1,", "v2,"), [VECTOR_SECRET])
    assert not _verify("v1,not-base64!", [VECTOR_SECRET])
    assert not _verify(None, [VECTOR_SECRET])
    assert not _verify(VECTOR_SIGNATURE, [""])  # a blank secret is never a key


def test_any_v1_entry_under_any_secret_verifies_during_rotation() -> None:
    new_signature = sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY, CLIENT_SECRET)
    header = f"v1,bm90IHRoaXMgb25l {new_signature} v1a,ignored"
    assert _verify(header, [CLIENT_SECRET, VECTOR_SECRET])
    assert _verify(VECTOR_SIGNATURE, [CLIENT_SECRET, VECTOR_SECRET])  # still signed with the old one
    assert not _verify(VECTOR_SIGNATURE, [CLIENT_SECRET])  # rotation finished


@pytest.mark.parametrize(("offset", "valid"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_the_timestamp_must_be_within_five_minutes_either_way(offset: int, valid: bool) -> None:
    assert _verify(VECTOR_SIGNATURE, [VECTOR_SECRET], now_offset=offset) is valid


@pytest.mark.parametrize(
    ("msg_id", "timestamp", "signature", "reason"),
    [
        (None, str(VECTOR_TS), VECTOR_SIGNATURE, "missing_signature"),
        (VECTOR_ID, None, VECTOR_SIGNATURE, "missing_signature"),
        (VECTOR_ID, "2021-02-25T15:02:10Z", VECTOR_SIGNATURE, "invalid_timestamp"),
        (VECTOR_ID, str(VECTOR_TS - 3600), VECTOR_SIGNATURE, "timestamp_out_of_tolerance"),
        (VECTOR_ID, "999999999999", VECTOR_SIGNATURE, "timestamp_out_of_tolerance"),  # beyond datetime
        (VECTOR_ID, str(VECTOR_TS), "v1,AAAA", "invalid_signature"),
    ],
)
def test_check_says_why_it_refuses(
    msg_id: str | None, timestamp: str | None, signature: str, reason: str
) -> None:
    with pytest.raises(SignatureError) as err:
        check(
            VECTOR_BODY,
            msg_id=msg_id,
            timestamp=timestamp,
            signature=signature,
            secrets=[VECTOR_SECRET],
            now=datetime.fromtimestamp(VECTOR_TS, UTC),
        )
    assert err.value.reason == reason


def test_a_naive_now_or_a_malformed_whsec_secret_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _ = check(
            VECTOR_BODY, msg_id="m", timestamp="1", signature="v1,x", secrets=["s"], now=datetime(2026, 1, 1)
        )
    with pytest.raises(ValueError, match="base64"):
        signing_key("whsec_not base64!")


# -- callbacks ------------------------------------------------------------------------------


def test_an_order_created_callback_is_verified_and_read() -> None:
    raw = envelope("store/order/created", {"type": "order", "id": 250})
    event = parse_webhook(callback_headers(raw), raw, [CLIENT_SECRET], NOW)
    assert (event.scope, event.store_id, event.store_hash, event.order_id) == (
        "store/order/created",
        "1025646",
        STORE_HASH,
        "250",
    )
    assert event.is_order and event.message_id == "msg_2pQ8sRkTz"
    assert event.sent_at == NOW.replace(microsecond=0) and event.created_at == 1795620935
    assert event.hash == hashlib.sha1(b'{"type": "order", "id": 250}').hexdigest()
    assert event.dedupe_key == f"bigcommerce:1025646:store/order/created:{event.hash}:1795620935"


def test_headers_are_read_case_insensitively() -> None:
    raw = envelope("store/order/created", {"type": "order", "id": 250})
    headers = {k.title(): v for k, v in callback_headers(raw).items()}  # Webhook-Id, ...
    assert parse_webhook(headers, raw, [CLIENT_SECRET], NOW).order_id == "250"


def test_a_retry_has_the_same_dedupe_key_but_a_new_event_on_the_same_order_does_not() -> None:
    raw = envelope("store/order/updated", {"type": "order", "id": 250})
    first = parse_webhook(callback_headers(raw), raw, [CLIENT_SECRET], NOW)
    later = NOW + timedelta(minutes=3)  # BigCommerce's second retry, re-signed at send time
    retry = parse_webhook(callback_headers(raw, at=later), raw, [CLIENT_SECRET], later)
    assert retry.dedupe_key == first.dedupe_key
    again = envelope("store/order/updated", {"type": "order", "id": 250}, created_at=1795621500)
    second = parse_webhook(callback_headers(again), again, [CLIENT_SECRET], NOW)
    assert second.hash == first.hash and second.dedupe_key != first.dedupe_key


def test_status_and_transaction_callbacks_name_their_order() -> None:
    raw = envelope(
        "store/order/statusUpdated",
        {"type": "order", "id": 250, "status": {"previous_status_id": 0, "new_status_id": 11}},
    )
    event = parse_webhook(callback_headers(raw), raw, [CLIENT_SECRET], NOW)
    assert (event.order_id, event.status_change) == ("250", (0, 11))
    assert 0 in NOT_PLACED_STATUS_IDS and 11 not in NOT_PLACED_STATUS_IDS
    raw = envelope(
        "store/order/transaction/created", {"type": "transaction", "order_id": 251, "transaction_id": 9}
    )
    assert parse_webhook(callback_headers(raw), raw, [CLIENT_SECRET], NOW).order_id == "251"
    raw = envelope("store/product/inventory/updated", {"type": "product", "id": 77, "inventory": {}})
    product = parse_webhook(callback_headers(raw), raw, [CLIENT_SECRET], NOW)
    assert not product.is_order and product.order_id is None


def test_a_stale_callback_is_refused_before_its_body_is_read() -> None:
    raw = b"not even json"
    old = NOW - timedelta(minutes=6)
    with pytest.raises(SignatureError) as err:
        parse_webhook(callback_headers(raw, at=old), raw, [CLIENT_SECRET], NOW)
    assert err.value.reason == "timestamp_out_of_tolerance"
    with pytest.raises(SignatureError) as err:
        parse_webhook(callback_headers(raw), raw, ["another secret"], NOW)
    assert err.value.reason == "invalid_signature"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"[]", "malformed_json"),
        (b'{"scope": "order/created", "data": {}}', "missing_scope"),
        (b'{"scope": "store/order/created", "data": 250}', "missing_data"),
    ],
)
def test_a_verified_callback_with_a_malformed_body_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(WebhookError) as err:
        parse_webhook(callback_headers(raw), raw, [CLIENT_SECRET], NOW)
    assert err.value.reason == reason


# -- the client against a fake of the documented API ----------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeBigCommerce:
    """``/stores/{hash}/v2/orders/{id}`` and its sub-resources, with scripted failures."""

    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    token: str = TOKEN
    script: list[httpx.Response | Exception] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    requests_left: int = 149

    def add(self, name: str) -> dict[str, Any]:
        data = load(name)
        self.orders[data["order"]["id"]] = data
        return data

    def _json(self, status: int, body: Any) -> httpx.Response:
        self.requests_left -= 1
        headers = {
            "X-Rate-Limit-Time-Window-Ms": "30000",
            "X-Rate-Limit-Time-Reset-Ms": "15000",
            "X-Rate-Limit-Requests-Quota": "150",
            "X-Rate-Limit-Requests-Left": str(self.requests_left),
        }
        return httpx.Response(status, json=body, headers=headers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return step
        if request.headers.get("X-Auth-Token") != self.token:
            return self._json(
                401, [{"status": 401, "message": "You are not authorized to access this resource."}]
            )
        match = re.fullmatch(rf"/stores/{STORE_HASH}/v2/orders/(\d+)(?:/(\w+))?", request.url.path)
        data = self.orders.get(int(match.group(1))) if match else None
        if match is None or data is None:
            return self._json(404, [{"status": 404, "message": "The requested resource was not found."}])
        sub = match.group(2)
        if sub is None:
            return self._json(200, data["order"])
        if sub not in ("products", "shipping_addresses", "coupons"):
            return self._json(404, [{"status": 404, "message": "The requested resource was not found."}])
        page, limit = int(request.url.params.get("page", 1)), int(request.url.params.get("limit", 50))
        items = data[sub][(page - 1) * limit : page * limit]
        if not items:
            self.requests_left -= 1
            return httpx.Response(204)  # V2 answers an empty collection with No Content
        return self._json(200, items)


def client_for(fake: Handler, **kwargs: Any) -> BigCommerceClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    return BigCommerceClient("https://api.bigcommerce.com", STORE_HASH, TOKEN, http, **kwargs)


async def test_get_order_fetches_the_order_and_its_sub_resources() -> None:
    fake = FakeBigCommerce()
    data = fake.add("order_tax_exclusive_coupon")
    fetched = await client_for(fake).get_order(250)
    assert fetched.order == data["order"] and fetched.products == data["products"]
    assert fetched.shipping_addresses == data["shipping_addresses"] and fetched.coupons == data["coupons"]
    assert [r.url.path for r in fake.requests] == [
        f"/stores/{STORE_HASH}/v2/orders/250",
        f"/stores/{STORE_HASH}/v2/orders/250/products",
        f"/stores/{STORE_HASH}/v2/orders/250/shipping_addresses",
        f"/stores/{STORE_HASH}/v2/orders/250/coupons",
    ]
    assert all(r.headers["X-Auth-Token"] == TOKEN for r in fake.requests)
    assert all(r.headers["Accept"] == "application/json" for r in fake.requests)
    assert dict(fake.requests[1].url.params) == {"page": "1", "limit": "250"}
    order = order_from_bigcommerce(
        fetched.order, fetched.products, fetched.shipping_addresses, fetched.coupons
    )
    assert order.key == "bigcommerce-250" and order.totals.total == usd("71.50")


async def test_an_empty_collection_answered_204_is_an_empty_list() -> None:
    fake = FakeBigCommerce()
    fake.add("order_tax_inclusive_gb")
    fetched = await client_for(fake).get_order("251")
    assert fetched.coupons == [] and len(fetched.products) == 2


async def test_collections_are_read_page_by_page() -> None:
    fake = FakeBigCommerce()
    fake.add("order_tax_exclusive_coupon")
    fetched = await client_for(fake, page_limit=1).get_order(250)
    assert [p["id"] for p in fetched.products] == [301, 302]
    pages = [dict(r.url.params) for r in fake.requests if r.url.path.endswith("/products")]
    assert pages == [{"page": "1", "limit": "1"}, {"page": "2", "limit": "1"}, {"page": "3", "limit": "1"}]


async def test_a_429_is_rate_limited_for_the_quota_reset_time() -> None:
    fake = FakeBigCommerce()
    fake.add("order_tax_exclusive_coupon")
    fake.script = [
        httpx.Response(
            429,
            headers={"X-Rate-Limit-Time-Reset-Ms": "12500", "X-Rate-Limit-Requests-Left": "0"},
            json={"status": 429, "title": "Too many requests", "type": "about:blank"},
        )
    ]
    with pytest.raises(RateLimitedError) as err:
        await client_for(fake).get_order(250)
    assert err.value.retry_after == 12.5 and err.value.system == "bigcommerce"
    assert isinstance(err.value, TransientError) and "HTTP 429" in err.value.message
    app_error = to_application_error(err.value)
    assert app_error.next_retry_delay == timedelta(seconds=12.5)
    assert app_error.type == "bigcommerce_rate_limited" and not app_error.non_retryable


async def test_a_429_without_quota_headers_is_load_shedding() -> None:
    fake = FakeBigCommerce()
    fake.add("order_tax_exclusive_coupon")
    fake.script = [httpx.Response(200, json=fake.orders[250]["order"]), httpx.Response(429)]
    with pytest.raises(RateLimitedError) as err:
        await client_for(fake).get_order(250)
    assert err.value.retry_after == DEFAULT_RETRY_AFTER_S
    assert "/orders/250/products" in err.value.message  # a sub-resource's failure fails the fetch


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json=[{"status": 500, "message": "Internal Server Error"}]),
        httpx.Response(503, text="<html>Service Unavailable</html>"),
        httpx.Response(408),
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("connection refused"),
    ],
)
async def test_server_errors_timeouts_and_unreadable_answers_are_transient(
    failure: httpx.Response | Exception,
) -> None:
    fake = FakeBigCommerce()
    fake.add("order_tax_exclusive_coupon")
    fake.script = [failure]
    with pytest.raises(TransientError) as err:
        await client_for(fake).get_order(250)
    assert not isinstance(err.value, RateLimitedError) and err.value.system == "bigcommerce"
    assert to_application_error(err.value).type == "bigcommerce_unavailable"


async def test_an_unknown_order_is_permanent_with_bigcommerces_message() -> None:
    with pytest.raises(PermanentError) as err:
        await client_for(FakeBigCommerce()).get_order(999)
    assert err.value.reason == "order_not_found"
    assert err.value.message == "GET /orders/999: HTTP 404 The requested resource was not found."
    assert to_application_error(err.value).non_retryable


async def test_a_wrong_token_is_permanent_and_never_shown() -> None:
    fake = FakeBigCommerce(token="the-right-token")
    fake.add("order_tax_exclusive_coupon")
    client = client_for(fake)
    with pytest.raises(PermanentError) as err:
        await client.get_order(250)
    assert err.value.reason == "unauthorized" and "not authorized" in err.value.message
    assert TOKEN not in err.value.message and TOKEN not in repr(client)


@pytest.mark.parametrize(
    ("status", "body", "reason", "detail"),
    [
        (403, [{"status": 403, "message": "Missing scope store_v2_orders_read_only"}], "forbidden",
         "Missing scope"),
        (
            422,
            {"status": 422, "title": "Invalid input", "type": STATUS_CODES_DOC,
             "errors": {"id": "must be an integer"}},
            "invalid_request",
            "Invalid input - id: must be an integer",
        ),
        (409, [{"status": 409, "message": "Conflict"}], "http_409", "Conflict"),
    ],
)  # fmt: skip
async def test_other_client_errors_are_permanent_with_a_reason(
    status: int, body: Any, reason: str, detail: str
) -> None:
    fake = FakeBigCommerce()
    fake.add("order_tax_exclusive_coupon")
    fake.script = [httpx.Response(status, json=body)]
    with pytest.raises(PermanentError) as err:
        await client_for(fake).get_order(250)
    assert err.value.reason == reason and detail in err.value.message


@pytest.mark.parametrize("order_id", ["abc", "25/0", "", True])
async def test_a_malformed_order_id_is_refused_without_a_request(order_id: Any) -> None:
    fake = FakeBigCommerce()
    with pytest.raises(PermanentError) as err:
        await client_for(fake).get_order(order_id)
    assert err.value.reason == "invalid_request" and fake.requests == []


async def test_from_callback_to_canonical_order() -> None:
    fake = FakeBigCommerce()
    fake.add("order_tax_inclusive_gb")
    raw = envelope("store/order/created", {"type": "order", "id": 251})
    event = parse_webhook(callback_headers(raw), raw, [CLIENT_SECRET], NOW)
    assert event.order_id is not None
    fetched = await client_for(fake).get_order(event.order_id)
    order = order_from_bigcommerce(
        fetched.order, fetched.products, fetched.shipping_addresses, fetched.coupons
    )
    assert (order.key, order.totals.total, order.taxes_included) == ("bigcommerce-251", gbp("76.97"), True)


# -- the mapper -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixtures_have_the_documented_shape_and_map(name: str) -> None:
    data = load(name)
    assert data["order"].keys() >= ORDER_KEYS and data["order"]["billing_address"].keys() >= BILLING_KEYS
    assert all(
        isinstance(data["order"][k], str) and k for k in ("total_inc_tax", "total_ex_tax", "total_tax")
    )
    for product in data["products"]:
        assert product.keys() >= PRODUCT_KEYS and re.fullmatch(r"\d+\.\d{4}", product["price_inc_tax"])
    order = mapped(name)
    assert order.key == f"bigcommerce-{data['order']['id']}"
    assert order.totals.total == Money.of(data["order"]["total_inc_tax"], order.currency)


def test_tax_exclusive_order_with_a_coupon_spread_over_lines() -> None:
    order = mapped("order_tax_exclusive_coupon")
    assert (order.external_id, order.name, order.currency, order.presentment_currency) == (
        "250",
        "#250",
        "USD",
        None,
    )
    assert order.placed_at == datetime(2026, 11, 24, 15, 35, 35, tzinfo=UTC)
    assert not order.taxes_included and order.note == "Ring the bell twice"

    (coupon,) = order.discounts
    assert (coupon.kind, coupon.code, coupon.value_type, coupon.value, coupon.target) == (
        "code", "SAVE5", "fixed_amount", Decimal(5), "line_item",
    )  # fmt: skip
    tee, mug = order.lines
    assert (tee.line_id, tee.sku, tee.title, tee.quantity, tee.unit_price) == (
        "301", "TEE-RED-M", "Everyday Tee - Red / M", 2, usd("20.00"),
    )  # fmt: skip
    # 3.3333 + 1.6667 off: rounded once (5.00) and split so the lines add up to it exactly.
    assert [(a.amount, a.discount_index) for a in tee.discount_allocations] == [(usd("3.33"), 0)]
    assert [(a.amount, a.discount_index) for a in mug.discount_allocations] == [(usd("1.67"), 0)]
    assert [(t.title, t.rate, t.amount) for t in tee.tax_lines] == [("Tax", Decimal("0.1"), usd("3.67"))]
    assert mug.tax == usd("1.83") and tee.requires_shipping and not tee.gift_card

    (ship,) = order.shipping_lines
    assert (ship.code, ship.price, ship.tax, ship.tax_lines[0].rate) == (
        "Flat Rate", usd("10.00"), usd("1.00"), Decimal("0.1"),
    )  # fmt: skip
    t = order.totals
    assert (t.subtotal, t.discount_total, t.shipping_total, t.tax_total, t.total) == (
        usd("60.00"), usd("5.00"), usd("10.00"), usd("6.50"), usd("71.50"),
    )  # fmt: skip
    (payment,) = order.payments
    assert (payment.managed_by, payment.method, payment.gateway, payment.amount, payment.reference) == (
        "channel", "card", "Credit Card", usd("71.50"), "ch_3PqRsTuVwXyZ0123",
    )  # fmt: skip
    c = order.customer
    assert (c.external_id, c.guest, c.email, c.phone) == ("11", False, "jane.doe@example.com", "5125550100")
    a = order.shipping_address
    assert a is not None and (a.name, a.company, a.line1, a.city, a.region, a.postal_code, a.country) == (
        "Jane Doe", "Acme Pty Ltd", "666 Sussex St", "Austin", "TX", "78751", "US",
    )  # fmt: skip
    b = order.billing_address
    assert b is not None and (b.line1, b.line2, b.region) == ("455 Main Street", "Suite 200", "TX")


def test_tax_inclusive_gb_order_reads_the_inc_tax_figures_only() -> None:
    order = mapped("order_tax_inclusive_gb")
    assert order.currency == "GBP" and order.taxes_included
    jumper, socks = order.lines
    # Socks cost 7.4917 ex VAT (4 decimals): never used, the inc-tax price is the actual one.
    assert (jumper.unit_price, socks.unit_price, socks.quantity) == (gbp("60.00"), gbp("8.99"), 2)
    (manual,) = order.discounts
    assert (manual.kind, manual.title, manual.code, manual.value) == (
        "manual", "Manual Discount", None, Decimal("6.00"),
    )  # fmt: skip
    assert [a.amount for a in jumper.discount_allocations] == [gbp("4.62")]  # 4.6166
    assert [a.amount for a in socks.discount_allocations] == [gbp("1.38")]  # 1.3834
    assert [(t.rate, t.amount) for t in socks.tax_lines] == [(Decimal("0.2"), gbp("2.77"))]
    t = order.totals
    assert (t.subtotal, t.discount_total, t.shipping_total, t.tax_total, t.total) == (
        gbp("77.98"), gbp("6.00"), gbp("4.99"), gbp("12.83"), gbp("76.97"),
    )  # fmt: skip
    assert t.total == t.subtotal - t.discount_total + t.shipping_total
    (payment,) = order.payments  # authorized, not captured: the platform captures on shipment
    assert (payment.managed_by, payment.reference) == ("platform", "pi_3PqRsTuVwXyZ9876")
    assert order.shipping_address is not None and order.shipping_address.region is None


def test_guest_order_selling_a_gift_certificate_paid_partly_with_one() -> None:
    order = mapped("order_guest_gift_certificate")
    c = order.customer
    assert c.guest and c.external_id is None and c.email == "k.johnson@example.org"
    assert (c.first_name, c.last_name) == ("Katherine", "Johnson")
    print_, certificate = order.lines
    assert print_.sku == "PRINT-A3" and print_.fulfillable
    assert certificate.sku is None and certificate.gift_card and not certificate.requires_shipping
    assert not certificate.fulfillable
    (free,) = order.discounts
    assert (free.code, free.value_type, free.value, free.target) == (
        "FREESHIP", "percentage", Decimal(100), "shipping_line",
    )  # fmt: skip
    gift, paypal = order.payments
    assert (gift.managed_by, gift.method, gift.gateway, gift.amount) == (
        "channel", "gift_card", "gift_certificate", usd("10.00"),
    )  # fmt: skip
    assert (paypal.managed_by, paypal.method, paypal.amount) == ("channel", "wallet", usd("45.00"))
    assert order.shipping_address is not None and order.shipping_address.region == "DC"


def test_a_display_currency_is_recorded_as_the_presentment_currency() -> None:
    data = load("order_tax_exclusive_coupon")
    data["order"]["currency_code"] = "EUR"
    order = order_from_bigcommerce(
        data["order"], data["products"], data["shipping_addresses"], data["coupons"]
    )
    assert (order.currency, order.presentment_currency) == ("USD", "EUR")


Mutation = Callable[[dict[str, Any]], Any]


def _map(data: dict[str, Any]) -> Order:
    return order_from_bigcommerce(
        data["order"], data["products"], data["shipping_addresses"], data["coupons"]
    )


@pytest.mark.parametrize(
    ("status", "manager"),
    [
        ("captured", "channel"),
        ("paid", "channel"),
        ("partially refunded", "channel"),
        ("authorized", "platform"),
        ("pending", "platform"),
        ("held for review", "platform"),
        ("", "platform"),
    ],
)
def test_who_manages_the_payment(status: str, manager: str) -> None:
    data = load("order_tax_exclusive_coupon")
    data["order"]["payment_status"] = status
    (payment,) = _map(data).payments
    assert (payment.managed_by, payment.amount) == (manager, usd("71.50"))


@pytest.mark.parametrize(
    ("status", "message"), [("declined", "'declined'"), ("void", "'void'"), (None, "missing")]
)
def test_a_failed_or_missing_payment_status_is_refused(status: str | None, message: str) -> None:
    data = load("order_tax_exclusive_coupon")
    data["order"]["payment_status"] = status
    with pytest.raises(MappingError, match=message) as err:
        _map(data)
    assert err.value.path == "payment_status"


@pytest.mark.parametrize(
    ("method", "expected"),
    [("Cash on Delivery", "cash_on_delivery"), ("Bank Deposit", "bank_transfer"), ("Manual", "other")],
)
def test_the_payment_method_is_classified(method: str, expected: str) -> None:
    data = load("order_tax_exclusive_coupon")
    data["order"]["payment_method"] = method
    assert _map(data).payments[0].method == expected


def test_discount_amount_may_include_the_coupon_discount() -> None:
    data = load("order_tax_exclusive_coupon")
    data["order"]["discount_amount"] = "5.0000"
    assert _map(data).totals.discount_total == usd("5.00")


def test_totals_that_do_not_add_up_are_refused_with_the_figures() -> None:
    data = load("order_tax_exclusive_coupon")
    data["order"]["total_inc_tax"] = "72.0000"
    with pytest.raises(MappingError) as err:
        _map(data)
    assert err.value.path == "total_inc_tax"
    assert str(err.value) == (
        "total_inc_tax: is 72.00 USD but subtotal 60.00 USD - discounts 5.00 USD + shipping 10.00 USD"
        " + tax 6.50 USD add up to 71.50 USD"
    )


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        (
            lambda d: d["order"].update(subtotal_ex_tax="61.0000"),
            "subtotal_ex_tax",
            "is 61.00 USD but products",
        ),
        (
            lambda d: d["order"].update(total_tax="6.0000"),
            "total_tax",
            "is 6.00 USD but products and shipping",
        ),
        (lambda d: d["order"].update(shipping_cost_ex_tax="9.0000"), "shipping_cost_ex_tax", "is 9.00 USD"),
        (
            lambda d: d["order"].update(discount_amount="7.0000"),
            "discount_amount",
            "applied_discounts add up to 5.00",
        ),
        (
            lambda d: d["products"][0].update(total_ex_tax="41.0000"),
            "products[0].total_ex_tax",
            "is 41.00 USD but price_ex_tax 20.00 USD x quantity 2 is 40.00 USD",
        ),
    ],
)
def test_figures_that_disagree_are_refused_naming_the_field(
    mutate: Mutation, path: str, message: str
) -> None:
    data = load("order_tax_exclusive_coupon")
    mutate(data)
    with pytest.raises(MappingError) as err:
        _map(data)
    assert err.value.path == path and message in err.value.message


def test_ex_tax_prices_are_refused_when_they_are_not_whole_minor_units() -> None:
    data = load("order_tax_inclusive_gb")
    data["order"]["is_tax_inclusive_pricing"] = False
    with pytest.raises(MappingError, match="more decimals than GBP allows") as err:
        _map(data)
    assert err.value.path == "products[1].price_ex_tax"  # 7.4917


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        (
            lambda d: d["shipping_addresses"].append(copy.deepcopy(d["shipping_addresses"][0])),
            "shipping_addresses",
            "ships to 2 addresses",
        ),
        (
            lambda d: d["order"].update(handling_cost_ex_tax="2.0000"),
            "handling_cost_ex_tax",
            "handling costs",
        ),
        (
            lambda d: d["shipping_addresses"][0].update(handling_cost_ex_tax="1.5000"),
            "shipping_addresses[0].handling_cost_ex_tax",
            "handling costs",
        ),
        (lambda d: d["order"].update(wrapping_cost_ex_tax="3.0000"), "wrapping_cost_ex_tax", "gift wrapping"),
        (
            lambda d: d["order"].update(
                fees=[
                    {
                        "id": 1,
                        "type": "custom_fee",
                        "display_name_customer": "A Fee",
                        "cost_inc_tax": "12.3000",
                    }
                ]
            ),
            "fees[0].cost_inc_tax",
            "'A Fee' of 12.3000 USD: fees are not supported",
        ),
    ],
)
def test_what_the_canonical_order_cannot_hold_is_refused(mutate: Mutation, path: str, message: str) -> None:
    data = load("order_tax_exclusive_coupon")
    mutate(data)
    with pytest.raises(MappingError) as err:
        _map(data)
    assert err.value.path == path and message in err.value.message


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["order"].pop("id"), "id"),
        (lambda d: d["order"].pop("total_inc_tax"), "total_inc_tax"),
        (lambda d: d["order"].pop("date_created"), "date_created"),
        (lambda d: d["order"].pop("customer_id"), "customer_id"),
        (lambda d: d["order"].pop("billing_address"), "billing_address"),
        (lambda d: d["order"]["billing_address"].pop("country_iso2"), "billing_address.country_iso2"),
        (lambda d: d["products"][0].pop("price_ex_tax"), "products[0].price_ex_tax"),
        (lambda d: d["products"][1].pop("quantity"), "products[1].quantity"),
        (lambda d: d["products"][1].pop("total_tax"), "products[1].total_tax"),
        (
            lambda d: d["products"][0]["applied_discounts"][0].pop("amount"),
            "products[0].applied_discounts[0].amount",
        ),
        (lambda d: d["shipping_addresses"][0].pop("cost_ex_tax"), "shipping_addresses[0].cost_ex_tax"),
        (lambda d: d["shipping_addresses"][0].pop("country_iso2"), "shipping_addresses[0].country_iso2"),
        (lambda d: d["coupons"][0].pop("type"), "coupons[0].type"),
    ],
)
def test_a_missing_field_is_reported_with_its_path(mutate: Mutation, path: str) -> None:
    data = load("order_tax_exclusive_coupon")
    mutate(data)
    with pytest.raises(MappingError) as err:
        _map(data)
    assert err.value.path == path
    assert str(err.value) == f"{path}: missing"


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        (lambda d: d["products"][0].update(price_ex_tax=20.0), "products[0].price_ex_tax", "decimal string"),
        (lambda d: d["coupons"][0].update(type=7), "coupons[0].type", "coupon type 0-5"),
        (lambda d: d["products"][0].update(type="service"), "products[0].type", "physical, digital"),
        (lambda d: d["order"].update(date_created="2026-11-24"), "date_created", "not an RFC 2822 date"),
        (
            lambda d: d["order"].update(currency_code="XYZ", default_currency_code=""),
            "currency_code",
            "unsupported",
        ),
        (lambda d: d.update(products=[]), "products", "at least one product"),
        (
            lambda d: d["order"]["billing_address"].update(email="nobody"),
            "billing_address.email",
            "not an email",
        ),
    ],
)
def test_a_malformed_field_is_reported_with_its_path(mutate: Mutation, path: str, message: str) -> None:
    data = load("order_tax_exclusive_coupon")
    mutate(data)
    with pytest.raises(MappingError, match=message) as err:
        _map(data)
    assert err.value.path == path


def test_a_coupon_amount_may_be_a_json_number_and_regions_outside_us_and_ca_are_kept() -> None:
    data = load("order_tax_exclusive_coupon")
    data["coupons"][0].update(amount=2.5, type=1)
    data["shipping_addresses"][0].update(country_iso2="DE", country="Germany", state="Bavaria")
    order = _map(data)
    assert (order.discounts[0].value_type, order.discounts[0].value) == ("percentage", Decimal("2.5"))
    assert order.shipping_address is not None and order.shipping_address.region == "Bavaria"


def test_mapping_does_not_modify_its_input() -> None:
    data = load("order_tax_exclusive_coupon")
    before = copy.deepcopy(data)
    order = order_from_bigcommerce(
        data["order"], data["products"], data["shipping_addresses"], data["coupons"], channel="bc-us"
    )
    assert data == before and order.key == "bc-us-250"


def test_an_amount_beyond_exact_arithmetic_is_a_mapping_error() -> None:
    data = load("order_tax_exclusive_coupon")
    data["products"][0]["quantity"] = 10**30
    with pytest.raises(MappingError, match="out of range"):
        _map(data)
