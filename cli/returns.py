"""`retail returns`: request, find, inspect and fix returns."""

from __future__ import annotations

import getpass
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from canonical.returns import ReturnRequest, ReturnState, check_return, lines_by_sku
from cli.common import fail, run, settings, temporal_client
from cli.operator import act, operator_request
from cli.output import print_json, print_table
from orchestration.client import order_return_context, return_policy_from, start_return
from workflows.return_to_refund import ReturnToRefund

app = typer.Typer(help="Request, find, inspect and fix returns.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="why (recorded in the return's history)")]
OperatorOpt = Annotated[str | None, typer.Option("--operator", help="who; default: the OS user")]


def return_workflow(ref: str) -> str:
    """Accept a return key (shopify-rma-7) or a workflow id (return-shopify-rma-7)."""
    return ref if ref.startswith("return-") else f"return-{ref}"


def returns_query(status: str | None, channel: str | None, stuck: bool, order: str | None) -> str:
    parts = ['WorkflowType = "ReturnToRefund"']
    if stuck:
        parts.append('ReturnStatus = "NeedsAttention"')
    if status:
        parts.append(f'ReturnStatus = "{status}"')
    if channel:
        parts.append(f'Channel = "{channel}"')
    if order:
        parts.append(f'OrderId = "{order.removeprefix("order-")}"')
    return " AND ".join(parts)


async def return_states(client: Client, query: str, limit: int) -> list[ReturnState]:
    """The returns matching a visibility query, each read from its workflow (open or closed)."""
    states: list[ReturnState] = []
    async for wf in client.list_workflows(query, limit=limit):
        handle = client.get_workflow_handle_for(ReturnToRefund.run, wf.id)
        states.append(await handle.query(ReturnToRefund.state))
    return states


def _cycle(s: ReturnState) -> str:
    if s.cycle_time_s is None:
        return ""
    hours = s.cycle_time_s / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{s.cycle_time_s:.0f} s"


@app.command("create")
def create(
    order: Annotated[str, typer.Argument(help="order key, e.g. shopify-1001")],
    line: Annotated[list[str], typer.Option("--line", help="SKU:QTY (or LINE_ID:QTY); repeat for more")],
    reason: ReasonOpt,
    return_id: Annotated[str | None, typer.Option("--id", help="your RMA number; default: generated")] = None,
    receipt: Annotated[
        str, typer.Option(help="warehouse (wait for its receipt), at_channel (already back), none")
    ] = "warehouse",
    operator: OperatorOpt = None,
) -> None:
    """Request a return of shipped units; refused at once with the reason when not returnable."""
    key = order.removeprefix("order-")
    channel, _, external = key.partition("-")
    if not external:
        raise fail(f"{order}: expected an order key like shopify-1001")
    wanted: dict[str, int] = {}
    for spec in line:
        ref, _, qty = spec.rpartition(":")
        if not ref or not qty.isdigit() or int(qty) <= 0:
            raise fail(f"--line {spec!r}: expected SKU:QTY with a positive quantity")
        wanted[ref] = wanted.get(ref, 0) + int(qty)
    s = settings()

    async def go() -> str:
        client = await temporal_client()
        ctx = await order_return_context(client, key)
        if ctx is None:
            raise fail(f"no order {key}")
        try:
            req = ReturnRequest(
                channel=channel,
                order_external_id=external,
                return_id=return_id or f"cli-{uuid.uuid4().hex[:12]}",
                source="cli",
                lines=lines_by_sku(ctx.order, wanted),
                reason=reason,
                requested_at=datetime.now(UTC),
                receipt=receipt,  # type: ignore[arg-type]  # validated by the model
                requested_by=operator or getpass.getuser(),
            )
        except (ValueError, ValidationError) as exc:
            raise fail(f"refused: {exc}") from exc
        why = check_return(req, ctx, return_policy_from(s, channel).window_days)
        if why:
            raise fail(f"refused: {why}")
        handle = await start_return(client, req, s)
        return f"return {req.key} requested ({handle.id})"

    try:
        typer.echo(run(go()))
    except RPCError as exc:
        raise fail(f"cannot request the return: {exc.message}") from exc


@app.command("list")
def list_returns(
    status: Annotated[str | None, typer.Option(help="ReturnStatus, e.g. AwaitingReceipt, Refunded")] = None,
    channel: Annotated[str | None, typer.Option(help="channel name")] = None,
    stuck: Annotated[bool, typer.Option("--stuck", help="only returns waiting for an operator")] = False,
    order: Annotated[str | None, typer.Option(help="returns of this order key")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """List returns with their amounts and cycle time (request to refund)."""
    q = returns_query(status, channel, stuck, order)

    async def go() -> list[ReturnState]:
        return await return_states(await temporal_client(), q, limit)

    try:
        states = run(go())
    except (RPCError, WorkflowQueryFailedError) as exc:
        raise fail(f"cannot list returns: {exc}") from exc
    if as_json:
        print_json([st.model_dump(mode="json") for st in states])
        return
    print_table(
        f"{len(states)} returns",
        ["return", "order", "status", "attention", "refunded", "cycle time"],
        [
            [
                st.return_key,
                st.order_key,
                st.status,
                st.attention.reason if st.attention else "",
                st.refunded,
                _cycle(st),
            ]
            for st in states
        ],
    )


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="return key (shopify-rma-7) or workflow id")],
    as_json: JsonOpt = False,
) -> None:
    """One return: status, RMA, dispositions, credit memo, refunds, steps and operator actions."""

    async def go() -> ReturnState:
        client = await temporal_client()
        return await client.get_workflow_handle_for(ReturnToRefund.run, return_workflow(ref)).query(
            ReturnToRefund.state
        )

    try:
        s = run(go())
    except WorkflowQueryFailedError as exc:
        raise fail(f"{ref}: its workflow could not answer the query: {exc}") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise fail(f"no return {ref}") from exc
        raise fail(f"cannot read {ref}: {exc.message}") from exc
    if as_json:
        print_json(s.model_dump(mode="json"))
        return
    a = s.attention
    print_table(
        f"return {s.return_key} of {s.order_key} ({s.workflow_id})",
        ["field", "value"],
        [
            ["status", s.status],
            ["attention", f"{a.reason} at {a.step}: {a.message}" if a else ""],
            ["waiting for", s.waiting_for],
            ["rejected", s.rejection],
            ["lines", ", ".join(f"{ln.quantity} x {ln.sku or ln.line_id}" for ln in s.lines)],
            ["RMA", s.rma_id],
            ["return label", s.return_tracking],
            ["dispositions", ", ".join(f"{d.quantity} x {d.sku} {d.disposition}" for d in s.dispositions)],
            ["credit memo", s.credit_memo_id],
            ["credited", s.credited],
            ["tax reversed", s.tax_reversed],
            ["refunded", s.refunded],
            ["refunds", ", ".join(f"{r.kind} {r.reference} {r.amount}" for r in s.refunds)],
            ["cycle time", _cycle(s)],
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
                [x.at.isoformat(timespec="seconds"), x.action, x.operator, x.reason, x.reference]
                for x in s.actions
            ],
        )


def _act(ref: str, action: str, reason: str, operator: str | None, reference: str | None) -> None:
    update = {"retry": ReturnToRefund.retry, "skip": ReturnToRefund.skip, "cancel": ReturnToRefund.cancel}[
        action
    ]
    act(
        return_workflow(ref),
        update,
        operator_request(reason, operator, reference),
        what=f"return {ref}",
        action=action,
    )


@app.command("retry")
def retry(ref: str, reason: ReasonOpt, operator: OperatorOpt = None) -> None:
    """Retry the step that needs attention (e.g. a refund the provider refused), after the fix."""
    _act(ref, "retry", reason, operator, None)


@app.command("skip")
def skip(
    ref: str,
    reason: ReasonOpt,
    reference: Annotated[str, typer.Option("--reference", help="where it was done by hand")],
    operator: OperatorOpt = None,
) -> None:
    """Skip the failed step, recording where it was done by hand (e.g. a refund id)."""
    _act(ref, "skip", reason, operator, reference)


@app.command("cancel")
def cancel(ref: str, reason: ReasonOpt, operator: OperatorOpt = None) -> None:
    """Cancel a return before the goods are received: the RMA closes and the channel is told."""
    _act(ref, "cancel", reason, operator, None)


__all__ = ["app", "return_states", "returns_query"]
