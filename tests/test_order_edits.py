"""Channel edits (Shopify orders/updated) reach the running OrderToCash: applied before release
(ship-to, quantity reductions with the ERP order, tax document and authorization following),
a conflict for a person after shipment; stale and duplicate updates change nothing.
Real Temporal server, real store, the builtin adapters and simulators."""

from __future__ import annotations

import copy
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from temporalio.client import Client

from adapters.erp.catalog import import_stock
from adapters.payment.builtin import get_authorization
from backoffice.erp import ErpSalesOrder
from backoffice.tax import TaxDocument
from backoffice.wms import list_fulfillment_orders
from canonical import Money
from orchestration.models import OperatorRequest
from tests.platform import platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from workflows.order_to_cash import OrderToCash

NEW_YORK = {"address1": "350 5th Ave", "city": "New York", "province_code": "NY", "zip": "10118"}


def new_order_id() -> int:
    return 2 * 10**9 + uuid.uuid4().int % 10**11


def updated(
    order: dict[str, Any], at: str, *, address: dict[str, str] | None = None, **qty: int
) -> dict[str, Any]:
    """The orders/updated payload of ``order`` edited at ``at``: a new ship-to, and line items'
    current quantities by index (``L0=1``), as Shopify's order editing leaves them."""
    p = copy.deepcopy(order)
    p["updated_at"] = at
    if address:
        p["shipping_address"] = {**p["shipping_address"], **address}
    for name, q in qty.items():
        p["line_items"][int(name[1:])]["current_quantity"] = q
    return p


def steps(st: Any, step: str) -> list[tuple[str, str | None]]:
    return [(s.status, s.detail) for s in st.steps if s.step == step]


async def test_address_edit_before_release_reaches_the_warehouse_stale_and_duplicates_ignored(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog, hold_above={"USD": "10"}) as p:
        oid = new_order_id()
        key = f"shopify-{oid}"
        order = shopify_order(oid, [("MUG-01", 1, "12.50")])
        assert (await p.send_shopify(order)).status_code == 200
        st = await p.wait_status(key, "NeedsAttention")
        assert st.attention is not None and st.attention.reason == "held_for_approval"

        edit = updated(order, "2026-11-20T11:00:00-05:00", address=NEW_YORK)
        r = await p.send_shopify(edit, topic="orders/updated")
        assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
        st = await p.wait_for(key, lambda s: bool(steps(s, "order_edit")))
        assert steps(st, "order_edit") == [
            ("done", "update of 2026-11-20T11:00:00-05:00 applied: ship-to -> 350 5th Ave, New York 10118 US")
        ]
        assert st.status == "NeedsAttention"  # still held: the edit changed nothing about that

        # The same update delivered again (a new webhook id): the inbox answers duplicate.
        again = await p.send_shopify(edit, topic="orders/updated")
        assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text
        # An older update arriving late is ignored by the workflow.
        stale = updated(order, "2026-11-20T10:30:00-05:00", address={"city": "Oakland", "zip": "94607"})
        assert (await p.send_shopify(stale, topic="orders/updated")).json()["status"] == "accepted"
        st = await p.wait_for(key, lambda s: len(steps(s, "order_edit")) == 2)
        assert steps(st, "order_edit")[1] == (
            "skipped",
            "update of 2026-11-20T10:30:00-05:00 ignored: not newer than 2026-11-20T11:00:00-05:00",
        )

        await p.handle(key).execute_update(OrderToCash.approve, OperatorRequest(operator="risk", reason="ok"))
        st = await p.wait_status(key, "Completed", timeout=60)
        assert st.captured == st.invoiced == st.total
        [fo] = list_fulfillment_orders(p.store, key)
        assert fo.ship_to is not None
        assert (fo.ship_to["city"], fo.ship_to["postal_code"]) == ("New York", "10118")


async def test_quantity_reduction_before_release_adjusts_erp_order_tax_and_authorization(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    def seed(store: Any) -> None:
        seed_catalog(store, extra=[("BO-1", "10.00", "WH-EAST", 0)])

    async with platform(client, tmp_path, database_url, seed=seed) as p:
        oid = new_order_id()
        key = f"shopify-{oid}"
        order = shopify_order(oid, [("BO-1", 3, "10.00")])
        await p.send_shopify(order)
        st = await p.wait_status(key, "NeedsAttention")
        assert st.attention is not None and st.attention.reason == "backordered", st
        assert not st.fulfillments and st.erp_order_id is not None
        assert st.total == Money.of("37.18", "USD")  # 30.00 + tax 2.18 + shipping 5.00

        await p.send_shopify(updated(order, "2026-11-20T11:00:00-05:00", L0=1), topic="orders/updated")
        st = await p.wait_for(key, lambda s: bool(steps(s, "order_edit")))
        line_id = str(oid * 10)
        assert steps(st, "order_edit") == [
            ("done", f"update of 2026-11-20T11:00:00-05:00 applied: line {line_id} 3 -> 1")
        ]
        # 10.00 + tax 0.73 (a third of 2.18, rounded half-even: the rule invoices use) + 5.00
        assert st.total == Money.of("15.73", "USD")
        assert st.status == "NeedsAttention" and st.backordered == {line_id: 1}
        done = {s.step for s in st.steps}
        assert {"edit_sales_order:1", "requote_tax:1", "adjust_authorization:1"} <= done
        with p.store.session() as s:
            so = s.scalar(select(ErpSalesOrder).where(ErpSalesOrder.external_id == str(oid)))
            assert so is not None
            [line] = so.lines
            assert (line.quantity, line.backordered, line.net, line.tax) == (
                1,
                1,
                Decimal("10"),
                Decimal("0.73"),
            )
            # The tax engine's document follows the edit (its own quote: 7.25% of 10.00).
            doc = s.get(TaxDocument, f"order-{key}:tax")
            assert doc is not None and doc.total_tax == Decimal("0.72") and doc.status == "quoted"
        assert st.authorization_id is not None
        auth = get_authorization(p.store, st.authorization_id)
        assert auth is not None and auth.amount == st.total

        import_stock(p.store, [{"sku": "BO-1", "location": "WH-EAST", "on_hand": 5}])
        await p.handle(key).execute_update(
            OrderToCash.retry, OperatorRequest(operator="ops", reason="stock in")
        )
        st = await p.wait_status(key, "Completed", timeout=60)
        assert st.captured == st.invoiced == st.total == Money.of("15.73", "USD")
        assert sum(ln.quantity for sh in st.shipments for ln in sh.lines) == 1


async def test_an_edit_after_shipment_needs_attention_as_an_edit_conflict(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, seed=seed_catalog, carrier_transit_delay_s=120.0
    ) as p:
        oid = new_order_id()
        key = f"shopify-{oid}"
        order = shopify_order(oid, [("MUG-01", 2, "12.50")])
        await p.send_shopify(order)
        await p.wait_status(key, "Shipped", timeout=60)

        await p.send_shopify(
            updated(order, "2026-11-21T09:00:00-05:00", address=NEW_YORK, L0=1), topic="orders/updated"
        )
        st = await p.wait_status(key, "NeedsAttention")
        assert st.attention is not None and st.attention.reason == "edit_conflict"
        assert st.attention.step == "order_edit"
        assert "after shipment" in st.attention.message and "ship-to -> 350 5th Ave" in st.attention.message
        assert f"line {oid * 10} 2 -> 1" in st.attention.message
        assert st.total == st.invoiced  # nothing changed behind the books' back

        await p.handle(key).execute_update(
            OrderToCash.skip,
            OperatorRequest(operator="ops", reason="customer keeps both", reference="TICKET-9"),
        )
        st = await p.wait_status(key, "Shipped")
        assert ("skipped", "update of 2026-11-21T09:00:00-05:00 handled by hand: TICKET-9") in steps(
            st, "order_edit"
        )
