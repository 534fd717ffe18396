"""Order to cash with Tryton as the ERP (RETAIL_ERP=tryton): a real trytond, the worker, the
API and the warehouse simulator. What is checked is read from Tryton: its sale, its posted
invoices and its stock."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from adapters.erp.inventory import InventoryLedger
from adapters.erp.tryton.erp import TrytonErp
from orchestration.client import ensure_inventory_syncs
from orchestration.models import OperatorRequest
from services.tryton import TrytonServer
from store.channel_stock import told
from store.db import Store
from tests.platform import Platform, platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from tests.test_order_edits import steps, updated
from tests.test_returns import wait_status as wait_return_status
from tests.tryton_server import receive_in_tryton, running_tryton
from workflows.erp_stock import ErpStockSync
from workflows.order_to_cash import OrderToCash
from workflows.schedules import wanted_schedules


@pytest.fixture
def tryton(tmp_path: Path) -> Iterator[TrytonServer]:
    with running_tryton(tmp_path) as server:
        yield server


@asynccontextmanager
async def on_tryton(
    client: Client,
    tmp_path: Path,
    database_url: str,
    tryton: TrytonServer,
    seed: Callable[[Store], None] = seed_catalog,
    **overrides: Any,
) -> AsyncIterator[tuple[Platform, TrytonErp]]:
    """The platform with Tryton as its ERP, the test catalog's stock pushed into Tryton."""
    async with platform(client, tmp_path, database_url, seed=seed, **_on_tryton(tryton), **overrides) as p:
        erp = _erp(p)
        await erp.seed_stock()
        yield p, erp


def _on_tryton(server: TrytonServer) -> dict[str, Any]:
    return {
        "erp": "tryton",
        "tryton_url": server.url,
        "tryton_database": server.database,
        "tryton_password": server.password,
    }


def _erp(p: Platform) -> TrytonErp:
    assert isinstance(p.adapters.erp, TrytonErp)
    return p.adapters.erp


async def test_a_split_order_completes_with_trytons_invoices_equal_to_its_total(
    client: Client, tmp_path: Path, database_url: str, tryton: TrytonServer
) -> None:
    async with on_tryton(client, tmp_path, database_url, tryton) as (p, erp):
        # HAT-RED: 3 at WH-EAST and 3 at WH-WEST; 5 ordered ships from both.
        r = await p.send_shopify(shopify_order(13001, [("HAT-RED", 5, "18.00"), ("MUG-01", 1, "12.50")]))
        assert r.status_code == 200, r.text
        st = await p.wait_status("shopify-13001", "Completed", timeout=60)
        assert sorted(set(st.fulfillments.values())) == ["WH-EAST", "WH-WEST"]

        (sale,) = await erp.rpc.search_read(
            "sale.sale", [("reference", "=", "shopify-13001")], ["number", "total_amount"]
        )
        assert st.erp_order_id == sale["number"]
        assert sale["total_amount"] == st.total.amount
        invoices = await erp.rpc.search_read(
            "account.invoice", [("party", "!=", None), ("type", "=", "out")], ["state", "total_amount"]
        )
        assert len(invoices) == 2 and {i["state"] for i in invoices} == {"posted"}
        assert sum((i["total_amount"] for i in invoices), Decimal(0)) == st.total.amount == st.invoiced.amount
        ledger = InventoryLedger(p.store)
        for sku, location in (("HAT-RED", "WH-EAST"), ("HAT-RED", "WH-WEST"), ("MUG-01", "WH-EAST")):
            (pos,) = ledger.positions(sku=sku, location=location)
            refs = await erp.refs()
            (pid,) = await erp.rpc.model("product.product", "search", [("code", "=", sku)], 0, 1, None)
            (row,) = await erp.rpc.model(
                "product.product",
                "read",
                [pid],
                ["quantity"],
                ctx={"locations": [refs.warehouses[location].storage]},
            )
            assert (int(row["quantity"]), 0) == (pos.on_hand, pos.reserved)
        assert ledger.positions(sku="HAT-RED", location="WH-EAST")[0].on_hand == 0


async def test_a_sale_tryton_refuses_waits_with_trytons_message_then_completes(
    client: Client, tmp_path: Path, database_url: str, tryton: TrytonServer
) -> None:
    async with on_tryton(client, tmp_path, database_url, tryton) as (p, erp):
        # Someone in Tryton stops selling the mug: Tryton refuses a sale line for it.
        (tpl,) = await erp.rpc.model("product.template", "search", [("code", "=", "MUG-01")], 0, 1, None)
        await erp.rpc.model("product.template", "write", [tpl], {"salable": False})
        await p.send_shopify(shopify_order(13002, [("MUG-01", 2, "12.50")]))
        st = await p.wait_status("shopify-13002", "NeedsAttention", timeout=60)
        assert st.attention is not None and st.attention.step == "create_sales_order"
        assert st.attention.reason == "erp_rejected"
        assert st.attention.message.startswith("Tryton: ")

        await erp.rpc.model("product.template", "write", [tpl], {"salable": True})
        await p.handle("shopify-13002").execute_update(
            OrderToCash.retry, OperatorRequest(operator="ops", reason="mug salable again in Tryton")
        )
        st = await p.wait_status("shopify-13002", "Completed", timeout=60)
        sales = await erp.rpc.search_read("sale.sale", [("reference", "=", "shopify-13002")], ["state"])
        assert len(sales) == 1  # the refused attempt left no second sale behind


async def test_a_return_on_tryton_is_received_credited_and_refunded(
    client: Client, tmp_path: Path, database_url: str, tryton: TrytonServer
) -> None:
    async with on_tryton(client, tmp_path, database_url, tryton) as (p, erp):
        await p.send_shopify(shopify_order(13003, [("TEE-BLK-M", 2, "25.00"), ("MUG-01", 1, "12.50")]))
        await p.wait_status("shopify-13003", "Completed", timeout=60)
        r = await p.http.post(
            "/v1/returns",
            json={
                "channel": "shopify",
                "order_external_id": "13003",
                "return_id": "rma-13003",
                "lines": [{"sku": "TEE-BLK-M", "quantity": 2}],
                "reason": "too small",
            },
        )
        assert r.status_code == 202, r.text
        st = await wait_return_status(p, "shopify-rma-13003", "Refunded")
        assert st.credited is not None and st.refunded == st.credited
        # Tryton's own books: a posted credit note of the refunded amount, the tees back in stock.
        (rma,) = await erp.rpc.search_read(
            "sale.sale", [("reference", "=", "shopify-13003/return/shopify-rma-13003")], ["number"]
        )
        assert st.rma_id == rma["number"]
        notes = await erp.rpc.search_read(
            "account.invoice", [("total_amount", "<", 0)], ["state", "total_amount", "number"]
        )
        assert [(n["state"], -n["total_amount"]) for n in notes] == [("posted", st.credited.amount)]
        assert st.credit_memo_id == notes[0]["number"]
        (pos,) = InventoryLedger(p.store).positions(sku="TEE-BLK-M", location="WH-EAST")
        assert pos.on_hand == 10


async def test_a_receipt_made_in_tryton_reaches_a_channel(
    client: Client, tmp_path: Path, database_url: str, tryton: TrytonServer
) -> None:
    channel = f"mirror-{uuid.uuid4().hex[:6]}"
    async with on_tryton(
        client, tmp_path, database_url, tryton, inventory_channels=[channel], inventory_debounce_s=0.1
    ) as (p, erp):
        await ensure_inventory_syncs(client, p.settings)
        assert "erp-stock" in {kind for kind, _ in wanted_schedules(p.settings).values()}
        await receive_in_tryton(erp, "TEE-BLK-M", "WH-EAST", 5)
        result = await client.execute_workflow(
            ErpStockSync.run, id=f"erp-stock-{uuid.uuid4().hex[:6]}", task_queue=p.settings.task_queue
        )
        assert result.erp == "tryton" and result.skus == ["TEE-BLK-M"]
        deadline = time.monotonic() + 20
        pushed: list[int] = []
        while time.monotonic() < deadline:
            pushed = [t.quantity for t in told(p.store, channel, ["TEE-BLK-M"])]
            if pushed == [15]:
                break
            await asyncio.sleep(0.2)
        assert pushed == [15], f"{channel} was not told TEE-BLK-M=15: {pushed}"


async def test_a_channel_edit_before_release_amends_trytons_sale_and_its_invoice_follows(
    client: Client, tmp_path: Path, database_url: str, tryton: TrytonServer
) -> None:
    def seed(store: Store) -> None:
        seed_catalog(store, extra=[("BO-1", "10.00", "WH-EAST", 0)])

    async with on_tryton(client, tmp_path, database_url, tryton, seed) as (p, erp):
        # No BO-1 in stock: the order waits, backordered, nothing released yet.
        order = shopify_order(13004, [("BO-1", 3, "10.00")])
        await p.send_shopify(order)
        st = await p.wait_status("shopify-13004", "NeedsAttention", timeout=60)
        assert st.attention is not None and st.attention.reason == "backordered"

        await p.send_shopify(updated(order, "2026-11-20T11:00:00-05:00", L0=1), topic="orders/updated")
        st = await p.wait_for("shopify-13004", lambda s: bool(steps(s, "order_edit")))
        assert steps(st, "order_edit") == [
            ("done", "update of 2026-11-20T11:00:00-05:00 applied: line 130040 3 -> 1")
        ]
        assert st.backordered == {"130040": 1}
        (sale,) = await erp.rpc.search_read(
            "sale.sale", [("reference", "=", "shopify-13004")], ["total_amount", "revision"]
        )
        assert (sale["total_amount"], sale["revision"]) == (st.total.amount, 1)

        await receive_in_tryton(erp, "BO-1", "WH-EAST", 5)
        await p.handle("shopify-13004").execute_update(
            OrderToCash.retry, OperatorRequest(operator="ops", reason="BO-1 received in Tryton")
        )
        st = await p.wait_status("shopify-13004", "Completed", timeout=60)
        assert sum(ln.quantity for sh in st.shipments for ln in sh.lines) == 1
        invoices = await erp.rpc.search_read(
            "account.invoice", [("type", "=", "out"), ("reference", "!=", None)], ["state", "total_amount"]
        )
        assert {i["state"] for i in invoices} == {"posted"}
        assert sum((i["total_amount"] for i in invoices), Decimal(0)) == st.total.amount == st.invoiced.amount
