"""`retail status`: the business at a glance, from Temporal visibility (lags a few seconds).

Counts are ``count_workflows`` queries (cheap at any volume); the stuck orders are listed to
group them by reason, and the orders completed in the window are listed for their durations.
Visibility knows when an order started and when its workflow closed (after delivery), not
when it shipped: the duration here is ingest -> completed; ingest -> shipped is the
``retail_order_shipped_seconds`` histogram on the worker's /metrics.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from temporalio.client import Client
from temporalio.service import RPCError

from cli.common import fail, run, temporal_client
from cli.output import print_json, print_table
from orchestration.metrics import MAX_LISTED, count, order_query, visibility_gauges

# Closed abnormally: an order workflow terminated by hand, failed or timed out (never by design).
_ABNORMAL = ("Terminated", "Failed", "TimedOut", "Canceled")


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def _completion_seconds(client: Client, query: str) -> list[float]:
    out: list[float] = []
    async for wf in client.list_workflows(query, limit=MAX_LISTED):
        if wf.start_time and wf.close_time:
            out.append((wf.close_time - wf.start_time).total_seconds())
    return sorted(out)


async def business_status(
    client: Client, *, window: timedelta, scope: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The KPIs as one JSON-able dict (what `retail status --json` prints)."""
    now = now or datetime.now(UTC)
    since = _rfc3339(now - window)

    def q(*conditions: str) -> str:
        return order_query(*conditions, scope=scope)

    gauges, by_execution, durations = await asyncio.gather(
        visibility_gauges(client, scope),
        client.count_workflows(q() + " GROUP BY ExecutionStatus"),
        _completion_seconds(client, q('OrderStatus = "Completed"', f'CloseTime >= "{since}"')),
    )
    completed, cancelled, ingested, done, undone = await asyncio.gather(
        count(client, q('OrderStatus = "Completed"')),
        count(client, q('OrderStatus = "Cancelled"')),
        count(client, q(f'StartTime >= "{since}"')),
        count(client, q('OrderStatus = "Completed"', f'CloseTime >= "{since}"')),
        count(client, q('OrderStatus = "Cancelled"', f'CloseTime >= "{since}"')),
    )
    executions = {str(g.group_values[0]): g.count for g in by_execution.groups}
    return {
        "as_of": _rfc3339(now),
        "scope": scope,
        "orders_by_status": {**gauges["open_by_status"], "Completed": completed, "Cancelled": cancelled},
        "running": executions.get("Running", 0),
        "closed_abnormally": sum(executions.get(s, 0) for s in _ABNORMAL),
        "needs_attention_by_reason": gauges["needs_attention_by_reason"],
        "awaiting_erp": gauges["awaiting_erp"],
        "window": {
            "hours": window.total_seconds() / 3600,
            "since": since,
            "ingested": ingested,
            "completed": done,
            "cancelled": undone,
            "ingest_to_completed_s": {
                "orders": len(durations),
                "p50": percentile(durations, 50),
                "p95": percentile(durations, 95),
            },
            "ingest_to_shipped_s": None,
        },
        "notes": [
            "orders_by_status counts running orders, plus all Completed and Cancelled ones in "
            "Temporal's retention",
            "ingest_to_shipped_s: visibility has no ship time; see retail_order_shipped_seconds "
            "on the worker's /metrics",
        ],
    }


def _seconds(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 120:
        return f"{v:.1f}s"
    if v < 7200:
        return f"{v / 60:.1f}min"
    return f"{v / 3600:.1f}h"


def _print(s: dict[str, Any]) -> None:
    w = s["window"]
    hours = f"{w['hours']:g}h"
    lat = w["ingest_to_completed_s"]
    rows: list[list[Any]] = [[f"orders {k}", v] for k, v in s["orders_by_status"].items()]
    rows += [[f"needs attention: {k}", v] for k, v in s["needs_attention_by_reason"].items()]
    rows += [
        ["awaiting ERP acknowledgement", s["awaiting_erp"]],
        ["closed abnormally (terminated/failed)", s["closed_abnormally"]],
        [f"ingested, last {hours}", w["ingested"]],
        [f"completed, last {hours}", w["completed"]],
        [f"cancelled, last {hours}", w["cancelled"]],
        [f"ingest -> completed p50, last {hours}", _seconds(lat["p50"])],
        [f"ingest -> completed p95, last {hours}", _seconds(lat["p95"])],
        ["ingest -> shipped", "see retail_order_shipped_seconds on the worker's /metrics"],
    ]
    title = f"Retail Connect at {s['as_of']}" + (f" ({s['scope']})" if s["scope"] else "")
    print_table(title, ["KPI", "value"], rows)


def status(
    window_hours: Annotated[float, typer.Option("--window-hours", help="the recent window, in hours")] = 24.0,
    query: Annotated[
        str | None, typer.Option(help='only orders matching this filter, e.g. Channel="shopify"')
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Business KPIs: orders by status, stuck orders by reason, orders ingested and completed in
    the last 24 h and how long they took (Temporal visibility: lags a few seconds)."""

    if window_hours <= 0:
        raise fail("--window-hours must be more than 0", 2)

    async def go() -> dict[str, Any]:
        return await business_status(
            await temporal_client(), window=timedelta(hours=window_hours), scope=query
        )

    try:
        s = run(go())
    except RPCError as exc:
        raise fail(f"cannot count orders: {exc.message}") from exc
    if as_json:
        print_json(s)
    else:
        _print(s)
