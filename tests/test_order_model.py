import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from canonical import Money, Order, OrderTotals, invoice_for_digital, invoice_for_shipment
from tests.factories import make_order


def test_totals_add_up_for_usd_jpy_and_kwd() -> None:
    usd = make_order(lines=[("A", 2, "10.00"), ("B", 1, "5.55")], discount="1.00")
    assert (
        usd.totals.total
        == usd.totals.subtotal - usd.totals.discount_total + Money.of("5.00", "USD") + usd.totals.tax_total
    )
    jpy = make_order(currency="JPY", lines=[("A", 3, "1980")], shipping="500", tax_rate="0.10")
    assert jpy.totals.total == Money.of("7034", "JPY")
    kwd = make_order(currency="KWD", lines=[("A", 1, "12.345")], shipping="1.500", tax_rate="0")
    assert kwd.totals.total == Money.of("13.845", "KWD")


def test_totals_that_do_not_add_up_are_rejected_with_the_figures() -> None:
    good = make_order()
    data = good.model_dump(mode="json")
    data["totals"]["total"]["amount"] = "999.00"
    with pytest.raises(ValidationError) as err:
        Order.model_validate_json(json.dumps(data))
    msg = str(err.value)
    assert "totals.total is 999.00 USD but the lines add up to" in msg


def test_mixed_currency_order_is_rejected() -> None:
    good = make_order()
    data = good.model_dump(mode="json")
    data["lines"][0]["unit_price"]["currency"] = "EUR"
    with pytest.raises(ValidationError, match=r"lines\[0\].unit_price: EUR but the order is in USD"):
        Order.model_validate(data, strict=False)


def test_unknown_fields_are_rejected() -> None:
    data = make_order().model_dump(mode="json")
    data["surprise"] = 1
    with pytest.raises(ValidationError, match="surprise"):
        Order.model_validate(data, strict=False)


def test_payments_must_cover_the_total() -> None:
    data = make_order().model_dump(mode="json")
    data["payments"][0]["amount"]["amount"] = "1.00"
    with pytest.raises(ValidationError, match=r"payments add up to 1\.00 USD"):
        Order.model_validate(data, strict=False)


def test_split_shipments_bill_exactly_the_total() -> None:
    order = make_order(lines=[("A", 3, "9.99"), ("B", 1, "15.00")], discount="2.00", tax_rate="0.08875")
    first = invoice_for_shipment(order, {}, {"L1": 1, "L2": 1}, first=True)
    second = invoice_for_shipment(order, {"L1": 1, "L2": 1}, {"L1": 2}, first=False)
    assert first.total + second.total == order.totals.total
    assert first.tax + second.tax == order.totals.tax_total
    assert first.shipping == Money.of("5.00", "USD") and second.shipping.is_zero


def test_a_digital_line_bills_alone_and_shipping_waits_for_the_goods() -> None:
    order = make_order(lines=[("A", 2, "9.99"), ("GIFT", 1, "25.00")], tax_rate="0.08875")
    gift = order.lines[1].model_copy(update={"gift_card": True})
    order = order.model_copy(update={"lines": [order.lines[0], gift]})
    assert [ln.digital for ln in order.lines] == [False, True]

    delivered = invoice_for_digital(order, ["L2"])
    assert [ln.line_id for ln in delivered.lines] == ["L2"] and delivered.shipping.is_zero
    goods = invoice_for_shipment(order, {"L2": 1}, {"L1": 2}, first=True)
    assert [ln.line_id for ln in goods.lines] == ["L1"]  # the gift card is not billed twice
    assert goods.shipping == Money.of("5.00", "USD")
    assert delivered.total + goods.total == order.totals.total


def test_a_digital_only_order_bills_its_shipping_with_the_delivery() -> None:
    order = make_order(lines=[("EBOOK", 1, "9.00")])
    ebook = order.lines[0].model_copy(update={"requires_shipping": False})
    order = order.model_copy(update={"lines": [ebook]})
    delivered = invoice_for_digital(order, ["L1"])
    assert delivered.shipping == Money.of("5.00", "USD") and delivered.total == order.totals.total


def test_over_shipping_a_line_is_an_error() -> None:
    order = make_order(lines=[("A", 1, "9.99")])
    with pytest.raises(ValueError, match="shipping 2 of 1"):
        invoice_for_shipment(order, {"L1": 1}, {"L1": 1}, first=False)


def test_order_totals_model_is_strict_about_floats() -> None:
    with pytest.raises(ValidationError):
        OrderTotals(
            subtotal=Money.of("1", "USD"),
            discount_total=Money.of("0", "USD"),
            shipping_total=Money.of("0", "USD"),
            tax_total=Money.of("0", "USD"),
            total={"amount": 1.0, "currency": "USD"},  # type: ignore[arg-type]
        )
    assert Decimal("1") == Money.of("1", "USD").amount


def test_json_round_trip_through_strict_validation() -> None:
    order = make_order(lines=[("A", 2, "10.00")], discount="1.50")
    assert Order.model_validate_json(order.model_dump_json()) == order
