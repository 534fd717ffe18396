"""What the adapter needs to find in Tryton before it books anything: the company's currency,
accounts and journal, the unit, the customer location, one warehouse per platform location and
a product per SKU. Read once at start (warehouses and products on demand after that), created
where missing, so an existing Tryton needs nothing but a company and a chart of accounts.

A warehouse the adapter creates ships in one step (its storage is also its input and output):
a customer shipment goes waiting -> assigned -> packed -> done. A platform location whose
existing Tryton warehouse has a separate output zone (two-step shipping) is refused at start:
the adapter reads reservations and mirrors stock on one-step warehouses only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.erp.tryton.rpc import TrytonRpc
from adapters.errors import PermanentError

SHIPPING_CODE = "SHIPPING"
TAX_CODE = "SALES-TAX"
TAX_ACCOUNT_CODE = "2.2.3"
SYSTEM = "erp"


@dataclass(frozen=True)
class Warehouse:
    location: str
    id: int
    storage: int
    output: int

    @property
    def one_step(self) -> bool:
        return self.storage == self.output


@dataclass
class Refs:
    company: int
    currency: int
    unit: int
    goods_category: int
    customer_location: int
    lost_found: int
    journal: int
    receivable: int
    revenue: int
    tax_account: int
    shipping_product: int | None
    amendments: bool = False  # sale_amendment is active: a processing sale can be edited
    warehouses: dict[str, Warehouse] = field(default_factory=dict)
    products: dict[str, int] = field(default_factory=dict)  # SKU -> product.product id
    skus: dict[int, str] = field(default_factory=dict)  # product.product id -> SKU
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def by_storage(self) -> dict[int, Warehouse]:
        return {w.storage: w for w in self.warehouses.values()}

    def by_id(self) -> dict[int, Warehouse]:
        return {w.id: w for w in self.warehouses.values()}


async def _one(rpc: TrytonRpc, model: str, domain: list[Any], what: str) -> int:
    ids: list[int] = await rpc.model(model, "search", domain, 0, 1, None)
    if not ids:
        raise PermanentError(f"Tryton has no {what}: set it up first", system=SYSTEM, reason="erp_setup")
    return ids[0]


async def load_refs(rpc: TrytonRpc) -> Refs:
    company = rpc.context.get("company")
    if not company:
        raise PermanentError(
            "the Tryton user has no company: create one in Tryton", system=SYSTEM, reason="erp_setup"
        )
    (co,) = await rpc.model("company.company", "read", [company], ["currency"])
    (config,) = await rpc.model("account.configuration", "read", [1], ["default_account_receivable"])
    categories = await rpc.search_read(
        "product.category", [("accounting", "=", True)], ["account_revenue"], order=[("id", "ASC")], limit=1
    )
    if not categories or not config["default_account_receivable"]:
        raise PermanentError(
            "Tryton has no chart of accounts (receivable, an accounting product category)",
            system=SYSTEM,
            reason="erp_setup",
        )
    goods = categories[0]
    shipping = await rpc.model("product.product", "search", [("code", "=", SHIPPING_CODE)], 0, 1, None)
    tax_accounts = await rpc.model("account.account", "search", [("code", "=", TAX_ACCOUNT_CODE)], 0, 1, None)
    refs = Refs(
        company=company,
        currency=co["currency"],
        unit=await _one(rpc, "product.uom", [("name", "=", "Unit")], "unit of measure 'Unit'"),
        goods_category=goods["id"],
        customer_location=await _one(rpc, "stock.location", [("type", "=", "customer")], "customer location"),
        lost_found=await _one(
            rpc, "stock.location", [("type", "=", "lost_found")], "lost and found location"
        ),
        journal=await _one(rpc, "account.journal", [("type", "=", "revenue")], "revenue journal"),
        receivable=config["default_account_receivable"],
        revenue=goods["account_revenue"],
        tax_account=tax_accounts[0] if tax_accounts else goods["account_revenue"],
        shipping_product=shipping[0] if shipping else None,
        amendments=bool(await rpc.model("ir.model", "search", [("name", "=", "sale.amendment")], 0, 1, None)),
    )
    for w in await rpc.search_read(
        "stock.location", [("type", "=", "warehouse")], ["code", "storage_location", "output_location"]
    ):
        if w["code"]:
            refs.warehouses[w["code"]] = Warehouse(
                w["code"], w["id"], w["storage_location"], w["output_location"]
            )
    return refs


async def ensure_warehouse(rpc: TrytonRpc, refs: Refs, location: str) -> Warehouse:
    """The warehouse whose code is the platform location, created (one-step) if missing."""
    found = refs.warehouses.get(location)
    if found is not None:
        return found
    async with refs.lock:
        found = refs.warehouses.get(location)
        if found is not None:
            return found
        (storage,) = await rpc.model(
            "stock.location",
            "create",
            [{"name": f"{location} storage", "code": f"{location}-STO", "type": "storage"}],
        )
        (wh,) = await rpc.model(
            "stock.location",
            "create",
            [
                {
                    "name": location,
                    "code": location,
                    "type": "warehouse",
                    "storage_location": storage,
                    "input_location": storage,
                    "output_location": storage,
                    "lost_found_location": refs.lost_found,
                }
            ],
        )
        await rpc.model("stock.location", "write", [storage], {"parent": wh})
        refs.warehouses[location] = Warehouse(location, wh, storage, storage)
        return refs.warehouses[location]


async def product_ids(rpc: TrytonRpc, refs: Refs, skus: list[str]) -> dict[str, int]:
    """Tryton's product per SKU (code); SKUs Tryton does not sell are left out."""
    missing = sorted({s for s in skus if s not in refs.products})
    if missing:
        for p in await rpc.search_read("product.product", [("code", "in", missing)], ["code"]):
            refs.products[p["code"]] = p["id"]
            refs.skus[p["id"]] = p["code"]
    return {s: refs.products[s] for s in skus if s in refs.products}


async def ensure_products(rpc: TrytonRpc, refs: Refs, items: list[tuple[str, str, Decimal]]) -> int:
    """Create the goods products (code = SKU) Tryton does not have yet; returns how many."""
    have = await product_ids(rpc, refs, [sku for sku, _, _ in items])
    new = [
        {
            "name": title,
            "code": sku,
            "type": "goods",
            "salable": True,
            "default_uom": refs.unit,
            "sale_uom": refs.unit,
            "list_price": price,
            "account_category": refs.goods_category,
            "products": [["create", [{}]]],
        }
        for sku, title, price in items
        if sku not in have
    ]
    for start in range(0, len(new), 100):
        await rpc.model("product.template", "create", new[start : start + 100])
    await product_ids(rpc, refs, [sku for sku, _, _ in items])
    return len(new)
