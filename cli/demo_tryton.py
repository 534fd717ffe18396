"""The demo on Tryton (`RETAIL_ERP=tryton make demo`): push the demo's stock into Tryton before the
orders, and end by checking the books from Tryton itself, printing its document numbers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import typer

from adapters.erp.inventory import InventoryLedger
from canonical import OrderState
from canonical.returns import ReturnState
from cli.output import print_table
from store.db import Store


def on_tryton(erp: Any) -> bool:
    return getattr(erp, "name", "") == "tryton"


async def prepare(erp: Any) -> None:
    """Products for the catalog just imported, and the stock as Tryton inventories."""
    await erp.start()
    lines = await erp.seed_stock()
    warehouses = len((await erp.refs()).warehouses)
    typer.echo(f"Tryton: {warehouses} warehouses, {lines} inventory lines from the demo stock")


async def check_books(
    erp: Any, store: Store, states: dict[str, OrderState], returns: list[ReturnState]
) -> bool:
    """Every Completed order has posted Tryton invoices adding up to its channel total, every
    refund a posted credit note of the same amount, and Tryton's stock per SKU and warehouse is
    the ledger's on hand. Prints what it found; True when everything agrees."""
    ok = True
    rows: list[list[Any]] = []
    for key, st in sorted(states.items()):
        if st.status != "Completed":
            continue
        invoices = await _invoices(erp, key)
        total = sum((i["total_amount"] for i in invoices if i["state"] == "posted"), Decimal(0))
        agree = total == st.total.amount and all(i["state"] == "posted" for i in invoices)
        ok &= agree
        rows.append(
            [
                key,
                st.erp_order_id,
                ", ".join(i["number"] for i in invoices),
                total,
                st.total,
                "yes" if agree else "NO",
            ]
        )
    numbers = [n for row in rows for n in str(row[2]).split(", ") if n]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        ok = False
        typer.echo(f"Tryton numbered two invoices alike: {', '.join(twice)}")
    print_table(
        "Tryton: sales and their posted invoices",
        ["order", "sale", "invoices", "Tryton", "channel", "agree"],
        rows,
    )

    credit_rows: list[list[Any]] = []
    for r in returns:
        if r.status != "Refunded" or r.credited is None:
            continue
        notes = await erp.rpc.search_read(
            "account.invoice", [("number", "=", r.credit_memo_id)], ["state", "total_amount", "number"]
        )
        amount = -notes[0]["total_amount"] if notes else None
        agree = bool(notes) and notes[0]["state"] == "posted" and amount == r.credited.amount
        ok &= agree
        credit_rows.append(
            [r.return_key, r.rma_id, r.credit_memo_id, amount, r.refunded, "yes" if agree else "NO"]
        )
    print_table(
        "Tryton: returns and their credit notes",
        ["return", "RMA", "credit note", "Tryton", "refunded", "agree"],
        credit_rows,
    )

    refs = await erp.refs()
    stock_rows: list[list[Any]] = []
    for p in InventoryLedger(store).positions():
        wh = refs.warehouses.get(p.location)
        pid = refs.products.get(p.sku)
        if wh is None or pid is None:
            continue
        (row,) = await erp.rpc.model(
            "product.product", "read", [pid], ["quantity"], ctx={"locations": [wh.storage]}
        )
        agree = int(row["quantity"]) == p.on_hand
        ok &= agree
        if not agree or p.on_hand != 0:
            stock_rows.append([p.sku, p.location, int(row["quantity"]), p.on_hand, "yes" if agree else "NO"])
    print_table(
        "Tryton: stock per SKU and warehouse",
        ["sku", "warehouse", "Tryton", "ledger on hand", "agree"],
        stock_rows,
    )
    typer.echo(f"Tryton's books {'agree with the platform' if ok else 'DIFFER from the platform'}")
    return ok


async def _invoices(erp: Any, order_key: str) -> list[dict[str, Any]]:
    sales = await erp.rpc.search_read("sale.sale", [("reference", "=", order_key)], ["lines"])
    if not sales:
        return []
    origins = [f"sale.line,{i}" for i in sales[0]["lines"]]
    lines = await erp.rpc.search_read("account.invoice.line", [("origin", "in", origins)], ["invoice"])
    ids = sorted({ln["invoice"] for ln in lines if ln["invoice"]})
    if not ids:
        return []
    rows: list[dict[str, Any]] = await erp.rpc.model(
        "account.invoice", "read", ids, ["state", "number", "total_amount"]
    )
    return rows
