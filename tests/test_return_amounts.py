"""What a return credits and how the refund is split: exact, per line, and adding up over returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.channels.errors import MappingError
from adapters.channels.shopify.refunds import return_from_shopify_refund
from canonical import Money, invoice_for_shipment
from canonical.returns import (
    CaptureBalance,
    ReturnContext,
    ReturnLine,
    ReturnRequest,
    check_return,
    credit_for_return,
    lines_by_sku,
    plan_refunds,
)
from tests.factories import make_order

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_three_single_unit_returns_credit_exactly_what_the_line_billed() -> None:
    # 3 x 9.99 at 7.25%: the line's tax 2.17 does not split evenly in thirds.
    order = make_order(lines=[("TEE", 3, "9.99")])
    line = order.lines[0]
    credits = [credit_for_return(order, {"L1": before}, {"L1": 1}, "never") for before in range(3)]
    assert sum((c.lines[0].tax.amount for c in credits), start=Money.zero("USD").amount) == line.tax.amount
    assert Money.sum((c.total for c in credits), "USD") == line.net + line.tax
    # And it is what the invoices billed: a return gives back what a shipment took.
    billed = invoice_for_shipment(order, {}, {"L1": 3}, first=False)
    assert Money.sum((c.total for c in credits), "USD") == billed.total


def test_shipping_is_refunded_once_by_policy() -> None:
    order = make_order(lines=[("TEE", 2, "10.00")], shipping="5.00")
    first = credit_for_return(order, {}, {"L1": 1}, "when_fully_returned")
    last = credit_for_return(order, {"L1": 1}, {"L1": 1}, "when_fully_returned")
    assert first.shipping.is_zero and last.shipping == Money.of("5.00", "USD")
    always = credit_for_return(order, {}, {"L1": 1}, "always")
    again = credit_for_return(order, {"L1": 1}, {"L1": 1}, "always")
    assert always.shipping == Money.of("5.00", "USD") and again.shipping.is_zero
    assert credit_for_return(order, {}, {"L1": 2}, "never").shipping.is_zero


def test_returning_more_than_the_line_or_a_foreign_line_is_refused() -> None:
    order = make_order(lines=[("TEE", 2, "10.00")])
    with pytest.raises(ValueError, match="returning 3 of 2"):
        credit_for_return(order, {"L1": 1}, {"L1": 2}, "never")
    with pytest.raises(ValueError, match="not lines of order"):
        credit_for_return(order, {}, {"L9": 1}, "never")


def test_refund_goes_to_the_latest_captures_first_and_the_rest_to_the_channel() -> None:
    usd = "USD"
    balances = [
        CaptureBalance(capture_id="c1", amount=Money.of("30.00", usd), refunded=Money.zero(usd)),
        CaptureBalance(capture_id="c2", amount=Money.of("20.00", usd), refunded=Money.of("15.00", usd)),
    ]
    plan, rest = plan_refunds(Money.of("40.00", usd), balances)
    assert plan == [("c2", Money.of("5.00", usd)), ("c1", Money.of("30.00", usd))]
    assert rest == Money.of("5.00", usd)
    plan, rest = plan_refunds(Money.of("3.00", usd), balances)
    assert plan == [("c2", Money.of("3.00", usd))] and rest.is_zero


def _ctx(delivered: datetime | None, shipped: int = 2) -> ReturnContext:
    order = make_order(lines=[("TEE", 2, "10.00")])
    return ReturnContext(
        order=order,
        status="Completed",
        erp_order_id="SO-1",
        tax_document="doc",
        shipped={"L1": shipped},
        delivered_at=delivered,
    )


def _req(qty: int, at: datetime = NOW, **kw: object) -> ReturnRequest:
    return ReturnRequest(
        channel="shopify",
        order_external_id="1001",
        return_id="rma-1",
        source="api",
        lines=[ReturnLine(line_id="L1", sku="TEE", quantity=qty)],
        reason="too small",
        requested_at=at,
        **kw,  # type: ignore[arg-type]
    )


def test_check_return_says_why() -> None:
    ctx = _ctx(NOW - timedelta(days=3))
    assert check_return(_req(2), ctx, 30) is None
    assert "3 to return, 2 shipped" in (check_return(_req(3), ctx, 30) or "")
    late = check_return(_req(1, NOW + timedelta(days=40)), ctx, 30)
    assert late is not None and "30-day return window" in late
    assert "nothing of the order has shipped" in (
        check_return(_req(1), _ctx(None, 0).model_copy(update={"shipped": {"L1": 1}}), 30) or ""
    )
    assert lines_by_sku(ctx.order, {"TEE": 1})[0].line_id == "L1"
    with pytest.raises(ValueError, match="neither a SKU nor a line id"):
        lines_by_sku(ctx.order, {"NOPE": 1})


def _refund_payload(**over: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "id": 555,
        "order_id": 1001,
        "created_at": "2026-11-20T10:00:00-05:00",
        "processed_at": "2026-11-20T10:00:00-05:00",
        "note": "wrong size",
        "refund_line_items": [
            {
                "id": 1,
                "line_item_id": 10010,
                "quantity": 1,
                "restock_type": "return",
                "location_id": 7,
                "line_item": {"sku": "TEE-BLK-M"},
            },
            {"id": 2, "line_item_id": 10011, "quantity": 1, "restock_type": "no_restock", "location_id": 7},
            {"id": 3, "line_item_id": 10012, "quantity": 1, "restock_type": "cancel"},
        ],
        "transactions": [
            {
                "id": 91,
                "kind": "refund",
                "status": "success",
                "amount": "27.50",
                "currency": "USD",
                "gateway": "shopify_payments",
                "processed_at": "2026-11-20T10:00:01-05:00",
            },
            {"id": 92, "kind": "refund", "status": "failure", "amount": "27.50", "currency": "USD"},
        ],
    }
    payload.update(over)
    return payload


def test_shopify_refund_maps_to_a_return_with_the_money_already_refunded() -> None:
    req = return_from_shopify_refund(_refund_payload())
    assert req is not None
    assert req.workflow_id == "return-shopify-refund-555" and req.order_key == "shopify-1001"
    assert [(ln.line_id, ln.quantity, ln.restock) for ln in req.lines] == [
        ("10010", 1, True),
        ("10011", 1, False),
    ]
    assert req.receipt == "at_channel" and req.source == "channel"
    # Only the successful refund transaction is money the channel gave back.
    assert [(c.refund_id, c.amount) for c in req.channel_refunds] == [("91", Money.of("27.50", "USD"))]
    # Shipping goes back only when the merchant refunded it in Shopify.
    assert req.refund_shipping is False
    with_shipping = return_from_shopify_refund(
        _refund_payload(refund_shipping_lines=[{"id": 1, "shipping_line_id": 4}])
    )
    assert with_shipping is not None and with_shipping.refund_shipping is True


def test_shopify_refund_of_unfulfilled_items_only_is_no_return_and_bad_fields_name_their_path() -> None:
    only_cancel = _refund_payload(
        refund_line_items=[{"id": 3, "line_item_id": 10012, "quantity": 1, "restock_type": "cancel"}]
    )
    assert return_from_shopify_refund(only_cancel) is None
    # The refund the platform recorded at Shopify (notify_return) comes back as a webhook: not a new return.
    echo = _refund_payload(
        note="Retail Connect return shopify-rma-7 [return-shopify-rma-7:notify_channel]", transactions=[]
    )
    assert return_from_shopify_refund(echo) is None
    with pytest.raises(MappingError) as err:
        return_from_shopify_refund(
            _refund_payload(refund_line_items=[{"id": 1, "line_item_id": 1, "quantity": 0}])
        )
    assert err.value.path == "refund_line_items[0].quantity"
    with pytest.raises(MappingError) as err:
        return_from_shopify_refund(
            _refund_payload(
                transactions=[
                    {"id": 9, "kind": "refund", "status": "success", "amount": 1.5, "currency": "USD"}
                ]
            )
        )
    assert err.value.path == "transactions[0].amount"


def test_units_restocked_at_a_store_move_nothing_its_count_carries_them() -> None:
    # location_id 7 is a store whose on hand Shopify POS keeps (RETAIL_SHOPIFY_STORE_LOCATIONS):
    # its inventory_levels/update already counts the unit, so the return must not add it again.
    at_store = return_from_shopify_refund(_refund_payload(), store_locations={"7": "STORE-1"})
    assert at_store is not None
    assert [(ln.line_id, ln.restock) for ln in at_store.lines] == [("10010", False), ("10011", False)]
    assert at_store.location is None
    # Not a store: restocked where the line shipped from (the workflow's default).
    elsewhere = return_from_shopify_refund(_refund_payload(), store_locations={"8": "STORE-2"})
    assert elsewhere is not None and [ln.restock for ln in elsewhere.lines] == [True, False]
    assert elsewhere.receipt == "at_channel"
