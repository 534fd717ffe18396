"""What the ERP stock sync reports (workflow result, activity result)."""

from __future__ import annotations

from pydantic import BaseModel


class ErpStockSyncResult(BaseModel):
    erp: str
    moves: int  # ERP moves read in this run
    skus: list[str]  # SKUs whose ledger position changed
    products_created: int = 0  # item master rows the ERP's catalog added
    products_updated: int = 0
