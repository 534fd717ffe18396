"""Business metrics of the order workflows, and gauges of where orders stand right now.

Two sources, each for what it is good at (see docs/observability.md):

- Events and durations (``OrderMetrics``) are recorded by ``OrderToCash`` through
  ``workflow.metric_meter()``: replay-safe (nothing is recorded while a worker replays a
  history, so a restart never counts an order twice) and no history events. The worker exports
  them with the Temporal SDK's own metrics on its Prometheus endpoint (``prometheus_config``).
- States (how many orders need attention, by reason; how many wait for the ERP) are counted
  from Temporal visibility (``visibility_gauges``), so they are right whichever worker or
  replica processed the orders, and survive restarts. ``VisibilityCollector`` serves them as
  prometheus_client gauges, refreshed in the background (a scrape never waits for Temporal).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Literal, TypedDict, get_args

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import MetricHistogramFloat, MetricMeter
from temporalio.runtime import PrometheusConfig

from canonical import OrderStatus
from canonical.returns import ReturnStatus
from orchestration import search_attributes as sa

log = structlog.get_logger("metrics")

# -- recorded by the workflow (exported by the worker) -----------------------------------------
# Every series also carries the SDK's labels: namespace, task_queue, workflow_type, service_name.
ERP_ACCEPTED_SECONDS = "retail_order_erp_accepted_seconds"
"""Histogram {channel}: order ingested (workflow started) -> the ERP accepted the sales order."""
SHIPPED_SECONDS = "retail_order_shipped_seconds"
"""Histogram {channel}: order ingested -> everything shipped."""
ATTENTION = "retail_order_attention"
"""Counter {channel, reason}: an order entered NeedsAttention (exported as ``..._total``)."""
RECOVERY_SECONDS = "retail_order_attention_recovery_seconds"
"""Histogram {channel, reason, resolution}: NeedsAttention entered -> resolved (retry, skip,
cancel, or ``resolved`` by an event such as a late shipment)."""
COMPLETED = "retail_orders_completed"
"""Counter {channel}: orders completed (exported as ``..._total``)."""
CANCELLED = "retail_orders_cancelled"
"""Counter {channel}: orders cancelled, compensation done (exported as ``..._total``)."""

RETURN_CYCLE_SECONDS = "retail_return_cycle_seconds"
"""Histogram {channel}: return requested -> refunded (the return cycle time KPI)."""
RETURNS_ENDED = "retail_returns_ended"
"""Counter {channel, status}: returns refunded, rejected, expired or cancelled (``..._total``)."""
RETURN_ATTENTION = "retail_return_attention"
"""Counter {channel, reason}: a return entered NeedsAttention (exported as ``..._total``)."""

VENDOR_UNAVAILABLE = "retail_vendor_unavailable"
"""Counter {system}: a vendor call failed transiently (down, slow, busy, rate limited): the
activity retries and the order waits. ``system="erp"`` is the ERP (``..._total``)."""

INVENTORY_SYNC_LAG_SECONDS = "retail_inventory_sync_lag_seconds"
"""Histogram {channel}: ledger change journalled -> the channel acknowledged the new number (one
observation per push; recorded by the push activity, labelled with the SDK's activity labels)."""

# -- counted from visibility (served by VisibilityCollector) -----------------------------------
OPEN = "retail_orders_open"
"""Gauge {status}: running orders per OrderStatus."""
NEEDS_ATTENTION = "retail_orders_needs_attention"
"""Gauge {reason}: running orders waiting for an operator, per AttentionReason."""
AWAITING_ERP = "retail_orders_awaiting_erp"
"""Gauge: running orders the ERP has not acknowledged yet (OrderStatus Received or Processing)."""
RETURNS_OPEN = "retail_returns_open"
"""Gauge {status}: running returns per ReturnStatus (the returns backlog)."""
VISIBILITY_REFRESHED = "retail_visibility_last_refresh_timestamp_seconds"
"""Gauge: when the visibility gauges were last counted (Unix time): alert when it is stale."""
VISIBILITY_ERRORS = "retail_visibility_refresh_errors"
"""Counter: failed refreshes of the visibility gauges (exported as ``..._total``)."""

WORKER_METRICS: dict[str, str] = {
    ERP_ACCEPTED_SECONDS: "histogram",
    SHIPPED_SECONDS: "histogram",
    f"{ATTENTION}_total": "counter",
    RECOVERY_SECONDS: "histogram",
    f"{COMPLETED}_total": "counter",
    f"{CANCELLED}_total": "counter",
    RETURN_CYCLE_SECONDS: "histogram",
    f"{RETURNS_ENDED}_total": "counter",
    f"{RETURN_ATTENTION}_total": "counter",
    INVENTORY_SYNC_LAG_SECONDS: "histogram",
    f"{VENDOR_UNAVAILABLE}_total": "counter",
}
"""Exported names of the workflow's metrics on the worker's /metrics."""
VISIBILITY_METRICS: dict[str, str] = {
    OPEN: "gauge",
    NEEDS_ATTENTION: "gauge",
    AWAITING_ERP: "gauge",
    RETURNS_OPEN: "gauge",
    VISIBILITY_REFRESHED: "gauge",
    f"{VISIBILITY_ERRORS}_total": "counter",
}
"""Exported names of the visibility gauges (on the /metrics of whoever registers the collector)."""

# From a few seconds (an order straight through) to a week (backorders, slow warehouses).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 172800, 345600, 604800,
)  # fmt: skip

# Channel pushes take a debounce (1 s) plus a call: seconds normally, minutes when rate limited.
SYNC_LAG_BUCKETS_S: tuple[float, ...] = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400)

Resolution = Literal["retry", "skip", "cancel", "approve", "resolved"]


def prometheus_config(bind_address: str) -> PrometheusConfig:
    """The worker's exporter: SDK metrics plus the business metrics above on
    ``http://<bind_address>/metrics``. Counters end in ``_total`` and durations are seconds,
    as with prometheus_client in the API."""
    return PrometheusConfig(
        bind_address=bind_address,
        counters_total_suffix=True,
        durations_as_seconds=True,
        histogram_bucket_overrides={
            **{
                name: LATENCY_BUCKETS_S
                for name in (ERP_ACCEPTED_SECONDS, SHIPPED_SECONDS, RECOVERY_SECONDS, RETURN_CYCLE_SECONDS)
            },
            INVENTORY_SYNC_LAG_SECONDS: SYNC_LAG_BUCKETS_S,
        },
    )


class OrderMetrics:
    """What one OrderToCash run records. Call only from workflow code."""

    def __init__(self, channel: str) -> None:
        meter = workflow.metric_meter().with_additional_attributes({"channel": channel})
        self._erp_accepted = meter.create_histogram_float(
            ERP_ACCEPTED_SECONDS, "Order ingested to sales order accepted by the ERP", "s"
        )
        self._shipped = meter.create_histogram_float(SHIPPED_SECONDS, "Order ingested to fully shipped", "s")
        self._attention = meter.create_counter(ATTENTION, "Orders that entered NeedsAttention, by reason")
        self._recovery = meter.create_histogram_float(
            RECOVERY_SECONDS, "NeedsAttention entered to resolved, by reason and resolution", "s"
        )
        self._completed = meter.create_counter(COMPLETED, "Orders completed")
        self._cancelled = meter.create_counter(CANCELLED, "Orders cancelled")

    @staticmethod
    def _since(start: datetime) -> float:
        return max(0.0, (workflow.now() - start).total_seconds())

    def _age(self) -> float:
        """Seconds since the order was ingested (its workflow started)."""
        return self._since(workflow.info().workflow_start_time)

    def erp_accepted(self) -> None:
        self._erp_accepted.record(self._age())

    def shipped(self) -> None:
        self._shipped.record(self._age())

    def completed(self) -> None:
        self._completed.add(1)

    def cancelled(self) -> None:
        self._cancelled.add(1)

    def attention_entered(self, reason: str) -> None:
        self._attention.add(1, {"reason": reason})

    def attention_resolved(self, reason: str, since: datetime, resolution: Resolution) -> None:
        self._recovery.record(self._since(since), {"reason": reason, "resolution": resolution})


def sync_lag_histogram(meter: MetricMeter, channel: str) -> MetricHistogramFloat:
    """``retail_inventory_sync_lag_seconds{channel}`` on ``meter`` (an activity's or a workflow's)."""
    return meter.with_additional_attributes({"channel": channel}).create_histogram_float(
        INVENTORY_SYNC_LAG_SECONDS, "Ledger change to the channel's acknowledgement", "s"
    )


class ReturnMetrics:
    """What one ReturnToRefund run records. Call only from workflow code."""

    def __init__(self, channel: str) -> None:
        meter = workflow.metric_meter().with_additional_attributes({"channel": channel})
        self._cycle = meter.create_histogram_float(RETURN_CYCLE_SECONDS, "Return requested to refunded", "s")
        self._ended = meter.create_counter(RETURNS_ENDED, "Returns ended, by final status")
        self._attention = meter.create_counter(RETURN_ATTENTION, "Returns that entered NeedsAttention")

    def refunded(self, requested_at: datetime) -> None:
        self._cycle.record(max(0.0, (workflow.now() - requested_at).total_seconds()))
        self._ended.add(1, {"status": "Refunded"})

    def ended(self, status: str) -> None:
        self._ended.add(1, {"status": status})

    def attention_entered(self, reason: str) -> None:
        self._attention.add(1, {"reason": reason})


# -- visibility --------------------------------------------------------------------------------
ORDER_STATUSES: tuple[str, ...] = get_args(OrderStatus)
OPEN_RETURN_STATUSES: tuple[str, ...] = tuple(
    s for s in get_args(ReturnStatus) if s not in ("Refunded", "Rejected", "Expired", "Cancelled")
)
OPEN_STATUSES: tuple[str, ...] = tuple(s for s in ORDER_STATUSES if s not in ("Completed", "Cancelled"))
AWAITING_ERP_STATUSES: tuple[str, ...] = ("Received", "Processing")
RUNNING = 'ExecutionStatus = "Running"'
MAX_LISTED = 10_000


def order_query(*conditions: str, scope: str | None = None) -> str:
    """A visibility query over order workflows: the conditions ANDed, and ``scope`` (any extra
    filter, e.g. ``Channel = "shopify"`` or a task queue) in parentheses."""
    parts = ['WorkflowType = "OrderToCash"', *conditions]
    if scope:
        parts.append(f"({scope})")
    return " AND ".join(parts)


async def count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def attention_by_reason(client: Client, scope: str | None = None) -> dict[str, int]:
    """Running orders waiting for an operator, per AttentionReason. Temporal counts GROUP BY
    ExecutionStatus only, so the (few) stuck orders are listed and grouped here."""
    reasons: dict[str, int] = {}
    q = order_query(RUNNING, 'OrderStatus = "NeedsAttention"', scope=scope)
    async for wf in client.list_workflows(q, limit=MAX_LISTED):
        reason = wf.typed_search_attributes.get(sa.ATTENTION_REASON) or "unknown"
        reasons[reason] = reasons.get(reason, 0) + 1
    return dict(sorted(reasons.items()))


class VisibilityGauges(TypedDict):
    open_by_status: dict[str, int]
    """Running orders per OrderStatus (every open status, zeros included)."""
    needs_attention_by_reason: dict[str, int]
    """Running orders in NeedsAttention per AttentionReason (reasons with none are absent)."""
    awaiting_erp: int
    """Running orders the ERP has not acknowledged yet."""
    returns_open_by_status: dict[str, int]
    """Running returns per ReturnStatus (every open status, zeros included)."""


async def visibility_gauges(client: Client, scope: str | None = None) -> VisibilityGauges:
    """Where orders stand, from Temporal visibility (lags the workflows by a second or so)."""
    returns_q = 'WorkflowType = "ReturnToRefund" AND ' + RUNNING + (f" AND ({scope})" if scope else "")
    counts, reasons, returns = await asyncio.gather(
        asyncio.gather(
            *(count(client, order_query(RUNNING, f'OrderStatus = "{s}"', scope=scope)) for s in OPEN_STATUSES)
        ),
        attention_by_reason(client, scope),
        asyncio.gather(
            *(count(client, f'{returns_q} AND ReturnStatus = "{s}"') for s in OPEN_RETURN_STATUSES)
        ),
    )
    by_status = dict(zip(OPEN_STATUSES, counts, strict=True))
    return VisibilityGauges(
        open_by_status=by_status,
        needs_attention_by_reason=reasons,
        awaiting_erp=sum(by_status[s] for s in AWAITING_ERP_STATUSES),
        returns_open_by_status=dict(zip(OPEN_RETURN_STATUSES, returns, strict=True)),
    )


ClientSource = Client | Callable[[], Awaitable[Client]]
"""A client, or how to get one (e.g. the API's lazily connecting ``gateway.client``)."""


class VisibilityCollector(Collector):
    """The visibility gauges for a prometheus_client registry.

    ``collect()`` serves the last counts and never blocks on Temporal (a scrape may run on the
    event loop's own thread); ``run()`` refreshes them every ``refresh_s`` seconds. Before the
    first refresh only the error counter is served."""

    def __init__(self, client: ClientSource, *, scope: str | None = None, refresh_s: float = 30.0) -> None:
        self._client = client
        self.scope = scope
        self.refresh_s = refresh_s
        self._snapshot: VisibilityGauges | None = None
        self._refreshed_at: float | None = None
        self._errors = 0
        self._task: asyncio.Task[None] | None = None
        self._registry: CollectorRegistry | None = None

    async def _get_client(self) -> Client:
        return self._client if isinstance(self._client, Client) else await self._client()

    async def refresh(self) -> VisibilityGauges:
        try:
            snapshot = await visibility_gauges(await self._get_client(), self.scope)
        except Exception:
            self._errors += 1
            raise
        self._snapshot, self._refreshed_at = snapshot, time.time()
        return snapshot

    async def run(self) -> None:
        """Refresh forever; a failed refresh is logged and counted, the last counts stay."""
        while True:
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("visibility gauges not refreshed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.refresh_s)

    def start(self, registry: CollectorRegistry) -> None:
        """Register with ``registry`` and refresh in a task on the running event loop."""
        registry.register(self)
        self._registry = registry
        self._task = asyncio.get_running_loop().create_task(self.run(), name="visibility-gauges")

    async def aclose(self) -> None:
        """Stop refreshing and unregister."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._registry is not None:
            self._registry.unregister(self)
            self._registry = None

    def describe(self) -> Iterator[Metric]:
        # The names, without touching Temporal: lets the registry refuse duplicates up front.
        yield GaugeMetricFamily(OPEN, "Running orders per OrderStatus", labels=["status"])
        yield GaugeMetricFamily(NEEDS_ATTENTION, "Running orders waiting for an operator", labels=["reason"])
        yield GaugeMetricFamily(AWAITING_ERP, "Running orders not yet acknowledged by the ERP")
        yield GaugeMetricFamily(RETURNS_OPEN, "Running returns per ReturnStatus", labels=["status"])
        yield GaugeMetricFamily(VISIBILITY_REFRESHED, "When the visibility gauges were last counted")
        yield CounterMetricFamily(VISIBILITY_ERRORS, "Failed refreshes of the visibility gauges")

    def collect(self) -> Iterator[Metric]:
        snapshot, refreshed_at = self._snapshot, self._refreshed_at
        errors = CounterMetricFamily(VISIBILITY_ERRORS, "Failed refreshes of the visibility gauges")
        errors.add_metric([], self._errors)
        yield errors
        if snapshot is None or refreshed_at is None:
            return
        open_orders = GaugeMetricFamily(OPEN, "Running orders per OrderStatus", labels=["status"])
        for status, n in snapshot["open_by_status"].items():
            open_orders.add_metric([status], n)
        yield open_orders
        attention = GaugeMetricFamily(
            NEEDS_ATTENTION, "Running orders waiting for an operator", labels=["reason"]
        )
        for reason, n in snapshot["needs_attention_by_reason"].items():
            attention.add_metric([reason], n)
        yield attention
        yield GaugeMetricFamily(
            AWAITING_ERP, "Running orders not yet acknowledged by the ERP", value=snapshot["awaiting_erp"]
        )
        backlog = GaugeMetricFamily(RETURNS_OPEN, "Running returns per ReturnStatus", labels=["status"])
        for status, n in snapshot["returns_open_by_status"].items():
            backlog.add_metric([status], n)
        yield backlog
        yield GaugeMetricFamily(
            VISIBILITY_REFRESHED, "When the visibility gauges were last counted", value=refreshed_at
        )


def register_visibility_collector(
    registry: CollectorRegistry, client: ClientSource, *, scope: str | None = None, refresh_s: float = 30.0
) -> VisibilityCollector:
    """Serve the visibility gauges from ``registry``, refreshed in the background. Call it on
    the running event loop (e.g. in a FastAPI lifespan) and ``await collector.aclose()`` on
    shutdown."""
    collector = VisibilityCollector(client, scope=scope, refresh_s=refresh_s)
    collector.start(registry)
    return collector
