"""Master data for workflow tests: a few products and their stock in two warehouses."""

from __future__ import annotations

from adapters.erp.catalog import import_products, import_stock
from store.db import Store

PRODUCTS = [("TEE-BLK-M", "25.00"), ("MUG-01", "12.50"), ("HAT-RED", "18.00")]
STOCK = [
    ("TEE-BLK-M", "WH-EAST", 10),
    ("MUG-01", "WH-EAST", 100),
    ("HAT-RED", "WH-EAST", 3),
    ("HAT-RED", "WH-WEST", 3),
]


def seed_catalog(store: Store, extra: list[tuple[str, str, str, int]] | None = None) -> None:
    """Import the test catalog; ``extra`` adds (sku, price, location, on_hand) rows."""
    products = list(PRODUCTS) + [(sku, price) for sku, price, _, _ in extra or []]
    stock = list(STOCK) + [(sku, loc, qty) for sku, _, loc, qty in extra or []]
    import_products(
        store, [{"sku": s, "title": f"Product {s}", "price": p, "currency": "USD"} for s, p in products]
    )
    import_stock(store, [{"sku": s, "location": loc, "on_hand": q} for s, loc, q in stock])
