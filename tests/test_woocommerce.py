"""WooCommerce: webhook signatures (contract vector), deliveries and pings, and the order mapper.

Payloads are shaped as ``shared/contracts/woocommerce.md`` documents them (REST v3 order
skeleton: decimal strings, ``*_gmt`` dates, line ``taxes[]``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.channels.errors import MappingError
from adapters.channels.woocommerce import (
    WebhookError,
    is_ping,
    order_from_woocommerce,
    parse_webhook,
    sign,
    verify,
)
from adapters.channels.woocommerce.signature import wp_specialchars_decode
from canonical import Money

FIXTURES = Path(__file__).parent / "fixtures" / "woocommerce"
FIXTURE_NAMES = ["order_tax_exclusive_coupon", "order_tax_inclusive_gb", "order_guest_no_sku"]

# The contract's order skeleton (section 3): top-level and line item keys.
ORDER_KEYS = {
    "id", "parent_id", "number", "order_key", "created_via", "version", "status", "currency",
    "currency_symbol", "date_created", "date_created_gmt", "date_modified", "date_modified_gmt",
    "date_paid", "date_paid_gmt", "date_completed", "date_completed_gmt", "discount_total",
    "discount_tax", "shipping_total", "shipping_tax", "cart_tax", "total", "total_tax",
    "prices_include_tax", "customer_id", "customer_ip_address", "customer_user_agent", "customer_note",
    "billing", "shipping", "payment_method", "payment_method_title", "transaction_id", "cart_hash",
    "meta_data", "line_items", "tax_lines", "shipping_lines", "fee_lines", "coupon_lines", "refunds",
    "payment_url", "is_editable", "needs_payment", "needs_processing", "_links",
}  # fmt: skip
LINE_KEYS = {
    "id", "name", "product_id", "variation_id", "quantity", "tax_class", "subtotal", "subtotal_tax",
    "total", "total_tax", "taxes", "meta_data", "sku", "price", "image", "parent_name",
}  # fmt: skip
MONEY_KEYS = [
    "discount_total",
    "discount_tax",
    "shipping_total",
    "shipping_tax",
    "cart_tax",
    "total",
    "total_tax",
]

SECRET = "wc_webhook_s3cret&amp;more"  # as WooCommerce stores it: HTML entities encoded


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def gbp(amount: str) -> Money:
    return Money.of(amount, "GBP")


def delivery_headers(raw: bytes, topic: str, secret: str = SECRET) -> dict[str, str]:
    """The headers WooCommerce core sets on a delivery (contract section 2)."""
    resource, _, event = topic.partition(".")
    return {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7)",
        "X-WC-Webhook-Source": "https://shop.example.com/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": sign(raw, secret),
        "X-WC-Webhook-ID": "17",
        "X-WC-Webhook-Delivery-ID": "a3f1c0d2e4b5968778695a4b3c2d1e0f",
    }


# -- signatures -----------------------------------------------------------------------------


def test_sign_matches_the_contract_test_vector() -> None:
    # crud.php test_generate_signature: the payload is the 6 bytes "secret", the key is "".
    assert sign(b"secret", "") == "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs="
    # The contract's cross-check (key "secret", empty body), not to be confused with it.
    assert sign(b"", "secret") == "+eZuF5tnR65UEI+C+K3os8Jddv0wr95sOVgixTAZYWk="


def test_verify_accepts_the_signature_of_the_raw_body_only() -> None:
    raw = (FIXTURES / "order_tax_exclusive_coupon.json").read_bytes()
    header = sign(raw, SECRET)
    assert verify(raw, header, [SECRET])
    assert verify(raw, f" {header}\r\n", [SECRET])
    reserialised = json.dumps(json.loads(raw)).encode()
    assert reserialised != raw and not verify(reserialised, header, [SECRET])


def test_verify_refuses_a_wrong_secret_a_tampered_signature_or_a_missing_header() -> None:
    body = b'{"id": 727}'
    header = sign(body, SECRET)
    assert not verify(body, header, ["another secret"])
    assert not verify(body, ("A" if header[0] != "A" else "B") + header[1:], [SECRET])
    assert not verify(body, None, [SECRET]) and not verify(body, "", [SECRET])
    assert not verify(body, "not base64 \u00e9", [SECRET])


def test_the_default_empty_secret_is_never_accepted() -> None:
    # The vector is signed with "" (WooCommerce's default): signing reproduces it, but a blank
    # key is a misconfiguration and verification refuses it.
    assert not verify(b"secret", "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs=", [""])
    assert not verify(b"secret", "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs=", [])


def test_verify_accepts_old_and_new_secrets_during_rotation() -> None:
    body = b'{"id": 727}'
    old, new = SECRET, "rotated-secret"
    assert verify(body, sign(body, old), [new, old])
    assert verify(body, sign(body, new), [new, old])
    assert not verify(body, sign(body, old), [new])
    assert verify(body, sign(body, new), new)  # one string is one secret
    assert not verify(body, sign(body, "r"), new)


def test_the_key_is_the_secret_after_wp_specialchars_decode() -> None:
    body = b'{"id": 1}'
    expected = base64.b64encode(hmac.new(b"wc_webhook_s3cret&more", body, hashlib.sha256).digest()).decode()
    assert sign(body, SECRET) == expected
    assert verify(body, expected, ["wc_webhook_s3cret&more"])  # the secret as typed in the admin
    assert wp_specialchars_decode("&lt;a&gt; &quot;b&quot; &#039;c&#x27; &#38;&#X26;") == "<a> \"b\" 'c' &&"
    assert wp_specialchars_decode("&amp;lt;") == "&lt;"  # one pass, like strtr
    assert wp_specialchars_decode("&nbsp;&eacute;") == "&nbsp;&eacute;"  # only & < > " ' are decoded


# -- deliveries and the ping ------------------------------------------------------------------


def test_the_activation_ping_is_recognised_without_signature_headers() -> None:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "WooCommerce/9.4.2 Hookshot",
    }
    assert is_ping(headers, b"webhook_id=17")
    event = parse_webhook(headers, b"webhook_id=17")
    assert event.is_ping and event.webhook_id == "17"
    assert event.topic is None and event.payload is None and event.dedupe_key is None


@pytest.mark.parametrize(
    ("headers", "raw"),
    [
        ({"X-WC-Webhook-Topic": "order.created"}, b"webhook_id=17"),  # a topic: a delivery, not a ping
        ({}, b"webhook_id=abc"),
        ({}, b"webhook_id=17&x=1"),
        ({}, b'{"id": 727}'),
    ],
)
def test_anything_else_is_not_a_ping(headers: dict[str, str], raw: bytes) -> None:
    assert not is_ping(headers, raw)


def test_an_order_created_delivery() -> None:
    raw = (FIXTURES / "order_tax_exclusive_coupon.json").read_bytes()
    headers = delivery_headers(raw, "order.created")
    assert not is_ping(headers, raw) and verify(raw, headers["X-WC-Webhook-Signature"], [SECRET])
    event = parse_webhook(headers, raw)
    assert (event.kind, event.topic, event.resource, event.event) == (
        "delivery",
        "order.created",
        "order",
        "created",
    )
    assert event.is_order and not event.is_ping
    assert (event.resource_id, event.webhook_id, event.source) == ("727", "17", "https://shop.example.com/")
    assert event.delivery_id == "a3f1c0d2e4b5968778695a4b3c2d1e0f"
    assert event.dedupe_key == "woocommerce:https://shop.example.com/:a3f1c0d2e4b5968778695a4b3c2d1e0f"
    assert event.payload is not None and order_from_woocommerce(event.payload).external_id == "727"


def test_headers_are_read_case_insensitively() -> None:
    raw = b'{"id": 727, "status": "processing"}'
    headers = {k.lower(): v for k, v in delivery_headers(raw, "order.updated").items()}
    event = parse_webhook(headers, raw)
    assert (event.topic, event.resource_id, event.delivery_id) == (
        "order.updated",
        "727",
        "a3f1c0d2e4b5968778695a4b3c2d1e0f",
    )


def test_an_order_deleted_delivery_carries_only_the_id() -> None:
    raw = b'{"id":727}'
    event = parse_webhook(delivery_headers(raw, "order.deleted"), raw)
    assert (event.topic, event.event, event.resource_id, event.payload) == (
        "order.deleted",
        "deleted",
        "727",
        {"id": 727},
    )


def test_an_action_topic_has_no_resource_id() -> None:
    raw = b'{"action":"woocommerce_order_status_completed","arg":727}'
    event = parse_webhook(delivery_headers(raw, "action.woocommerce_order_status_completed"), raw)
    assert event.resource == "action" and event.resource_id is None and not event.is_order


@pytest.mark.parametrize(
    ("topic", "raw", "reason"),
    [
        (None, b'{"id": 727}', "missing_topic"),
        ("order created", b'{"id": 727}', "unsupported_topic"),
        ("order.created", b'{"id": 727', "malformed_json"),
        ("order.created", b"[727]", "malformed_json"),
        ("order.created", b'{"status": "processing"}', "missing_id"),
        ("order.deleted", b'{"id": true}', "missing_id"),
    ],
)
def test_malformed_deliveries_are_refused_with_a_reason(topic: str | None, raw: bytes, reason: str) -> None:
    headers = delivery_headers(raw, topic or "order.created")
    if topic is None:
        del headers["X-WC-Webhook-Topic"]
    else:
        headers["X-WC-Webhook-Topic"] = topic
    with pytest.raises(WebhookError) as err:
        parse_webhook(headers, raw)
    assert err.value.reason == reason


# -- the mapper -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixtures_have_the_documented_shape_and_map(name: str) -> None:
    payload = load(name)
    assert payload.keys() >= ORDER_KEYS
    assert all(isinstance(payload[k], str) for k in MONEY_KEYS)
    for line in payload["line_items"]:
        assert line.keys() >= LINE_KEYS
        assert isinstance(line["subtotal"], str) and isinstance(line["price"], float)
    order = order_from_woocommerce(payload)
    assert order.key == f"woocommerce-{payload['id']}"
    assert order.totals.total == Money.of(payload["total"], payload["currency"])


def test_tax_exclusive_order_with_a_percent_coupon_two_tax_rates_and_taxed_shipping() -> None:
    order = order_from_woocommerce(load("order_tax_exclusive_coupon"))

    assert (order.channel, order.external_id, order.name) == ("woocommerce", "727", "#727")
    assert order.placed_at == datetime(2026, 11, 20, 17, 14, 2, tzinfo=UTC)  # date_created_gmt
    assert order.currency == "USD" and not order.taxes_included
    assert order.note == "Please gift wrap the mug"

    (coupon,) = order.discounts
    assert (coupon.kind, coupon.code, coupon.value_type, coupon.value, coupon.target) == (
        "code", "welcome10", "percentage", Decimal(10), "line_item",
    )  # fmt: skip

    hoodie, mug = order.lines
    assert (hoodie.line_id, hoodie.sku, hoodie.title, hoodie.quantity) == (
        "315", "HOOD-BLU-L", "Classic Hoodie - Blue, L", 2,
    )  # fmt: skip
    assert hoodie.unit_price == usd("45.00") and hoodie.subtotal == usd("90.00")
    assert [(a.amount, a.discount_index) for a in hoodie.discount_allocations] == [(usd("9.00"), 0)]
    assert mug.discount == usd("1.80") and mug.net == usd("16.20")
    # Unrounded per-rate taxes (4.86 + 1.0125) are split to add up to the line's 5.87 exactly.
    assert [(t.title, t.rate, t.amount, t.jurisdiction) for t in hoodie.tax_lines] == [
        ("CA State Tax", Decimal("0.06"), usd("4.86"), "US-CA-STATE TAX-1"),
        ("Los Angeles County Tax", Decimal("0.0125"), usd("1.01"), "US-CA-COUNTY TAX-2"),
    ]
    assert [t.amount for t in mug.tax_lines] == [usd("0.97"), usd("0.20")]

    (ship,) = order.shipping_lines
    assert (ship.code, ship.title, ship.price, ship.tax) == (
        "flat_rate",
        "Flat rate",
        usd("8.00"),
        usd("0.58"),
    )

    t = order.totals
    assert (t.subtotal, t.discount_total, t.shipping_total, t.tax_total, t.total) == (
        usd("108.00"), usd("10.80"), usd("8.00"), usd("7.62"), usd("112.82"),
    )  # fmt: skip

    (payment,) = order.payments
    assert (payment.managed_by, payment.method, payment.gateway, payment.amount, payment.reference) == (
        "channel", "card", "stripe", usd("112.82"), "ch_3QaB1c2D3e4F5g6H",
    )  # fmt: skip

    c = order.customer
    assert (c.external_id, c.guest, c.first_name, c.last_name) == ("42", False, "Ada", "Lovelace")
    assert (c.email, c.phone) == ("ada.lovelace@example.com", "+12135550147")
    a = order.shipping_address
    assert a is not None
    assert (a.name, a.company, a.line1, a.line2, a.city, a.region, a.postal_code, a.country) == (
        "Ada Lovelace", "Analytical Engines Inc.", "1200 Wilshire Blvd", "Apt 5", "Los Angeles", "CA",
        "90017", "US",
    )  # fmt: skip
    assert a.phone is None  # shipping.phone is blank
    assert order.billing_address is not None and order.billing_address.phone == "+1 (213) 555-0147"


def test_tax_inclusive_gb_order_keeps_vat_inside_the_prices() -> None:
    order = order_from_woocommerce(load("order_tax_inclusive_gb"))
    assert order.currency == "GBP" and order.taxes_included
    (scarf,) = order.lines
    # WooCommerce's line subtotal is ex-tax (62.50 + 12.50 VAT): the canonical price is what was paid.
    assert scarf.unit_price == gbp("25.00") and scarf.subtotal == gbp("75.00")
    assert scarf.discount == gbp("5.00")  # 4.17 + 0.83 VAT taken off
    assert [(t.title, t.rate, t.amount) for t in scarf.tax_lines] == [("VAT", Decimal("0.2"), gbp("11.67"))]
    (ship,) = order.shipping_lines
    assert (ship.title, ship.price, ship.tax) == ("Royal Mail 1st Class", gbp("4.99"), gbp("0.83"))
    t = order.totals
    assert (t.subtotal, t.discount_total, t.shipping_total, t.tax_total, t.total) == (
        gbp("75.00"), gbp("5.00"), gbp("4.99"), gbp("12.50"), gbp("74.99"),
    )  # fmt: skip
    assert t.total == t.subtotal - t.discount_total + t.shipping_total
    (coupon,) = order.discounts  # no coupon_info meta: the amount it took off, VAT included
    assert (coupon.code, coupon.value_type, coupon.value) == ("scarf5", "fixed_amount", Decimal("5.00"))
    (payment,) = order.payments  # BACS, on-hold: nothing received yet
    assert (payment.managed_by, payment.method, payment.gateway, payment.reference) == (
        "platform", "bank_transfer", "bacs", None,
    )  # fmt: skip
    assert order.shipping_address is not None
    assert (order.shipping_address.region, order.shipping_address.postal_code) == (None, "SW1A 2AA")


def test_guest_order_with_a_line_without_sku() -> None:
    order = order_from_woocommerce(load("order_guest_no_sku"))
    c = order.customer
    assert c.guest and c.external_id is None  # customer_id 0
    assert (c.email, c.first_name, c.last_name, c.phone) == (
        "k.johnson@example.org",
        "Katherine",
        "Johnson",
        None,
    )
    notebook, engraving = order.lines
    assert notebook.sku == "NB-LTH" and notebook.fulfillable
    assert engraving.sku is None and engraving.title == "Engraving" and not engraving.fulfillable
    assert order.totals.tax_total.is_zero and order.lines[0].tax_lines == []
    assert order.shipping_lines[0].code == "free_shipping" and order.totals.shipping_total.is_zero
    assert order.placed_at == datetime(2026, 11, 23, 3, 45, 10, tzinfo=UTC)  # the day after, local time
    (payment,) = order.payments
    assert (payment.managed_by, payment.method, payment.amount) == ("channel", "wallet", usd("29.00"))


def test_a_blank_shipping_address_is_no_address() -> None:
    payload = load("order_guest_no_sku")
    payload["shipping"] = {k: "" for k in payload["shipping"]}
    order = order_from_woocommerce(payload)
    assert order.shipping_address is None and order.billing_address is not None


Mutation = Callable[[dict[str, Any]], Any]


@pytest.mark.parametrize(
    ("mutate", "manager", "method"),
    [
        (lambda p: None, "channel", "card"),  # processing, date_paid_gmt set
        (lambda p: p.update(status="pending", date_paid=None, date_paid_gmt=None), "platform", "card"),
        (lambda p: p.update(status="on-hold", date_paid=None, date_paid_gmt=None), "platform", "card"),
        (lambda p: p.update(status="pending", date_paid_gmt=None, set_paid=True), "channel", "card"),
        (lambda p: p.update(status="completed", date_paid_gmt=None), "channel", "card"),
        (lambda p: p.update(payment_method="cod", transaction_id=""), "platform", "cash_on_delivery"),
        (
            lambda p: p.update(payment_method="cheque", status="on-hold", date_paid_gmt=None),
            "platform",
            "other",
        ),
        (lambda p: p.update(payment_method="", status="processing"), "channel", "other"),
    ],
)
def test_who_manages_the_payment(mutate: Mutation, manager: str, method: str) -> None:
    payload = load("order_tax_exclusive_coupon")
    mutate(payload)
    (payment,) = order_from_woocommerce(payload).payments
    assert (payment.managed_by, payment.method, payment.amount) == (manager, method, usd("112.82"))


def test_an_unpaid_pending_order_is_captured_by_the_platform_with_its_transaction() -> None:
    payload = load("order_tax_exclusive_coupon")
    payload.update(status="pending", date_paid=None, date_paid_gmt=None, transaction_id="pi_3QaB1auth")
    (payment,) = order_from_woocommerce(payload).payments
    assert (payment.managed_by, payment.gateway, payment.reference) == ("platform", "stripe", "pi_3QaB1auth")


@pytest.mark.parametrize("status", ["failed", "cancelled", "checkout-draft", "trash"])
def test_an_order_with_nothing_paid_or_to_capture_is_refused(status: str) -> None:
    payload = load("order_tax_exclusive_coupon")
    payload.update(status=status, date_paid=None, date_paid_gmt=None)
    with pytest.raises(MappingError, match="nothing paid and nothing to capture") as err:
        order_from_woocommerce(payload)
    assert err.value.path == "status"


def test_a_zero_total_order_has_no_payment() -> None:
    payload = load("order_guest_no_sku")
    for line in payload["line_items"]:
        line.update(subtotal="0.00", total="0.00")
    payload.update(total="0.00", status="pending", date_paid_gmt=None)
    order = order_from_woocommerce(payload)
    assert order.payments == [] and order.totals.total.is_zero


def test_several_coupons_cannot_be_attributed_per_line() -> None:
    payload = load("order_tax_exclusive_coupon")
    payload["coupon_lines"] = [
        {"id": 318, "code": "welcome10", "discount": "9.00", "discount_tax": "0.67", "meta_data": []},
        {"id": 319, "code": "mug20", "discount": "1.80", "discount_tax": "0.13", "meta_data": []},
    ]
    order = order_from_woocommerce(payload)
    assert [(d.code, d.value) for d in order.discounts] == [
        ("welcome10", Decimal("9.00")),
        ("mug20", Decimal("1.80")),
    ]
    assert all(a.discount_index is None for ln in order.lines for a in ln.discount_allocations)
    assert order.totals.discount_total == usd("10.80")


def test_coupon_lines_that_disagree_with_the_line_discounts_are_refused() -> None:
    payload = load("order_tax_exclusive_coupon")
    payload["coupon_lines"][0]["discount"] = "11.80"
    with pytest.raises(MappingError) as err:
        order_from_woocommerce(payload)
    assert err.value.path == "coupon_lines"
    assert "add up to 11.80 USD but the line items were discounted by 10.80 USD" in str(err.value)


def test_a_fee_is_refused_because_the_canonical_order_has_no_place_for_it() -> None:
    payload = load("order_tax_exclusive_coupon")
    payload["fee_lines"] = [
        {"id": 330, "name": "Gift wrap", "tax_class": "", "tax_status": "none", "total": "2.50",
         "total_tax": "0.00", "taxes": [], "meta_data": []},
    ]  # fmt: skip
    payload["total"] = "115.32"
    with pytest.raises(MappingError) as err:
        order_from_woocommerce(payload)
    assert err.value.path == "fee_lines[0].total"
    assert (
        str(err.value)
        == "fee_lines[0].total: 'Gift wrap' of 2.50 USD: fees are not supported by the canonical order"
    )


def test_a_zero_fee_line_is_ignored() -> None:
    payload = load("order_tax_exclusive_coupon")
    payload["fee_lines"] = [{"id": 330, "name": "Nothing", "total": "0.00", "total_tax": "0.00", "taxes": []}]
    assert order_from_woocommerce(payload).totals.total == usd("112.82")


def test_totals_that_do_not_add_up_are_refused_with_the_figures() -> None:
    payload = load("order_tax_exclusive_coupon")
    payload["total"] = "113.00"
    with pytest.raises(MappingError) as err:
        order_from_woocommerce(payload)
    assert err.value.path == "total"
    assert str(err.value) == (
        "total: is 113.00 USD but subtotal 108.00 USD - discounts 10.80 USD + shipping 8.00 USD"
        " + tax 7.62 USD add up to 112.82 USD"
    )


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        (
            lambda p: p.update(cart_tax="7.10"),
            "cart_tax",
            "is 7.10 USD but line_items taxes add up to 7.04 USD",
        ),
        (
            lambda p: p.update(total_tax="7.00"),
            "total_tax",
            "is 7.00 USD but line and shipping taxes add up to 7.62",
        ),
        (
            lambda p: p.update(shipping_total="9.00"),
            "shipping_total",
            "is 9.00 USD but shipping_lines add up",
        ),
        (
            lambda p: p.update(shipping_tax="0.60"),
            "shipping_tax",
            "is 0.60 USD but shipping_lines taxes add up",
        ),
        (
            lambda p: p.update(discount_total="10.00"),
            "discount_total",
            "but line_items (subtotal - total) add up",
        ),
        (
            lambda p: p["line_items"][0].update(total_tax="5.97"),
            "line_items[0].total_tax",
            "is 5.97 USD but taxes[] add up to 5.8725 USD",
        ),
        (
            lambda p: p["line_items"][0].update(total="91.00"),
            "line_items[0].total",
            "is 91.00 USD, more than the line subtotal 90.00 USD",
        ),
    ],
)
def test_figures_that_disagree_are_refused_naming_the_field(
    mutate: Mutation, path: str, message: str
) -> None:
    payload = load("order_tax_exclusive_coupon")
    mutate(payload)
    with pytest.raises(MappingError) as err:
        order_from_woocommerce(payload)
    assert err.value.path == path
    assert message in err.value.message


def test_a_line_total_that_is_not_a_whole_unit_price_is_refused() -> None:
    payload = load("order_guest_no_sku")
    payload["line_items"][0].update(quantity=3, subtotal="10.00", total="10.00")
    payload["total"] = "15.00"
    with pytest.raises(
        MappingError, match="not a whole number of minor units per unit for quantity 3"
    ) as err:
        order_from_woocommerce(payload)
    assert err.value.path == "line_items[0].subtotal"


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda p: p.pop("id"), "id"),
        (lambda p: p.pop("currency"), "currency"),
        (lambda p: p.pop("prices_include_tax"), "prices_include_tax"),
        (lambda p: p.pop("date_created_gmt"), "date_created_gmt"),
        (lambda p: p.pop("total"), "total"),
        (lambda p: p.pop("customer_id"), "customer_id"),
        (lambda p: p["line_items"][0].pop("subtotal"), "line_items[0].subtotal"),
        (lambda p: p["line_items"][1].pop("quantity"), "line_items[1].quantity"),
        (lambda p: p["line_items"][1].pop("name"), "line_items[1].name"),
        (lambda p: p["line_items"][0]["taxes"][1].pop("total"), "line_items[0].taxes[1].total"),
        (lambda p: p["tax_lines"][1].pop("rate_percent"), "tax_lines[1].rate_percent"),
        (lambda p: p["shipping_lines"][0].pop("total"), "shipping_lines[0].total"),
        (lambda p: p["shipping"].pop("country"), "shipping.country"),
        (lambda p: p["coupon_lines"][0].pop("code"), "coupon_lines[0].code"),
    ],
)
def test_a_missing_field_is_reported_with_its_path(mutate: Mutation, path: str) -> None:
    payload = load("order_tax_exclusive_coupon")
    mutate(payload)
    with pytest.raises(MappingError) as err:
        order_from_woocommerce(payload)
    assert err.value.path == path
    assert str(err.value) == f"{path}: missing"


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        (lambda p: p["line_items"][0].update(subtotal=90.0), "line_items[0].subtotal", "JSON number"),
        (
            lambda p: p["line_items"][0]["taxes"][0].update(id=9),
            "line_items[0].taxes[0].id",
            "no entry in tax_lines",
        ),
        (lambda p: p.update(currency="XYZ"), "currency", "unsupported currency"),
        (lambda p: p["line_items"][1].update(quantity=0), "line_items[1].quantity", "positive integer"),
        (lambda p: p.update(date_created_gmt="20/11/2026"), "date_created_gmt", "not an ISO-8601 timestamp"),
        (lambda p: p["billing"].update(email="not-an-email"), "billing.email", "not an email address"),
        (lambda p: p["shipping"].update(country="USA"), "shipping", "ISO 3166-1 alpha-2"),
        (lambda p: p.update(line_items=[]), "line_items", "at least one line item"),
        (lambda p: p["line_items"][0].update(subtotal="-90.00"), "line_items[0].subtotal", "negative amount"),
        (
            lambda p: p["line_items"][0].update(total="81.001"),
            "line_items[0].total",
            "more decimals than USD",
        ),
    ],
)
def test_a_malformed_field_is_reported_with_its_path(mutate: Mutation, path: str, message: str) -> None:
    payload = load("order_tax_exclusive_coupon")
    mutate(payload)
    with pytest.raises(MappingError, match=message) as err:
        order_from_woocommerce(payload)
    assert err.value.path == path


def test_mapping_does_not_modify_the_payload() -> None:
    payload = load("order_tax_exclusive_coupon")
    before = copy.deepcopy(payload)
    order_from_woocommerce(payload, channel="woo-eu")
    assert payload == before
    assert order_from_woocommerce(payload, channel="woo-eu").key == "woo-eu-727"


def test_an_amount_beyond_exact_arithmetic_is_a_mapping_error() -> None:
    payload = load("order_tax_exclusive_coupon")
    payload["line_items"][0].update(quantity=10**30, subtotal="9" * 40, total="9" * 40)
    with pytest.raises(MappingError, match="is out of range") as err:
        order_from_woocommerce(payload)
    assert err.value.path == "line_items[0].subtotal"
