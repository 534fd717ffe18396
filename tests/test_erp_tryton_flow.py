"""Order to cash with Tryton as the ERP (RETAIL_ERP=tryton): a real trytond, the worker, the
API and the warehouse simulator. What is checked is read from Tryton: its sale, its posted
invoices and its stock."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client

from adapters.erp.inventory import InventoryLedger
from adapters.erp.tryton.erp import TrytonErp
from orchestration.models import OperatorRequest
from services.tryton import TrytonServer
from tests.platform import Platform, platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from tests.tryton_server import running_tryton
from workflows.order_to_cash import OrderToCash


@pytest.fixture
def tryton(tmp_path: Path) -> Iterator[TrytonServer]:
    with running_tryton(tmp_path) as server:
        yield server


def _on_tryton(server: TrytonServer) -> dict[str, object]:
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
    async with platform(client, tmp_path, database_url, seed=seed_catalog, **_on_tryton(tryton)) as p:
        erp = _erp(p)
        await erp.seed_stock()
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
    async with platform(client, tmp_path, database_url, seed=seed_catalog, **_on_tryton(tryton)) as p:
        erp = _erp(p)
        await erp.seed_stock()
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
