"""ErpStockSync: one run of "what moved inside the ERP", on a Temporal Schedule (``erp-stock``,
every ``RETAIL_ERP_STOCK_SYNC_EVERY_S``) when the ERP keeps its own stock (Tryton)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import names
    from orchestration.erp_stock_models import ErpStockSyncResult


@workflow.defn
class ErpStockSync:
    @workflow.run
    async def run(self) -> ErpStockSyncResult:
        # The ERP down: retried for a while, then the next scheduled run starts from the same
        # watermark anyway.
        result: ErpStockSyncResult = await workflow.execute_activity(
            names.SYNC_ERP_STOCK,
            result_type=ErpStockSyncResult,
            start_to_close_timeout=timedelta(seconds=300),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10),
            summary="Mirror the ERP's own stock moves into the ledger",
        )
        return result
