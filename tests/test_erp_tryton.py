"""The Tryton ERP adapter against a real trytond (started from the cached template per test):
customers, split allocation, partial shipments with posted invoices, cancel, the crash between
create and ack, Tryton's own errors, Tryton down, wrong credentials. Amounts and stock are read
back from Tryton itself, not from what the adapter answered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from adapters import registry
from adapters.erp.inventory import InventoryLedger
from adapters.erp.tryton.erp import TrytonErp, _amend
from adapters.erp.tryton.rpc import TrytonLoginError, TrytonRpc
from adapters.errors import PermanentError, TransientError
from backoffice.bootstrap import open_store
from backoffice.erp import ErpItem
from canonical import Order, Shipment, billing
from canonical.documents import InvoiceAck, RmaLine
from canonical.edits import reduce_order
from canonical.fulfillment import ShipmentLine
from canonical.returns import DispositionLine, credit_for_return
from services.tryton import TrytonServer
from store.db import Store
from tests.dbutil import postgres_url
from tests.factories import make_order
from tests.seed import seed_catalog
from tests.tryton_server import free_port, receive_in_tryton, running_tryton


@pytest.fixture
def tryton(tmp_path: Path) -> Any:
    with running_tryton(tmp_path) as server:
        yield server


@pytest.fixture
async def erp(tryton: TrytonServer, tmp_path: Path) -> AsyncIterator[TrytonErp]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    seed_catalog(store)
    adapter = TrytonErp(TrytonRpc(tryton.url, tryton.database, "admin", tryton.password), store)
    await adapter.start()
    await adapter.seed_stock()
    try:
        yield adapter
    finally:
        await adapter.rpc.aclose()
        store.dispose()


def _store(erp: TrytonErp) -> Store:
    return erp.store


async def _tryton_stock(erp: TrytonErp, sku: str, location: str) -> int:
    """On hand per Tryton itself: the product's quantity in the warehouse's storage."""
    refs = await erp.refs()
    (pid,) = await erp.rpc.model("product.product", "search", [("code", "=", sku)], 0, 1, None)
    (row,) = await erp.rpc.model(
        "product.product", "read", [pid], ["quantity"], ctx={"locations": [refs.warehouses[location].storage]}
    )
    return int(row["quantity"])


def _shipment(order: Order, sid: str, location: str, lines: dict[str, int]) -> Shipment:
    skus = {ln.line_id: ln.sku or "" for ln in order.lines}
    return Shipment(
        shipment_id=sid,
        order_key=order.key,
        location=location,
        lines=[ShipmentLine(line_id=k, sku=skus[k], quantity=q) for k, q in lines.items()],
        shipped_at=datetime.now(UTC),
    )


async def test_the_same_person_is_one_party(erp: TrytonErp) -> None:
    order = make_order("12001", email="Ada@Example.com")
    first = await erp.resolve_customer(order.customer, order.shipping_address)
    # Another channel, another customer id, the same email: matched, never a second party.
    again = order.customer.model_copy(update={"external_id": "amazon-77", "email": "ada@example.com"})
    second = await erp.resolve_customer(again, None)
    by_phone = await erp.resolve_customer(
        order.customer.model_copy(update={"email": None, "external_id": None, "phone": "+15550001"}), None
    )
    other = await erp.resolve_customer(
        order.customer.model_copy(update={"email": "grace@example.com", "external_id": "c2"}), None
    )
    assert (first.created, second.created, second.matched_on) == (True, False, "email")
    assert second.customer_id == first.customer_id
    assert by_phone.created is True  # a phone nobody has is a new person
    assert other.customer_id != first.customer_id
    mechanisms = await erp.rpc.search_read(
        "party.contact_mechanism", [("party", "=", int(first.customer_id))], ["type", "value"]
    )
    assert {(m["type"], m["value"]) for m in mechanisms} >= {
        ("email", "ada@example.com"),
        ("other", "channel-customer:amazon-77"),
    }
    parties = await erp.rpc.search_read(
        "party.contact_mechanism", [("value", "=", "ada@example.com")], ["party"]
    )
    assert len({p["party"] for p in parties}) == 1


async def test_split_allocation_partial_shipment_and_invoice_totals(erp: TrytonErp) -> None:
    # HAT-RED: 3 at WH-EAST, 3 at WH-WEST; 5 ordered -> 3 from one, 2 from the other.
    order = make_order("12002", lines=[("HAT-RED", 5, "18.00"), ("MUG-01", 2, "12.50")], discount="3.00")
    customer = await erp.resolve_customer(order.customer, order.shipping_address)
    ack = await erp.create_sales_order(order, customer.customer_id, "so-2002")
    placed = sorted((a.location, a.line_id, a.quantity) for a in ack.allocations)
    assert placed == [("WH-EAST", "L1", 3), ("WH-EAST", "L2", 2), ("WH-WEST", "L1", 2)]
    assert ack.backordered == [] and ack.created is True
    (sale,) = await erp.rpc.search_read(
        "sale.sale", [("reference", "=", order.key)], ["total_amount", "state"]
    )
    assert (sale["total_amount"], sale["state"]) == (order.totals.total.amount, "processing")
    ledger = InventoryLedger(_store(erp))
    assert {(p.sku, p.location): p.reserved for p in ledger.positions() if p.reserved} == {
        ("HAT-RED", "WH-EAST"): 3,
        ("HAT-RED", "WH-WEST"): 2,
        ("MUG-01", "WH-EAST"): 2,
    }

    # Two of the three hats and both mugs leave WH-EAST first.
    first = _shipment(order, "S1", "WH-EAST", {"L1": 2, "L2": 2})
    amounts = billing.invoice_for_shipment(order, {}, {"L1": 2, "L2": 2}, True)
    invoice = await erp.invoice_shipment(ack.erp_order_id, first, amounts, "inv-2002-1")
    replay = await erp.invoice_shipment(ack.erp_order_id, first, amounts, "inv-2002-1")
    assert replay == invoice
    rest = billing.invoice_for_shipment(order, {"L1": 2, "L2": 2}, {"L1": 3}, False)
    ship_east = _shipment(order, "S2", "WH-EAST", {"L1": 1})
    ship_west = _shipment(order, "S3", "WH-WEST", {"L1": 2})
    second_amounts = billing.invoice_for_shipment(order, {"L1": 2, "L2": 2}, {"L1": 1}, False)
    third_amounts = billing.invoice_for_shipment(order, {"L1": 3, "L2": 2}, {"L1": 2}, False)
    assert second_amounts.total + third_amounts.total == rest.total
    await erp.invoice_shipment(ack.erp_order_id, ship_east, second_amounts, "inv-2002-2")
    await erp.invoice_shipment(ack.erp_order_id, ship_west, third_amounts, "inv-2002-3")

    invoices = await erp.rpc.search_read(
        "account.invoice", [("reference", "like", "inv-2002-%")], ["state", "total_amount", "number"]
    )
    assert {i["state"] for i in invoices} == {"posted"}
    assert sum((i["total_amount"] for i in invoices), Decimal(0)) == order.totals.total.amount
    assert invoice.invoice_id in {i["number"] for i in invoices}
    # Tryton's stock and the ledger agree, and nothing stays reserved.
    for sku, location, left in (
        ("HAT-RED", "WH-EAST", 0),
        ("HAT-RED", "WH-WEST", 1),
        ("MUG-01", "WH-EAST", 98),
    ):
        assert await _tryton_stock(erp, sku, location) == left
        (pos,) = ledger.positions(sku=sku, location=location)
        assert (pos.on_hand, pos.reserved) == (left, 0)
    # No shipment exception: every unit of the sale shipped exactly once.
    moves = await erp.rpc.search_read(
        "stock.move", [("origin", "like", "sale.line,%")], ["quantity", "state"]
    )
    assert sum(m["quantity"] for m in moves if m["state"] == "done") == 7


async def test_backorder_then_allocation_and_cancel(erp: TrytonErp) -> None:
    order = make_order("12003", lines=[("TEE-BLK-M", 12, "25.00")])
    customer = await erp.resolve_customer(order.customer, order.shipping_address)
    ack = await erp.create_sales_order(order, customer.customer_id, "so-2003")
    assert sum(a.quantity for a in ack.allocations) == 10
    assert [(b.line_id, b.quantity) for b in ack.backordered] == [("L1", 2)]
    again = await erp.allocate_backorders(ack.erp_order_id)
    assert [(b.line_id, b.quantity) for b in again.backordered] == [("L1", 2)]

    cancel = await erp.cancel_sales_order(ack.erp_order_id, "customer asked", "cancel-2003")
    assert cancel.status == "cancelled"
    assert sum(a.quantity for a in cancel.released) == 10
    assert (await erp.cancel_sales_order(ack.erp_order_id, "customer asked", "cancel-2003")).status == (
        "already_cancelled"
    )
    (pos,) = InventoryLedger(_store(erp)).positions(sku="TEE-BLK-M", location="WH-EAST")
    assert (pos.on_hand, pos.reserved) == (10, 0)
    shipments = await erp.rpc.search_read("stock.shipment.out", [], ["state"])
    assert {s["state"] for s in shipments} == {"cancelled"}


async def test_a_crash_between_create_and_ack_makes_no_second_sale(erp: TrytonErp) -> None:
    """The first attempt created the sale in Tryton and died before answering (its quote and
    confirm never ran); the retry finds it by reference and carries it on."""
    order = make_order("12004", lines=[("MUG-01", 3, "12.50")])
    customer = await erp.resolve_customer(order.customer, order.shipping_address)
    refs = await erp.refs()
    products = {"MUG-01": refs.products["MUG-01"]}
    address = await erp._address(int(customer.customer_id), order.shipping_address)
    values = erp._sale_values(
        order, refs, products, int(customer.customer_id), address, refs.warehouses["WH-EAST"]
    )
    await erp.rpc.model("sale.sale", "create", [values])  # the attempt that crashed
    ack = await erp.create_sales_order(order, customer.customer_id, "so-2004")
    replay = await erp.create_sales_order(order, customer.customer_id, "so-2004")
    sales = await erp.rpc.search_read("sale.sale", [("reference", "=", order.key)], ["state"])
    assert [s["state"] for s in sales] == ["processing"]
    assert replay.erp_order_id == ack.erp_order_id and replay.created is False
    assert [(a.location, a.quantity) for a in replay.allocations] == [("WH-EAST", 3)]
    (pos,) = InventoryLedger(_store(erp)).positions(sku="MUG-01", location="WH-EAST")
    assert pos.reserved == 3  # mirrored once, however often it was asked


async def test_tryton_errors_are_permanent_with_trytons_message(erp: TrytonErp) -> None:
    order = make_order("12005", lines=[("NOT-IN-TRYTON", 1, "5.00")])
    customer = await erp.resolve_customer(order.customer, order.shipping_address)
    with pytest.raises(PermanentError) as unknown:
        await erp.create_sales_order(order, customer.customer_id, "so-2005")
    assert unknown.value.reason == "unknown_sku" and "NOT-IN-TRYTON" in str(unknown.value)
    # A document Tryton itself refuses (a required field missing): its own message, permanent.
    with pytest.raises(PermanentError) as refused:
        await erp.rpc.model("sale.sale", "create", [{"reference": "no-party"}])
    assert refused.value.reason == "erp_rejected"
    assert "Party" in str(refused.value) and str(refused.value).startswith("Tryton: ")
    with pytest.raises(PermanentError) as unknown_sale:
        await erp.update_sales_order("no-such-sale", order, "k")
    assert unknown_sale.value.reason == "unknown_order"


async def test_an_edit_before_release_amends_the_sale_backorders_first_then_the_latest_units(
    erp: TrytonErp,
) -> None:
    # HAT-RED: 3 at WH-EAST, 3 at WH-WEST; 8 ordered -> 3 + 3 placed, 2 backordered.
    order = make_order("12040", lines=[("HAT-RED", 8, "18.00"), ("MUG-01", 2, "12.50")], discount="3.00")
    customer = await erp.resolve_customer(order.customer, order.shipping_address)
    ack = await erp.create_sales_order(order, customer.customer_id, "so-12040")
    assert [(b.line_id, b.quantity) for b in ack.backordered] == [("L1", 2)]

    # The channel cuts the hats to 5 and drops the mugs: the 2 backordered go first, then one
    # of WH-WEST's (the split's, the latest) units; the mugs' reservation is released.
    edited = reduce_order(order, {"L1": 5, "L2": 0}, order.shipping_address)
    # The attempt that died after making the amendment and before validating it.
    sale = await erp._sale_by_number(ack.erp_order_id)
    lines = _amend(sale, await erp._sale_lines(sale), edited)
    await erp.rpc.model(
        "sale.amendment",
        "create",
        [{"sale": sale["id"], "description": "edit-12040-1", "lines": [["create", lines]]}],
    )
    done = await erp.update_sales_order(ack.erp_order_id, edited, "edit-12040-1")
    placed = sorted((a.location, a.line_id, a.quantity) for a in done.allocations)
    assert placed == [("WH-EAST", "L1", 3), ("WH-WEST", "L1", 2)] and done.backordered == []
    again = await erp.update_sales_order(ack.erp_order_id, edited, "edit-12040-1")
    assert again == done
    (sale,) = await erp.rpc.search_read(
        "sale.sale", [("number", "=", ack.erp_order_id)], ["total_amount", "revision", "amendments"]
    )
    # Tryton's own sale: the edited order's total, one amendment, however often it was asked.
    assert edited.totals.total < order.totals.total
    assert (sale["total_amount"], sale["revision"], len(sale["amendments"])) == (
        edited.totals.total.amount,
        1,
        1,
    )
    ledger = InventoryLedger(_store(erp))
    assert {(p.sku, p.location): p.reserved for p in ledger.positions() if p.reserved} == {
        ("HAT-RED", "WH-EAST"): 3,
        ("HAT-RED", "WH-WEST"): 2,
    }
    assert await _tryton_stock(erp, "MUG-01", "WH-EAST") == 100  # nothing left the building

    # What ships is invoiced at the edited amounts, to the cent.
    amounts = billing.invoice_for_shipment(edited, {}, {"L1": 5}, True)
    east = await erp.invoice_shipment(
        ack.erp_order_id, _shipment(edited, "S1", "WH-EAST", {"L1": 3}), amounts, "inv-12040-1"
    )
    assert east.total == amounts.total
    with pytest.raises(PermanentError) as shipped:
        await erp.update_sales_order(ack.erp_order_id, reduce_order(edited, {"L1": 4}, None), "edit-12040-2")
    assert shipped.value.reason == "already_shipped"


async def test_an_edit_tryton_cannot_apply_by_itself_is_refused_with_the_reason(erp: TrytonErp) -> None:
    order = make_order("12041", lines=[("MUG-01", 2, "12.50")])
    customer = await erp.resolve_customer(order.customer, order.shipping_address)
    ack = await erp.create_sales_order(order, customer.customer_id, "so-12041")
    more = order.model_copy(update={"lines": [order.lines[0].model_copy(update={"quantity": 3})]})
    with pytest.raises(PermanentError) as grown:
        await erp.update_sales_order(ack.erp_order_id, more, "edit-12041-1")
    assert grown.value.reason == "edit_not_supported" and "L1" in str(grown.value)
    await erp.cancel_sales_order(ack.erp_order_id, "customer", "cancel-12041")
    with pytest.raises(PermanentError) as cancelled:
        await erp.update_sales_order(ack.erp_order_id, reduce_order(order, {"L1": 1}, None), "edit-12041-2")
    assert cancelled.value.reason == "order_cancelled"
    amendments = await erp.rpc.search_read("sale.amendment", [("sale.number", "=", ack.erp_order_id)], ["id"])
    assert amendments == []
    # A Tryton without sale_amendment: the edit waits for a person, with the reason.
    (await erp.refs()).amendments = False
    with pytest.raises(PermanentError) as no_module:
        await erp.update_sales_order(ack.erp_order_id, reduce_order(order, {"L1": 1}, None), "edit-12041-3")
    assert no_module.value.reason == "erp_operation_unsupported" and "sale_amendment" in str(no_module.value)


async def _shipped_order(erp: TrytonErp, external_id: str) -> tuple[Order, str]:
    order = make_order(external_id, lines=[("TEE-BLK-M", 3, "25.00"), ("MUG-01", 2, "12.50")])
    customer = await erp.resolve_customer(order.customer, order.shipping_address)
    ack = await erp.create_sales_order(order, customer.customer_id, f"so-{external_id}")
    amounts = billing.invoice_for_shipment(order, {}, {"L1": 3, "L2": 2}, True)
    await erp.invoice_shipment(
        ack.erp_order_id, _shipment(order, "S1", "WH-EAST", {"L1": 3, "L2": 2}), amounts, f"inv-{external_id}"
    )
    return order, ack.erp_order_id


async def test_a_return_restocks_writes_off_and_posts_a_credit_note_of_the_same_amount(
    erp: TrytonErp,
) -> None:
    order, so = await _shipped_order(erp, "12007")
    with pytest.raises(PermanentError) as too_many:
        await erp.authorize_return(so, "R0", [RmaLine(line_id="L1", sku="TEE-BLK-M", quantity=4)], "rma-0")
    assert too_many.value.reason == "not_returnable" and "3 shipped" in str(too_many.value)

    rma = await erp.authorize_return(so, "R1", [RmaLine(line_id="L1", sku="TEE-BLK-M", quantity=2)], "rma-1")
    assert (rma.status, rma.created, rma.returned_before) == ("authorized", True, {})
    assert (await erp.authorize_return(so, "R1", rma.lines, "rma-1")).rma_id == rma.rma_id
    # Another return may take only what is left: 1 tee.
    with pytest.raises(PermanentError, match="2 on other returns"):
        await erp.authorize_return(so, "R2", [RmaLine(line_id="L1", sku="TEE-BLK-M", quantity=2)], "rma-2")

    receipt = await erp.receive_return(
        rma.rma_id,
        [
            DispositionLine(line_id="L1", sku="TEE-BLK-M", quantity=1, disposition="restock"),
            DispositionLine(line_id="L1", sku="TEE-BLK-M", quantity=1, disposition="damaged"),
        ],
        "receipt-1",
    )
    assert receipt.restocked == 1
    assert await erp.receive_return(rma.rma_id, [], "receipt-1") == receipt
    with pytest.raises(PermanentError) as twice:
        await erp.receive_return(rma.rma_id, [], "receipt-other")
    assert twice.value.reason == "rma_received"
    # Tryton's stock and the ledger: the restocked tee is back, the damaged one is not.
    assert await _tryton_stock(erp, "TEE-BLK-M", "WH-EAST") == 8
    (pos,) = InventoryLedger(_store(erp)).positions(sku="TEE-BLK-M", location="WH-EAST")
    assert (pos.on_hand, pos.reserved) == (8, 0)

    amounts = credit_for_return(order, {}, {"L1": 2}, "never")
    memo = await erp.post_credit_memo(rma.rma_id, amounts, "credit-1")
    assert memo.total == amounts.total
    assert await erp.post_credit_memo(rma.rma_id, amounts, "credit-1") == memo
    (note,) = await erp.rpc.search_read(
        "account.invoice", [("reference", "=", "credit-1")], ["state", "total_amount"]
    )
    assert (note["state"], note["total_amount"]) == ("posted", -amounts.total.amount)
    status = await erp.authorize_return(so, "R1", rma.lines, "rma-1")
    assert status.status == "credited"
    with pytest.raises(PermanentError) as closing:
        await erp.close_return(rma.rma_id, "too late", "close-1")
    assert closing.value.reason == "rma_received"


async def test_a_return_never_received_closes_and_its_units_are_returnable_again(erp: TrytonErp) -> None:
    _, so = await _shipped_order(erp, "12008")
    first = await erp.authorize_return(so, "R1", [RmaLine(line_id="L2", sku="MUG-01", quantity=2)], "rma-1")
    closed = await erp.close_return(first.rma_id, "expired", "close-1")
    assert closed.status == "closed"
    again = await erp.authorize_return(so, "R2", [RmaLine(line_id="L2", sku="MUG-01", quantity=2)], "rma-2")
    assert (again.status, again.returned_before) == ("authorized", {})
    with pytest.raises(PermanentError) as received:
        await erp.receive_return(first.rma_id, [], "receipt-1")
    assert received.value.reason == "rma_closed"


async def test_tryton_down_is_transient_and_back_up_works(erp: TrytonErp, tryton: TrytonServer) -> None:
    order = make_order("12006", lines=[("MUG-01", 1, "12.50")])
    customer = await erp.resolve_customer(order.customer, order.shipping_address)
    tryton.stop()
    with pytest.raises(TransientError) as down:
        await erp.create_sales_order(order, customer.customer_id, "so-2006")
    assert "unreachable" in str(down.value)
    tryton.start()
    ack = await erp.create_sales_order(order, customer.customer_id, "so-2006")
    assert [(a.sku, a.quantity) for a in ack.allocations] == [("MUG-01", 1)]


async def test_a_wrong_password_stops_the_start_with_the_reason(tryton: TrytonServer, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    adapter = TrytonErp(TrytonRpc(tryton.url, tryton.database, "admin", "not-the-password"), store)
    with pytest.raises(TrytonLoginError, match="refused the login of 'admin'"):
        await adapter.start()
    await adapter.rpc.aclose()
    store.dispose()


def test_the_registry_names_every_adapter_and_refuses_unknown_ones() -> None:
    assert {"builtin", "tryton"} <= set(registry.known("erp"))
    assert {"builtin", "shopify_admin", "amazon", "adobe_commerce"} <= set(registry.known("channel"))
    with pytest.raises(registry.UnknownAdapterError, match="known: builtin, tryton"):
        registry.factory("erp", "sap-r3")


async def test_stock_moved_inside_tryton_reaches_the_ledger_once(erp: TrytonErp) -> None:
    await _shipped_order(erp, "12009")  # the platform's own sale: mirrored already
    ledger = InventoryLedger(_store(erp))
    before = {(p.sku, p.location): (p.on_hand, p.reserved) for p in ledger.positions()}
    assert await erp.sync_stock() == (2, [])  # the sale's two done moves, counted once already
    await receive_in_tryton(erp, "MUG-01", "WH-WEST", 12)
    moves, changed = await erp.sync_stock()
    assert changed == ["MUG-01"] and moves >= 1
    (west,) = ledger.positions(sku="MUG-01", location="WH-WEST")
    assert (west.on_hand, west.reserved) == (12, 0) == (await _tryton_stock(erp, "MUG-01", "WH-WEST"), 0)
    assert ledger.movements("MUG-01", limit=1, location="WH-WEST")[0].kind == "receipt"
    assert (await erp.sync_stock())[1] == []  # the same move again: nothing more
    after = {(p.sku, p.location): (p.on_hand, p.reserved) for p in ledger.positions()}
    assert {k: v for k, v in after.items() if k != ("MUG-01", "WH-WEST")} == before


async def test_the_item_master_is_read_from_tryton(erp: TrytonErp) -> None:
    refs = await erp.refs()
    (tpl,) = await erp.rpc.model("product.template", "search", [("code", "=", "MUG-01")], 0, 1, None)
    await erp.rpc.model(
        "product.template", "write", [tpl], {"list_price": Decimal("13.75"), "name": "Mug, blue"}
    )
    await erp.rpc.model(
        "product.template",
        "create",
        [
            {
                "name": "Scarf",
                "code": "SCARF-9",
                "type": "goods",
                "salable": True,
                "default_uom": refs.unit,
                "sale_uom": refs.unit,
                "list_price": Decimal("30.00"),
                "account_category": refs.goods_category,
                "products": [["create", [{}]]],
            }
        ],
    )
    counts = await erp.sync_catalog()
    assert (counts.created, counts.updated) == (1, 1)  # the scarf; the mug's name and price
    with _store(erp).reading() as s:
        items = {i.sku: (i.title, i.price, i.active) for i in s.scalars(select(ErpItem))}
    assert items["MUG-01"] == ("Mug, blue", Decimal("13.75"), True)
    assert items["SCARF-9"] == ("Scarf", Decimal("30.00"), True)
    # Retired in Tryton: inactive here, never deleted.
    (scarf,) = await erp.rpc.model("product.product", "search", [("code", "=", "SCARF-9")], 0, 1, None)
    await erp.rpc.model("product.product", "write", [scarf], {"active": False})
    counts = await erp.sync_catalog()
    assert (counts.created, counts.updated) == (0, 1)
    with _store(erp).reading() as s:
        retired = s.get(ErpItem, "SCARF-9")
        assert retired is not None and retired.active is False


async def test_a_crash_between_shipping_in_tryton_and_the_invoice_ships_once(erp: TrytonErp) -> None:
    order = make_order("12010", lines=[("MUG-01", 2, "12.50")])
    customer = await erp.resolve_customer(order.customer, order.shipping_address)
    ack = await erp.create_sales_order(order, customer.customer_id, "so-12010")
    shipment = _shipment(order, "FO-9-1", "WH-EAST", {"L1": 2})
    # The first attempt shipped in Tryton, then died before its invoice.
    sale = await erp._sale_by_number(ack.erp_order_id)
    await erp._ship(sale, shipment, await erp.refs(), await erp._lines(sale))
    amounts = billing.invoice_for_shipment(order, {}, {"L1": 2}, True)
    invoice = await erp.invoice_shipment(ack.erp_order_id, shipment, amounts, "inv-12010")
    shipped = await erp.rpc.search_read("stock.shipment.out", [("reference", "=", "FO-9-1")], ["state"])
    assert [s["state"] for s in shipped] == ["done"]
    # The parcel took all of the sale's one customer shipment: that one shipped, no other made.
    assert (await erp._sale(sale["id"]))["shipments"] == [shipped[0]["id"]] == sale["shipments"]
    assert invoice.total == amounts.total
    (pos,) = InventoryLedger(_store(erp)).positions(sku="MUG-01", location="WH-EAST")
    assert (pos.on_hand, pos.reserved) == (98, 0)


async def test_a_crash_after_a_whole_shipment_took_the_parcel_id_ships_it_once(erp: TrytonErp) -> None:
    """The parcel takes all of the sale's shipment: the adapter writes the platform's shipment
    id on it, then ships it. A crash between the two: the retry finds it by that id."""
    order = make_order("12012", lines=[("MUG-01", 3, "12.50")])
    customer = await erp.resolve_customer(order.customer, order.shipping_address)
    ack = await erp.create_sales_order(order, customer.customer_id, "so-12012")
    sale = await erp._sale_by_number(ack.erp_order_id)
    await erp.rpc.model("stock.shipment.out", "write", sale["shipments"], {"reference": "FO-12-1"})
    shipment = _shipment(order, "FO-12-1", "WH-EAST", {"L1": 3})
    amounts = billing.invoice_for_shipment(order, {}, {"L1": 3}, True)
    await erp.invoice_shipment(ack.erp_order_id, shipment, amounts, "inv-12012")
    rows = await erp.rpc.model("stock.shipment.out", "read", sale["shipments"], ["state", "reference"])
    assert [(r["state"], r["reference"]) for r in rows] == [("done", "FO-12-1")]
    assert (await erp._sale(sale["id"]))["shipments"] == sale["shipments"]
    (pos,) = InventoryLedger(_store(erp)).positions(sku="MUG-01", location="WH-EAST")
    assert (pos.on_hand, pos.reserved) == (97, 0)


async def test_invoices_posted_at_once_get_numbers_of_their_own(erp: TrytonErp) -> None:
    """Tryton numbers invoices from a strict sequence; calls in flight at once (the adapter
    allows several) must never draw the same number."""
    orders = [make_order(f"1202{i}", lines=[("MUG-01", 1, "12.50")]) for i in range(6)]
    acks = []
    for order in orders:
        customer = await erp.resolve_customer(order.customer, order.shipping_address)
        acks.append(await erp.create_sales_order(order, customer.customer_id, f"so-{order.external_id}"))
    await asyncio.gather(
        *(
            erp.invoice_shipment(
                ack.erp_order_id,
                _shipment(order, f"S-{order.external_id}", "WH-EAST", {"L1": 1}),
                billing.invoice_for_shipment(order, {}, {"L1": 1}, True),
                f"inv-{order.external_id}",
            )
            for order, ack in zip(orders, acks, strict=True)
        )
    )
    invoices = await erp.rpc.search_read("account.invoice", [("state", "=", "posted")], ["number"])
    numbers = [i["number"] for i in invoices]
    assert len(numbers) == 6 and len(set(numbers)) == 6, numbers


@pytest.mark.skipif(postgres_url() is None, reason="Tryton on PostgreSQL needs DATABASE_URL naming a server")
async def test_trytond_on_postgresql_books_orders_in_several_processes(tmp_path: Path) -> None:
    """The docker-compose path: trytond as the project serves it on PostgreSQL (two processes
    and a queue worker) on a database copied from the template database, which is built once
    per Tryton version and kept on the server. Invoices posted at once are numbered apart, the
    worker runs Tryton's queued processing, and without it the adapter processes the sale."""
    import psycopg

    pg = postgres_url()
    assert pg is not None
    parts = urlsplit(pg.replace("+psycopg", ""))
    server = TrytonServer(
        root=tmp_path / "tryton",
        database=f"rc_t_{uuid.uuid4().hex[:8]}",
        port=free_port(),
        database_url=f"postgresql://{parts.netloc}/",
    )
    assert (server.processes, server.queue_worker) == (2, True)
    server.start(timeout=600)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    seed_catalog(store)
    erp = TrytonErp(TrytonRpc(server.url, server.database, "admin", server.password, max_in_flight=8), store)
    try:
        await erp.start()
        await erp.seed_stock()
        orders = [make_order(f"1203{i}", lines=[("MUG-01", 2, "12.50")]) for i in range(4)]

        async def book(order: Order) -> tuple[Order, InvoiceAck]:
            customer = await erp.resolve_customer(order.customer, order.shipping_address)
            ack = await erp.create_sales_order(order, customer.customer_id, f"so-{order.external_id}")
            amounts = billing.invoice_for_shipment(order, {}, {"L1": 2}, True)
            shipment = _shipment(order, f"S-{order.external_id}", "WH-EAST", {"L1": 2})
            return order, await erp.invoice_shipment(ack.erp_order_id, shipment, amounts, f"inv-{order.key}")

        booked = await asyncio.gather(*(book(o) for o in orders))
        numbers = [invoice.invoice_id for _, invoice in booked]
        assert len(set(numbers)) == 4, numbers
        assert sum(erp.posting.batches) == 4  # each posted once, through the batcher
        for order, invoice in booked:
            (posted,) = await erp.rpc.search_read(
                "account.invoice", [("number", "=", invoice.invoice_id)], ["state", "total_amount"]
            )
            assert (posted["state"], posted["total_amount"]) == ("posted", order.totals.total.amount)
        assert await _tryton_stock(erp, "MUG-01", "WH-EAST") == 92
        # Tryton queues the printing of a posted invoice and the processing of a sale after its
        # shipment: the worker runs them (the requests that queued them did not).
        ids = [int(i) for i in await erp.rpc.model("account.invoice", "search", [], 0, None, None)]
        for _ in range(150):
            printed = await erp.rpc.model("account.invoice", "read", ids, ["invoice_report_format"])
            sales = await erp.rpc.search_read("sale.sale", [], ["shipment_state"])
            done = [r["invoice_report_format"] for r in printed] + [s["shipment_state"] for s in sales]
            if done == ["odt"] * 4 + ["sent"] * 4:
                break
            await asyncio.sleep(0.2)
        assert done == ["odt"] * 4 + ["sent"] * 4
        # No worker: a confirmed sale waits a moment for it, then the adapter processes it.
        server.stop_worker()
        erp.queue_wait_s = (0.05,)
        order = make_order("12035", lines=[("MUG-01", 1, "12.50")])
        customer = await erp.resolve_customer(order.customer, order.shipping_address)
        ack = await erp.create_sales_order(order, customer.customer_id, "so-12035")
        assert [(a.location, a.quantity) for a in ack.allocations] == [("WH-EAST", 1)]
        (sale,) = await erp.rpc.search_read("sale.sale", [("number", "=", ack.erp_order_id)], ["state"])
        assert sale["state"] == "processing"
        # Tryton's own processing of it waits in the queue for a worker (it did not run inline).
        # (ir.queue is not served over JSON-RPC: read from Tryton's database.)
        queue = f"postgresql://{parts.netloc}/{server.database}"
        with psycopg.connect(queue) as conn:
            waiting = dict(conn.execute("SELECT id, data FROM ir_queue WHERE dequeued_at IS NULL").fetchall())
        assert any(d["model"] == "sale.sale" and d["method"] == "process" for d in waiting.values()), waiting
        # A worker started again (`retail tryton serve` watches it) runs what waited.
        assert server.keep_worker() is True and server.keep_worker() is False
        for _ in range(150):
            with psycopg.connect(queue) as conn:
                done = {
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM ir_queue WHERE id = ANY(%s) AND finished_at IS NOT NULL",
                        [list(waiting)],
                    )
                }
            if done == set(waiting):
                break
            await asyncio.sleep(0.2)
        assert done == set(waiting)
    finally:
        await erp.rpc.aclose()
        store.dispose()
        server.stop()
        with psycopg.connect(f"postgresql://{parts.netloc}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{server.database}" WITH (FORCE)')


async def test_a_crash_after_the_new_shipment_and_before_the_old_moves_shrank_balances(
    erp: TrytonErp,
) -> None:
    """The first attempt made the shipment for the shipped units and died before the old moves
    gave them up: the retry finishes it, and the sale line is covered once."""
    order = make_order("12011", lines=[("MUG-01", 3, "12.50")])
    customer = await erp.resolve_customer(order.customer, order.shipping_address)
    ack = await erp.create_sales_order(order, customer.customer_id, "so-12011")
    sale = await erp._sale_by_number(ack.erp_order_id)
    refs = await erp.refs()
    (move,) = await erp._moves(sale)
    (template,) = await erp.rpc.model(
        "stock.shipment.out", "read", [int(move["shipment"].split(",")[1])], ["customer", "delivery_address"]
    )
    await erp._new_shipment(template, refs.warehouses["WH-EAST"], [(move, 2)], refs, reference="FO-11-1")
    shipment = _shipment(order, "FO-11-1", "WH-EAST", {"L1": 2})
    amounts = billing.invoice_for_shipment(order, {}, {"L1": 2}, True)
    await erp.invoice_shipment(ack.erp_order_id, shipment, amounts, "inv-12011")
    moves = [m for m in await erp._moves(sale) if m["state"] != "cancelled"]
    assert sorted((m["state"], m["quantity"]) for m in moves) == [("assigned", 1.0), ("done", 2.0)]
    (pos,) = InventoryLedger(_store(erp)).positions(sku="MUG-01", location="WH-EAST")
    assert (pos.on_hand, pos.reserved) == (98, 1)
