"""Tryton is the item master when it is the ERP: its goods products (code = SKU), their names,
list prices and active flag are read into the platform's item master (``erp_items``), on the
ERP stock schedule and by ``retail catalog sync``. A product deactivated in Tryton becomes
inactive here (orders for it wait for an operator); one without a code is not a SKU and is left
out."""

from __future__ import annotations

from typing import Any

from adapters.erp.catalog import ImportCounts, import_products
from adapters.erp.tryton.base import SYSTEM, TrytonBase
from adapters.store_calls import in_thread

PAGE = 500


class TrytonItemMaster(TrytonBase):
    async def sync_catalog(self) -> ImportCounts:
        refs = await self.refs()
        (currency,) = await self.rpc.model("currency.currency", "read", [refs.currency], ["code"])
        rows: list[dict[str, Any]] = []
        offset = 0
        fields = ["code", "active", "template.name", "template.list_price", "template.type"]
        while True:
            page = await self.rpc.model(
                "product.product",
                "search_read",
                [("code", "!=", None), ("template.type", "=", "goods")],
                offset,
                PAGE,
                [("id", "ASC")],
                fields,
                ctx={"active_test": False},
            )
            for p in page:
                template = p["template."]
                rows.append(
                    {
                        "sku": p["code"],
                        "title": template["name"],
                        "price": template["list_price"] if template["list_price"] is not None else "0",
                        "currency": currency["code"],
                        "active": bool(p["active"]),
                    }
                )
                refs.products[p["code"]] = p["id"]
                refs.skus[p["id"]] = p["code"]
            if len(page) < PAGE:
                break
            offset += PAGE
        return await in_thread(SYSTEM, lambda: import_products(self.store, rows))
