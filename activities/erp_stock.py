"""What changed inside the ERP reaches the platform: its item master (``sync_catalog``), then its
stock (``sync_stock``: Tryton's done moves since a watermark), then a nudge to every channel's
inventory sync."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities import names
from activities.errors import adapter_errors
from activities.orders import Adapters, stock_moved
from orchestration.erp_stock_models import ErpStockSyncResult


class ErpStockActivities:
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    def all(self) -> list[Callable[..., Any]]:
        return [self.sync_erp_stock]

    @activity.defn(name=names.SYNC_ERP_STOCK)
    async def sync_erp_stock(self) -> ErpStockSyncResult:
        erp = self.adapters.erp
        sync = getattr(erp, "sync_stock", None)
        if sync is None:  # the builtin ERP's stock is the ledger itself
            return ErpStockSyncResult(erp=erp.name, moves=0, skus=[])
        with adapter_errors():
            # The item master first: a product new in the ERP must exist before its stock.
            catalog = getattr(erp, "sync_catalog", None)
            counts = await catalog() if catalog is not None else None
            moves, skus = await sync()
        if skus:
            await stock_moved(self.adapters)
        return ErpStockSyncResult(
            erp=erp.name,
            moves=moves,
            skus=skus,
            products_created=counts.created if counts else 0,
            products_updated=counts.updated if counts else 0,
        )
