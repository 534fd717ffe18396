"""`retail orders`: find, inspect and fix orders."""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from canonical import Money, OrderState
from canonical.returns import ReturnState
from cli.common import fail, run, temporal_client, workflow_id
from cli.operator import act, operator_request
from cli.output import print_json, print_table
from cli.returns import return_states, returns_query
from orchestration import search_attributes as sa
from orchestration.models import OperatorRequest
from workflows.order_to_cash import OrderToCash

app = typer.Typer(help="Find, inspect and fix orders.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def list_query(
    status: str | None, channel: str | None, stuck: bool, since: datetime | None, query: str | None
) -> str:
    parts = ['WorkflowType = "OrderToCash"']
    if stuck:
        parts.append('OrderStatus = "NeedsAttention"')
    if status:
        parts.append(f'OrderStatus = "{status}"')
    if channel:
        parts.append(f'Channel = "{channel}"')
    if since:
        # Always RFC 3339 in UTC: a naive time is taken as UTC, an aware one converted (an offset
        # with seconds, which Python's isoformat() can produce, is not RFC 3339).
        utc = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        parts.append(f'StartTime >= "{utc.replace(tzinfo=None).isoformat()}Z"')
    if query:
        parts.append(f"({query})")
    return " AND ".join(parts)


async def _list(q: str, limit: int) -> list[dict[str, object]]:
    client = await temporal_client()
    rows: list[dict[str, object]] = []
    async for wf in client.list_workflows(q, limit=limit):
        attrs = wf.typed_search_attributes
        rows.append(
            {
                "workflow_id": wf.id,
                "order_id": attrs.get(sa.ORDER_ID),
                "channel": attrs.get(sa.CHANNEL),
                "status": attrs.get(sa.ORDER_STATUS),
                "attention": attrs.get(sa.ATTENTION_REASON),
                "erp_backend": attrs.get(sa.ERP_BACKEND),
                "started": wf.start_time.isoformat() if wf.start_time else None,
                "workflow_status": wf.status.name if wf.status else None,
            }
        )
    return rows


@app.command("list")
def list_orders(
    status: Annotated[str | None, typer.Option(help="OrderStatus, e.g. NeedsAttention, Completed")] = None,
    channel: Annotated[str | None, typer.Option(help="channel name, e.g. shopify")] = None,
    stuck: Annotated[bool, typer.Option("--stuck", help="only orders waiting for an operator")] = False,
    since: Annotated[
        datetime | None, typer.Option(help="started at or after (ISO 8601; UTC unless it has an offset)")
    ] = None,
    query: Annotated[str | None, typer.Option(help="extra Temporal list filter")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """List orders (Temporal visibility: lags a few seconds behind)."""
    q = list_query(status, channel, stuck, since, query)
    try:
        rows = run(_list(q, limit))
    except RPCError as exc:
        raise fail(f"cannot list orders: {exc.message}") from exc
    if as_json:
        print_json(rows)
        return
    print_table(
        f"{len(rows)} orders",
        ["order", "status", "attention", "channel", "ERP", "started"],
        [
            [r["order_id"], r["status"], r["attention"], r["channel"], r["erp_backend"], r["started"]]
            for r in rows
        ],
    )


async def _state(client: Client, wf_id: str) -> OrderState:
    return await client.get_workflow_handle_for(OrderToCash.run, wf_id).query(OrderToCash.state)


def _show_table(s: OrderState) -> None:
    print_table(
        f"{s.name or s.external_id} ({s.workflow_id})",
        ["field", "value"],
        [
            ["status", s.status],
            [
                "attention",
                f"{s.attention.reason} at {s.attention.step}: {s.attention.message}" if s.attention else "",
            ],
            ["waiting for", s.waiting_for],
            ["ERP order", f"{s.erp_order_id} ({s.erp_backend})" if s.erp_backend else s.erp_order_id],
            ["total", s.total],
            ["captured", s.captured],
            ["invoiced", s.invoiced],
            ["refunded", s.refunded],
            ["warehouse", ", ".join(f"{k}={v}" for k, v in s.fulfillments.items())],
            ["tracking", ", ".join(f"{k} ({v})" for k, v in s.tracking.items())],
            ["invoices", ", ".join(s.invoices)],
        ],
    )
    print_table(
        "steps",
        ["at", "step", "status", "detail"],
        [[st.at.isoformat(timespec="seconds"), st.step, st.status, st.detail] for st in s.steps],
    )
    if s.actions:
        print_table(
            "operator actions",
            ["at", "action", "operator", "reason", "reference"],
            [
                [a.at.isoformat(timespec="seconds"), a.action, a.operator, a.reason, a.reference]
                for a in s.actions
            ],
        )


@app.command("show")
def show(
    order: Annotated[str, typer.Argument(help="order key (shopify-1001) or workflow id")],
    as_json: JsonOpt = False,
) -> None:
    """One order's state: status, amounts, shipments, attention, operator actions."""

    async def go() -> tuple[OrderState, list[ReturnState]]:
        client = await temporal_client()
        state = await _state(client, workflow_id(order))
        return state, await return_states(client, returns_query(None, None, False, state.order_key), 100)

    try:
        s, returns = run(go())
    except WorkflowQueryFailedError as exc:
        raise fail(f"{order}: its workflow could not answer the query: {exc}") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise fail(f"no order {order}") from exc
        raise fail(f"cannot read {order}: {exc.message}") from exc
    if as_json:
        print_json({**s.model_dump(mode="json"), "returns": [r.model_dump(mode="json") for r in returns]})
        return
    _show_table(s)
    if returns:
        cur = s.total.currency
        refunded = Money.sum((r.refunded for r in returns if r.refunded is not None), cur)
        print_table(
            f"returns (refunded {refunded})",
            ["return", "status", "units", "credited", "refunded"],
            [
                [r.return_key, r.status, sum(ln.quantity for ln in r.lines), r.credited, r.refunded]
                for r in returns
            ],
        )


def _act(order: str, action: str, reason: str, operator: str | None, reference: str | None) -> None:
    update = {
        "retry": OrderToCash.retry,
        "skip": OrderToCash.skip,
        "cancel": OrderToCash.cancel,
        "approve": OrderToCash.approve,
    }[action]
    act(
        workflow_id(order),
        update,
        operator_request(reason, operator, reference),
        what=f"order {order}",
        action=action,
    )


ReasonOpt = Annotated[str, typer.Option("--reason", help="why (recorded in the order's history)")]
OperatorOpt = Annotated[str | None, typer.Option("--operator", help="who; default: the OS user")]


# -- bulk retry ---------------------------------------------------------------------------------
Outcome = Literal["retried", "refused", "failed"]
_QUERY_TIMEOUT = timedelta(seconds=5)


def stuck_query(query: str) -> str:
    """Running orders waiting for an operator that match the operator's filter."""
    return list_query(None, None, True, None, query) + ' AND ExecutionStatus = "Running"'


async def _stuck_orders(client: Client, query: str, limit: int, concurrency: int) -> list[dict[str, Any]]:
    """The matching stuck orders (visibility), with the step and message each is stuck on (a
    query per order; blank if the order cannot answer)."""
    rows: list[dict[str, Any]] = []
    async for wf in client.list_workflows(stuck_query(query), limit=limit):
        attrs = wf.typed_search_attributes
        rows.append(
            {
                "workflow_id": wf.id,
                "order_id": attrs.get(sa.ORDER_ID),
                "reason": attrs.get(sa.ATTENTION_REASON),
                "step": None,
                "message": None,
                "started": wf.start_time.isoformat() if wf.start_time else None,
            }
        )
    gate = asyncio.Semaphore(concurrency)

    async def describe(row: dict[str, Any]) -> None:
        async with gate:
            try:
                state = await client.get_workflow_handle_for(OrderToCash.run, row["workflow_id"]).query(
                    OrderToCash.state, rpc_timeout=_QUERY_TIMEOUT
                )
            except (RPCError, WorkflowQueryFailedError):
                return
        if state.attention is not None:
            row["reason"] = state.attention.reason
            row["step"], row["message"] = state.attention.step, state.attention.message

    await asyncio.gather(*(describe(r) for r in rows))
    return rows


async def _retry_one(client: Client, row: dict[str, Any], req: OperatorRequest) -> tuple[Outcome, str]:
    handle = client.get_workflow_handle_for(OrderToCash.run, row["workflow_id"])
    try:
        return "retried", await handle.execute_update(OrderToCash.retry, req)
    except WorkflowUpdateFailedError as exc:  # the validator said no: e.g. it moved on already
        return "refused", str(getattr(exc.cause, "message", None) or exc)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return "refused", "no longer running"
        return "failed", exc.message
    except Exception as exc:
        return "failed", f"{type(exc).__name__}: {exc}"


async def _retry_many(
    client: Client, rows: list[dict[str, Any]], req: OperatorRequest, concurrency: int
) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(concurrency)
    results: list[dict[str, Any]] = []
    columns = (TextColumn("retrying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("retry", total=len(rows))

        async def one(row: dict[str, Any]) -> None:
            async with gate:
                outcome, detail = await _retry_one(client, row, req)
            ids = {"order_id": row["order_id"], "workflow_id": row["workflow_id"]}
            results.append({**ids, "outcome": outcome, "detail": detail})
            progress.advance(task)

        await asyncio.gather(*(one(r) for r in rows))
    return sorted(results, key=lambda r: str(r["workflow_id"]))


def _bulk_retry(
    query: str, req: OperatorRequest, *, yes: bool, limit: int, concurrency: int, as_json: bool
) -> None:
    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        client = await temporal_client()
        rows = await _stuck_orders(client, query, limit, concurrency)
        return rows, (await _retry_many(client, rows, req, concurrency) if yes and rows else None)

    try:
        rows, results = run(go())
    except RPCError as exc:
        raise fail(f"cannot list orders: {exc.message}") from exc
    if results is None:  # the dry run
        if as_json:
            print_json({"dry_run": True, "query": stuck_query(query), "orders": rows})
            return
        print_table(
            f"{len(rows)} stuck orders would be retried",
            ["order", "reason", "step", "message", "started"],
            [[r["order_id"], r["reason"], r["step"], r["message"], r["started"]] for r in rows],
        )
        if rows:
            typer.echo("Nothing changed. Run again with --yes to retry them.")
        return
    by: dict[str, list[dict[str, Any]]] = {"retried": [], "refused": [], "failed": []}
    for r in results:
        by[r["outcome"]].append(r)
    if as_json:
        print_json({"dry_run": False, "query": stuck_query(query), **by})
    else:
        print_table(
            f"retried {len(by['retried'])}, refused {len(by['refused'])}, failed {len(by['failed'])}",
            ["order", "outcome", "detail"],
            [[r["order_id"], r["outcome"], r["detail"]] for r in results],
        )
    if by["failed"]:
        raise typer.Exit(1)


@app.command("retry")
def retry(
    reason: ReasonOpt,
    order: Annotated[
        str | None, typer.Argument(help="order key or workflow id; omit it and give --query for many")
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(
            help="every stuck order matching this filter, e.g. 'AttentionReason=\"erp_unavailable\"'"
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="with --query: retry them (without it: a dry run)")
    ] = False,
    limit: Annotated[int, typer.Option(help="with --query: at most this many orders")] = 500,
    concurrency: Annotated[int, typer.Option(min=1, help="with --query: retries at a time")] = 4,
    operator: OperatorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retry the step an order is stuck on, after fixing its cause; with --query, every stuck
    order that matches (a dry run first: nothing changes without --yes)."""
    if (order is None) == (query is None):
        raise fail("give an ORDER, or --query to retry every stuck order matching it (not both)", 2)
    if order is not None:
        _act(order, "retry", reason, operator, None)
        return
    assert query is not None
    _bulk_retry(
        query,
        operator_request(reason, operator, None),
        yes=yes,
        limit=limit,
        concurrency=concurrency,
        as_json=as_json,
    )


@app.command("skip")
def skip(
    order: str,
    reason: ReasonOpt,
    reference: Annotated[str, typer.Option("--reference", help="where it was done by hand")],
    operator: OperatorOpt = None,
) -> None:
    """Skip the failed step, recording where it was done by hand (e.g. an ERP order number)."""
    _act(order, "skip", reason, operator, reference)


@app.command("cancel")
def cancel(order: str, reason: ReasonOpt, operator: OperatorOpt = None) -> None:
    """Cancel an order: compensate what was done, or only what is unshipped."""
    _act(order, "cancel", reason, operator, None)


@app.command("approve")
def approve(order: str, reason: ReasonOpt, operator: OperatorOpt = None) -> None:
    """Approve an order held by a rule (RETAIL_HOLD_ABOVE, a failed address check): it is then processed."""
    _act(order, "approve", reason, operator, None)


@app.command("edit-address")
def edit_address(
    order: str,
    reason: ReasonOpt,
    line1: Annotated[str, typer.Option("--line1", help="street and number")],
    city: Annotated[str, typer.Option("--city")],
    country: Annotated[str, typer.Option("--country", help="ISO 3166-1 alpha-2, e.g. US")],
    postal_code: Annotated[str | None, typer.Option("--postal-code")] = None,
    region: Annotated[str | None, typer.Option("--region", help="state/province code")] = None,
    line2: Annotated[str | None, typer.Option("--line2")] = None,
    name: Annotated[str | None, typer.Option("--name", help="recipient")] = None,
    operator: OperatorOpt = None,
) -> None:
    """Correct the ship-to address of an order not yet released to a warehouse."""

    from canonical import Address
    from orchestration.models import AddressEdit

    try:
        edit = AddressEdit(
            operator=operator or getpass.getuser(),
            reason=reason,
            address=Address(
                name=name,
                line1=line1,
                line2=line2,
                city=city,
                region=region,
                postal_code=postal_code,
                country=country,
            ),
        )
    except ValidationError as exc:
        raise fail(f"refused: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc

    act(workflow_id(order), OrderToCash.edit_address, edit, what=f"order {order}", action="edit")
