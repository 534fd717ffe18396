"""Builds the Temporal worker: workflows, activities, data converter, interceptors, metrics.
`retail worker` runs it.

Scale out by running more processes (`docker compose up --scale worker=3`): they share the
task queue, and every activity is idempotent, so any worker may pick up any step.

Observability (docs/observability.md):

- Metrics: ``run_worker`` connects through a Temporal ``Runtime`` that serves Prometheus metrics
  on ``RETAIL_WORKER_METRICS_ADDRESS`` (default 127.0.0.1:9464; empty disables it): the SDK's
  own (``temporal_*``) and the business metrics the workflows record (``retail_*``).
- Logs: ``CorrelationInterceptor`` carries the order's correlation ID (its ``CorrelationId``
  search attribute: the webhook delivery or Idempotency-Key that brought the order in) from the
  workflow to each activity in a header, and binds it, with the workflow, run and activity IDs,
  to structlog's context for the activity's duration: every log line of the activity and of the
  adapters it calls carries them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

import tracing
from activities.erp_stock import ErpStockActivities
from activities.inventory import InventoryActivities
from activities.orders import Adapters, OrderActivities
from activities.poll import PollActivities
from activities.reconcile import ReconcileActivities
from activities.returns import ReturnActivities
from orchestration import search_attributes as sa
from orchestration.metrics import prometheus_config
from settings import Settings
from workflows.erp_stock import ErpStockSync
from workflows.inventory import ChannelInventorySync, InventoryAdjustment
from workflows.order_to_cash import OrderToCash
from workflows.poll import PollOrders
from workflows.reconcile import ReconcileInventory, ReconcileOrders, ReconcileSettlement
from workflows.return_to_refund import ReturnToRefund

WORKFLOWS = [
    OrderToCash,
    ReturnToRefund,
    InventoryAdjustment,
    ChannelInventorySync,
    ReconcileOrders,
    ReconcileInventory,
    ReconcileSettlement,
    PollOrders,
    ErpStockSync,
]

CORRELATION_HEADER = "retail-correlation-id"

log = structlog.get_logger("worker")


# -- correlation ID: workflow -> activity header -> structlog context ---------------------------
class _CorrelationOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        cid = workflow.info().typed_search_attributes.get(sa.CORRELATION_ID)
        if cid:
            payload = workflow.payload_converter().to_payload(cid)
            input.headers = {**input.headers, CORRELATION_HEADER: payload}
        return super().start_activity(input)


class _CorrelationWorkflowInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_CorrelationOutbound(outbound))


class _CorrelationActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        header = input.headers.get(CORRELATION_HEADER)
        cid = activity.payload_converter().from_payload(header, str) if header is not None else None
        # Activities run in their own asyncio task: the binding ends with the activity.
        with structlog.contextvars.bound_contextvars(
            correlation_id=cid,
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
            activity=info.activity_type,
            activity_id=info.activity_id,
            attempt=info.attempt,
        ):
            return await super().execute_activity(input)


class CorrelationInterceptor(Interceptor):
    """Bind the order's correlation ID and the workflow/run/activity IDs to every log line of
    an activity. Headers create no commands of their own: recorded histories still replay."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CorrelationActivityInbound(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _CorrelationWorkflowInbound


# -- the worker ----------------------------------------------------------------------------------
def build_worker(client: Client, settings: Settings, adapters: Adapters) -> Worker:
    activities = OrderActivities(adapters).all() + ReturnActivities(adapters).all()
    activities += ErpStockActivities(adapters).all()
    if adapters.ledger is not None and adapters.store is not None:
        activities += InventoryActivities(
            adapters.store,
            adapters.ledger,
            adapters.channel,
            journal_channel_sales=settings.inventory_journal_channel_sales,
        ).all()
        activities += ReconcileActivities(
            adapters.store, adapters.ledger, adapters.channel, client, settings
        ).all()
        activities += PollActivities(adapters.store, adapters.channel, client, settings).all()
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities,
        interceptors=[CorrelationInterceptor()],
        max_concurrent_activities=50,
    )


def worker_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics on ``settings.worker_metrics_address``
    (None when it is empty: the SDK's default runtime, no metrics endpoint). A client
    connected with it reports the metrics of every worker built on that client.

    When the address is taken (a second `retail worker` on the same host) the worker still
    runs, without metrics, and says so."""
    address = settings.worker_metrics_address
    if not address:
        return None
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=prometheus_config(address)))
    except ValueError as exc:  # "Failed starting Prometheus exporter: Address already in use"
        log.warning(
            "worker metrics not served: set RETAIL_WORKER_METRICS_ADDRESS to a free host:port, or empty",
            address=address,
            error=str(exc),
        )
        return None


async def connect_worker_client(settings: Settings, runtime: Runtime | None = None) -> Client:
    """Like ``orchestration.client.connect``, on the given runtime (metrics) when there is one."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime or Runtime.default(),
        interceptors=tracing.client_interceptors(settings),  # workers built on it inherit them
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    from activities.routing import build_adapters, start_adapters
    from backoffice.bootstrap import open_store
    from orchestration.client import ensure_inventory_syncs
    from workflows.schedules import apply_schedules

    store = open_store(settings.store_url)
    runtime = worker_runtime(settings)
    client = await connect_worker_client(settings, runtime)
    adapters = build_adapters(settings, store)
    await start_adapters(adapters)
    worker = build_worker(client, settings, adapters)
    await ensure_inventory_syncs(client, settings)
    if settings.reconcile_schedules:
        await apply_schedules(client, settings)
    log.info(
        "worker started",
        task_queue=settings.task_queue,
        temporal=settings.temporal_address,
        metrics=f"http://{settings.worker_metrics_address}/metrics" if runtime else None,
    )
    try:
        if stop is None:
            await worker.run()
        else:
            async with worker:
                await stop.wait()
    finally:
        store.dispose()
