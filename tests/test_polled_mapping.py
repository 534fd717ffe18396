"""Mapping of the polled channels' payloads (shaped as the contracts document them) to the
canonical order: exact money, tax-inclusive and exclusive, discounts, shipping, guests, payments,
and every problem reported with the vendor's field path."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from adapters.channels.adobe_commerce import hold_reason as adobe_hold
from adapters.channels.adobe_commerce import order_from_adobe_commerce
from adapters.channels.amazon import hold_reason as amazon_hold
from adapters.channels.amazon import order_from_amazon
from adapters.channels.errors import MappingError
from canonical import Money
from sandboxes.adobe_commerce import adobe_order
from sandboxes.amazon import amazon_order

NOW = datetime(2026, 5, 1, 10, 15, tzinfo=UTC)
AMZ = "111-0000001-0000001"


def test_amazon_tax_exclusive_order_with_a_promotion_and_shipping() -> None:
    raw, items = amazon_order(
        AMZ, [("MUG-01", 2, "12.50"), ("TEE-BLK-M", 1, "25.00")], updated=NOW, promotion="5.00"
    )
    order = order_from_amazon(raw, items)
    assert (order.channel, order.external_id, order.name, order.taxes_included) == ("amazon", AMZ, AMZ, False)
    assert order.lines[0].unit_price == Money.of("12.50", "USD") and order.lines[0].quantity == 2
    assert order.lines[0].discount == Money.of("5.00", "USD")
    assert order.lines[0].tax_lines[0].amount == Money.of("1.45", "USD")  # 7.25% of 20.00
    assert order.lines[0].tax_lines[0].jurisdiction == "marketplace_facilitator"
    assert order.shipping_lines[0].price == Money.of("4.99", "USD")
    assert order.totals.total == Money.of(raw["OrderTotal"]["Amount"], "USD") == Money.of("53.61", "USD")
    [payment] = order.payments
    assert (payment.managed_by, payment.gateway, payment.amount) == ("channel", "amazon", order.totals.total)
    assert order.customer.guest and order.customer.email == "0000001@marketplace.amazon.com"
    assert order.shipping_address is not None and order.shipping_address.city == "SEATTLE"


def test_amazon_vat_inclusive_prices_are_read_from_the_order_total() -> None:
    raw, items = amazon_order(
        AMZ, [("MUG-01", 2, "12.50")], updated=NOW, tax_included=True, tax_rate="0.20", currency="GBP"
    )
    order = order_from_amazon(raw, items)
    assert order.taxes_included and order.currency == "GBP"
    assert order.totals.total == Money.of("29.99", "GBP")  # 25.00 + 4.99 shipping, VAT inside
    assert abs(order.lines[0].tax_lines[0].rate - Decimal("0.2")) < Decimal("0.001")  # derived from amounts


def test_amazon_problems_name_the_field() -> None:
    raw, items = amazon_order(AMZ, [("MUG-01", 3, "12.50")], updated=NOW)
    items[0]["ItemPrice"]["Amount"] = "37.51"
    raw["OrderTotal"]["Amount"] = str(Decimal(raw["OrderTotal"]["Amount"]) + Decimal("0.01"))
    with pytest.raises(MappingError) as err:
        order_from_amazon(raw, items)
    assert err.value.path == "OrderItems[0].ItemPrice"
    raw, items = amazon_order(AMZ, [("MUG-01", 1, "12.50")], updated=NOW)
    raw["OrderTotal"]["Amount"] = "99.00"
    with pytest.raises(MappingError, match=r"is 99\.00 USD but the items") as err:
        order_from_amazon(raw, items)
    assert err.value.path == "OrderTotal.Amount"
    items[0]["ItemTax"]["Amount"] = 1.0
    with pytest.raises(MappingError) as err:
        order_from_amazon(raw, items)
    assert err.value.path == "OrderItems[0].ItemTax.Amount"
    raw, items = amazon_order(AMZ, [("MUG-01", 1, "12.50")], updated=NOW)
    items[0]["CODFee"] = {"CurrencyCode": "USD", "Amount": "2.00"}
    with pytest.raises(MappingError, match="COD fees"):
        order_from_amazon(raw, items)
    del raw["OrderTotal"]
    with pytest.raises(MappingError, match="OrderTotal: missing"):
        order_from_amazon(raw, items)


def test_amazon_orders_not_ready_are_held() -> None:
    raw, _ = amazon_order(AMZ, [("MUG-01", 1, "12.50")], updated=NOW, status="Pending")
    assert "Pending" in (amazon_hold(raw) or "")
    raw, _ = amazon_order(AMZ, [("MUG-01", 1, "12.50")], updated=NOW, fulfillment="AFN")
    assert amazon_hold(raw) == "fulfilled by Amazon (AFN)"
    raw, _ = amazon_order(AMZ, [("MUG-01", 1, "12.50")], updated=NOW)
    assert amazon_hold(raw) is None


def test_adobe_commerce_tax_exclusive_order_paid_at_the_store() -> None:
    raw = adobe_order(7, [("MUG-01", 2, "12.50"), ("TEE-BLK-M", 1, "25.00")], updated=NOW, discount="5.00")
    order = order_from_adobe_commerce(raw)
    assert (order.external_id, order.name, order.taxes_included) == ("000000007", "#000000007", False)
    assert order.lines[0].discount == Money.of("5.00", "USD")
    assert order.shipping_lines[0].code == "flatrate_flatrate" and order.shipping_lines[0].tax == Money.of(
        "0.41", "USD"
    )
    assert order.totals.total == Money.of(str(raw["grand_total"]), "USD")
    assert [(p.managed_by, p.gateway) for p in order.payments] == [("channel", "braintree")]
    assert order.customer.external_id == "42" and not order.customer.guest
    assert order.shipping_address is not None and order.shipping_address.line2 == "Floor 2"


def test_adobe_commerce_tax_inclusive_guest_order_paid_on_shipment() -> None:
    raw = adobe_order(
        8,
        [("MUG-01", 2, "11.90")],
        updated=NOW,
        tax_included=True,
        tax_percent="19",
        currency="EUR",
        paid=False,
        guest=True,
        discount="2.00",
    )
    order = order_from_adobe_commerce(raw)
    assert order.taxes_included and order.customer.guest and order.customer.external_id is None
    assert order.lines[0].unit_price == Money.of("11.90", "EUR")
    assert order.totals.total == Money.of("26.80", "EUR")
    assert [(p.managed_by, p.method) for p in order.payments] == [("platform", "other")]


def test_adobe_commerce_configurable_child_lines_are_folded_into_their_parent() -> None:
    raw = adobe_order(9, [("TEE-BLK-M", 1, "25.00")], updated=NOW)
    child = dict(
        raw["items"][0],
        item_id=999,
        parent_item_id=raw["items"][0]["item_id"],
        price=0.0,
        row_total=0.0,
        tax_amount=0.0,
        price_incl_tax=0.0,
        row_total_incl_tax=0.0,
    )
    raw["items"][0]["product_type"] = "configurable"
    raw["items"].append(child)
    assert [ln.sku for ln in order_from_adobe_commerce(raw).lines] == ["TEE-BLK-M"]


def test_adobe_commerce_problems_name_the_field() -> None:
    raw = adobe_order(10, [("MUG-01", 1, "12.50")], updated=NOW)
    raw["items"][0]["row_total"] = 12.51
    raw["subtotal"] = 12.51
    raw["grand_total"] = round(raw["grand_total"] + 0.01, 2)
    with pytest.raises(MappingError) as err:
        order_from_adobe_commerce(raw)
    assert err.value.path == "items[0].row_total"
    raw = adobe_order(10, [("MUG-01", 1, "12.50")], updated=NOW)
    raw["grand_total"] = 1.0
    with pytest.raises(MappingError, match="grand_total"):
        order_from_adobe_commerce(raw)
    raw = adobe_order(10, [("MUG-01", 1, "12.50")], updated=NOW)
    raw["items"][0]["qty_ordered"] = 1.5
    with pytest.raises(MappingError) as err:
        order_from_adobe_commerce(raw)
    assert err.value.path == "items[0].qty_ordered"
    raw = adobe_order(10, [("MUG-01", 1, "12.50")], updated=NOW)
    raw["items"][0]["price"] = 12.505
    with pytest.raises(MappingError) as err:
        order_from_adobe_commerce(raw)
    assert err.value.path == "items[0].price"
    assert adobe_hold({"state": "pending_payment"}) and adobe_hold({"state": "processing"}) is None
