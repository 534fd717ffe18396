"""Reconciliation: scheduled comparisons of the systems, and the healing of what is safe to heal.

``ReconcileOrders`` (every 15 minutes): the channel's orders updated in the window against the
platform's workflows and the ERP's orders; lost webhooks are ingested. ``ReconcileInventory``
(hourly): what each channel shows against the ledger; drift is pushed back. ``ReconcileSettlement``
(daily): captures and refunds against invoices.

The work is paged inside activities, which return summaries: a run's history holds a few events
per batch of pages, whatever the volume. Each run answers a ``progress`` query.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import names
    from orchestration.reconcile_models import (
        InventoryPage,
        InventoryResult,
        OrdersResult,
        ReconcileInput,
        ReconcileProgress,
        ReconcileReport,
        SettlementResult,
        StageChunk,
        Window,
    )

__all__ = ["ReconcileInventory", "ReconcileOrders", "ReconcileSettlement"]

# Reading other systems fails for a while (a channel's rate limit, an outage): keep retrying with
# backoff; the next scheduled run would start from the same watermark anyway.
_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=60), maximum_attempts=20)


@workflow.defn
class ReconcileOrders:
    @workflow.init
    def __init__(self, inp: ReconcileInput) -> None:
        self._progress = ReconcileProgress(kind="orders")

    @workflow.query
    def progress(self) -> ReconcileProgress:
        return self._progress

    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileReport:
        p = inp.policy
        report = ReconcileReport(kind="orders")
        for channel in inp.channels:
            self._progress = ReconcileProgress(kind="orders", phase="window", channel=channel)
            window: Window = await workflow.execute_activity(
                names.RECONCILE_ORDERS_WINDOW,
                args=[channel, inp.since, p],
                result_type=Window,
                summary=f"Window to compare for {channel}",
                **p.activity_options(_RETRY),
            )
            self._progress.phase, self._progress.total = "listing", window.expected
            run_key = f"{workflow.info().run_id}:{channel}"
            cursor: str | None = None
            while True:
                chunk: StageChunk = await workflow.execute_activity(
                    names.RECONCILE_ORDERS_STAGE,
                    args=[run_key, channel, window, cursor, p],
                    result_type=StageChunk,
                    summary=f"List {channel} orders updated since {window.since:%Y-%m-%d %H:%M}",
                    **p.activity_options(_RETRY),
                )
                self._progress.done += chunk.staged
                cursor = chunk.next_cursor
                if cursor is None:
                    break
            self._progress.phase = "comparing"
            result: OrdersResult = await workflow.execute_activity(
                names.RECONCILE_ORDERS_COMPARE,
                args=[run_key, channel, window, inp.since is None],
                result_type=OrdersResult,
                summary=f"Compare {channel} with the platform and the ERP; ingest lost orders",
                **p.activity_options(_RETRY),
            )
            report.orders.append(result)
        self._progress = self._progress.model_copy(update={"phase": "done", "finished": True})
        return report


@workflow.defn
class ReconcileInventory:
    @workflow.init
    def __init__(self, inp: ReconcileInput) -> None:
        self._progress = ReconcileProgress(kind="inventory")

    @workflow.query
    def progress(self) -> ReconcileProgress:
        return self._progress

    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileReport:
        p = inp.policy
        report = ReconcileReport(kind="inventory")
        for channel in inp.channels:
            self._progress = ReconcileProgress(kind="inventory", phase="comparing", channel=channel)
            total = InventoryResult(channel=channel)
            after: str | None = None
            while True:
                page: InventoryPage = await workflow.execute_activity(
                    names.RECONCILE_INVENTORY_PAGE,
                    args=[channel, after, p],
                    result_type=InventoryPage,
                    summary=f"Compare {channel} stock with the ledger after {after or 'the first SKU'}",
                    **p.activity_options(_RETRY),
                )
                total.compared += page.compared
                total.matching += page.matching
                total.drifted += page.drifted
                total.healed += page.healed
                total.findings_new += page.findings_new
                self._progress.done = total.compared
                after = page.next_after
                if after is None:
                    break
            result: InventoryResult = await workflow.execute_activity(
                names.RECONCILE_INVENTORY_RECORD,
                total,
                result_type=InventoryResult,
                summary=f"Record {channel} inventory accuracy",
                **p.activity_options(_RETRY),
            )
            report.inventory.append(result)
        self._progress = self._progress.model_copy(update={"phase": "done", "finished": True})
        return report


@workflow.defn
class ReconcileSettlement:
    @workflow.init
    def __init__(self, inp: ReconcileInput) -> None:
        self._progress = ReconcileProgress(kind="settlement")

    @workflow.query
    def progress(self) -> ReconcileProgress:
        return self._progress

    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileReport:
        p = inp.policy
        self._progress.phase = "comparing"
        result: SettlementResult = await workflow.execute_activity(
            names.RECONCILE_SETTLEMENT,
            args=[inp.since, p],
            result_type=SettlementResult,
            summary="Compare captures and refunds with invoices",
            **p.activity_options(_RETRY),
        )
        self._progress = self._progress.model_copy(
            update={"phase": "done", "finished": True, "done": result.orders, "total": result.orders}
        )
        return ReconcileReport(kind="settlement", settlement=result)
