"""Digital goods (gift cards, e-goods, services) on a real Temporal server and the builtin back
office: billed at acceptance without a warehouse, their returns credited without a receipt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client

from adapters.erp.builtin import list_invoices
from adapters.payment.builtin import list_captures
from backoffice.channel import list_notifications
from backoffice.wms import list_fulfillment_orders
from canonical import Money
from orchestration.models import OperatorRequest
from tests.platform import platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from tests.test_returns import _books_agree, request_return, wait_status
from workflows.order_billing import DIGITAL_SHIPMENT
from workflows.order_to_cash import OrderToCash


def digital(payload: dict[str, Any], index: int, *, gift_card: bool = False) -> dict[str, Any]:
    """Mark line ``index`` of a Shopify payload as needing no shipping (and a gift card)."""
    line = payload["line_items"][index]
    line["requires_shipping"] = False
    line["gift_card"] = gift_card
    return payload


async def test_a_digital_only_order_is_billed_at_acceptance_and_completes_without_a_warehouse(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        payload = digital(shopify_order(4101, [("GIFT-50", 1, "50.00")], shipping="0.00"), 0, gift_card=True)
        r = await p.send_shopify(payload)
        assert r.status_code == 200, r.text
        st = await p.wait_status("shopify-4101", "Completed", "NeedsAttention")

        assert st.status == "Completed" and st.attention is None and not st.actions
        assert st.erp_order_id is not None and st.authorization_id is not None
        invoices = list_invoices(p.store, st.erp_order_id)
        assert [i.shipment_id for i in invoices] == [DIGITAL_SHIPMENT]
        assert invoices[0].total == st.total == st.invoiced == st.captured
        captures = list_captures(p.store, st.authorization_id)
        assert Money.sum((c.amount for c in captures), "USD") == st.total
        assert list_fulfillment_orders(p.store, "shopify-4101") == []  # no warehouse heard of it
        told = [n for n in list_notifications(p.store, "4101") if n.kind == "fulfillment"]
        assert len(told) == 1  # the channel hears the lines are fulfilled
        assert [s.digital for s in st.shipments] == [True] and not st.tracking


async def test_a_mixed_order_bills_its_digital_line_at_once_and_the_rest_with_its_shipment(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        payload = digital(shopify_order(4102, [("TEE-BLK-M", 1, "25.00"), ("EBOOK-7", 1, "9.00")]), 1)
        await p.send_shopify(payload)
        st = await p.wait_status("shopify-4102", "Completed", "NeedsAttention")

        assert st.status == "Completed" and st.attention is None
        assert st.erp_order_id is not None
        invoices = list_invoices(p.store, st.erp_order_id)
        assert len(invoices) == 2 and invoices[0].shipment_id == DIGITAL_SHIPMENT
        ebook, tee = invoices
        assert ebook.total == Money.of("9.65", "USD") and ebook.shipping.is_zero  # 9.00 + 0.65 tax
        assert tee.shipping == Money.of("5.00", "USD")  # shipping goes with the goods
        assert Money.sum((i.total for i in invoices), "USD") == st.total == st.captured
        released = list_fulfillment_orders(p.store, "shopify-4102")
        assert [[ln.sku for ln in f.lines] for f in released] == [["TEE-BLK-M"]]
        assert st.tracking and all(v == "delivered" for v in st.tracking.values())


async def test_cancelling_a_mixed_order_keeps_the_delivered_digital_line_billed(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog, wms_pick_delay_s=60.0) as p:
        lines = [("TEE-BLK-M", 1, "25.00"), ("GIFT-20", 1, "20.00")]
        payload = digital(shopify_order(4103, lines), 1, gift_card=True)
        await p.send_shopify(payload)
        st = await p.wait_for("shopify-4103", lambda s: not s.invoiced.is_zero)
        gift = Money.of("21.45", "USD")  # 20.00 + 1.45 tax
        assert st.invoiced == gift and st.captured == gift and st.status == "AwaitingShipment"

        await p.handle("shopify-4103").execute_update(
            OrderToCash.cancel, OperatorRequest(operator="ops", reason="shirt out of stock")
        )
        st = await p.wait_status("shopify-4103", "Cancelled")
        assert st.captured == gift and st.invoiced == gift  # the gift card was delivered: it stays paid
        assert st.voided == st.total - gift
        assert st.erp_order_id is not None
        assert [i.total for i in list_invoices(p.store, st.erp_order_id)] == [gift]


async def test_a_digital_line_is_returned_within_the_window_without_a_receipt(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        payload = digital(shopify_order(4104, [("EBOOK-9", 2, "9.00")], shipping="0.00"), 0)
        await p.send_shopify(payload)
        await p.wait_status("shopify-4104", "Completed")

        r = await request_return(p, 4104, {"EBOOK-9": 1}, "rma-4104")
        assert r.status_code in (200, 201, 202), r.text
        st = await wait_status(p, "shopify-rma-4104", "Refunded", "NeedsAttention")
        assert st.status == "Refunded" and st.attention is None
        steps = {s.step for s in st.steps}
        assert not steps & {"return_label", "expect_return"} and st.receipt_id is None
        assert [d.disposition for d in st.dispositions] == ["not_returned"]
        assert st.credited == Money.of("9.65", "USD")  # one of the two units, with its tax
        _books_agree(p, st)


async def test_a_mixed_return_waits_for_the_goods_and_credits_the_digital_line_with_them(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        payload = digital(shopify_order(4105, [("MUG-01", 1, "12.50"), ("EBOOK-3", 1, "9.00")]), 1)
        await p.send_shopify(payload)
        await p.wait_status("shopify-4105", "Completed")

        await request_return(p, 4105, {"MUG-01": 1, "EBOOK-3": 1}, "rma-4105")
        st = await wait_status(p, "shopify-rma-4105", "Refunded", "NeedsAttention")
        assert st.status == "Refunded" and st.receipt_id is not None
        kinds = {d.sku: d.disposition for d in st.dispositions}
        assert kinds == {"MUG-01": "restock", "EBOOK-3": "not_returned"}
        _books_agree(p, st)
