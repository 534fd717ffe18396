"""`retail reconcile` (run a comparison now, list and settle findings) and `retail schedules`
(the Temporal Schedules that run them)."""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from temporalio.client import WorkflowHandle

from cli.common import fail, run, settings, temporal_client
from cli.output import print_json, print_table
from cli.webhooks import parse_since
from orchestration.reconcile_models import KINDS, Kind, ReconcileProgress, ReconcileReport
from store import findings as fs
from store.db import Store
from store.migrate import upgrade
from store.reconcile import latest_accuracy
from workflows import schedules as sch

app = typer.Typer(
    help="Reconciliation: compare the systems now, list and settle findings.", no_args_is_help=True
)
schedules_app = typer.Typer(help="The reconciliation schedules (Temporal Schedules).", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _store() -> Store:
    s = settings()
    upgrade(s.store_url)
    return Store(s.store_url)


def _kind(value: str) -> Kind:
    if value not in KINDS:
        raise fail(f"unknown reconciliation {value!r}: one of {', '.join(KINDS)}", code=2)
    return value


async def _follow(handle: WorkflowHandle[object, ReconcileReport], quiet: bool) -> ReconcileReport:
    """Wait for the run, drawing its progress (the workflow's ``progress`` query)."""
    result = asyncio.ensure_future(handle.result())
    if quiet:
        return await result
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("starting", total=None)
        while not result.done():
            try:
                p: ReconcileProgress = await handle.query("progress", result_type=ReconcileProgress)
                what = f"{p.phase} {p.channel or ''}".strip()
                bar.update(task, description=what, completed=p.done, total=p.total)
            except Exception:  # not picked up by a worker yet: keep waiting
                pass
            await asyncio.wait({result}, timeout=0.5)
    return await result


def _print_report(report: ReconcileReport) -> None:
    for o in report.orders:
        print_table(
            f"orders: {o.channel} updated {o.since:%Y-%m-%d %H:%M:%S} .. {o.until:%H:%M:%S} UTC",
            [
                "listed",
                "missing",
                "ingested",
                "total mismatches",
                "not in channel",
                "unmappable",
                "new findings",
            ],
            [
                [
                    o.listed,
                    o.missing,
                    o.ingested,
                    o.total_mismatches,
                    o.not_in_channel,
                    o.unmappable,
                    o.findings_new,
                ]
            ],
        )
    for i in report.inventory:
        print_table(
            f"inventory: {i.channel}",
            ["SKUs compared", "matching", "drifted", "healed", "accuracy", "new findings"],
            [[i.compared, i.matching, i.drifted, i.healed, f"{i.accuracy:.1%}", i.findings_new]],
        )
    if st := report.settlement:
        print_table(
            f"settlement {st.since:%Y-%m-%d %H:%M} .. {st.until:%Y-%m-%d %H:%M} UTC",
            ["orders", "captures", "refunds", "invoices", "differences", "new findings"],
            [
                [
                    st.orders,
                    st.captures,
                    st.refunds,
                    st.invoices,
                    ", ".join(f"{k} {v}" for k, v in sorted(st.differences.items())) or "none",
                    st.findings_new,
                ]
            ],
        )


@app.command("run")
def run_now(
    kind: Annotated[str, typer.Argument(help="orders, inventory or settlement")],
    since: Annotated[
        str | None,
        typer.Option(help="compare from here (ISO 8601 or an age: 2h, 7d) instead of the watermark"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a reconciliation now and wait for it (a worker must be running)."""
    k = _kind(kind)
    start = parse_since(since)

    async def go() -> ReconcileReport:
        client = await temporal_client()
        handle = await sch.start_reconcile(client, settings(), k, start)
        if not as_json:
            typer.echo(f"started {handle.id}")
        return await _follow(handle, quiet=as_json)

    report = run(go())
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        _print_report(report)
        typer.echo(f"{report.findings_new} new findings: retail reconcile findings --open")


@app.command("findings")
def findings(
    open_only: Annotated[bool, typer.Option("--open", help="only open ones")] = False,
    kind: Annotated[str | None, typer.Option(help="only this kind")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, most recently seen first")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """Findings, most recently seen first, with inventory accuracy per channel."""
    store = _store()
    try:
        rows = fs.list_findings(store, status=["open"] if open_only else None, kind=kind, limit=limit)
        accuracy = latest_accuracy(store)
    finally:
        store.dispose()
    if as_json:
        print_json([f.as_json() for f in rows])
        return
    print_table(
        "findings",
        [
            "id",
            "kind",
            "subject",
            "status",
            "expected",
            "actual",
            "seen",
            "first seen",
            "last seen",
            "detail",
        ],
        [
            [
                f.id,
                f.kind,
                f.subject,
                f.status + (f" ({f.reason})" if f.reason else ""),
                f.expected,
                f.actual,
                f.sightings,
                f"{f.first_seen:%Y-%m-%d %H:%M}",
                f"{f.last_seen:%Y-%m-%d %H:%M}",
                f.detail,
            ]
            for f in rows
        ],
    )
    if accuracy:
        print_table(
            "inventory accuracy (latest run)",
            ["channel", "SKUs compared", "matching", "accuracy", "measured"],
            [
                [
                    a.channel,
                    a.skus_compared,
                    a.skus_matching,
                    f"{a.ratio:.1%}",
                    f"{a.measured_at:%Y-%m-%d %H:%M}",
                ]
                for a in accuracy
            ],
        )


def _decide(finding_id: int, status: str, reason: str, operator: str | None) -> None:
    store = _store()
    try:
        f = fs.decide(store, finding_id, status, reason, operator or getpass.getuser())  # type: ignore[arg-type]
    except LookupError as err:
        raise fail(str(err)) from None
    except ValueError as err:
        raise fail(str(err), code=2) from None
    finally:
        store.dispose()
    typer.echo(f"finding {f.id} ({f.kind} {f.subject}) {f.status}: {f.reason}")


ReasonOpt = Annotated[str, typer.Option(help="why (kept with the finding)")]
OperatorOpt = Annotated[str | None, typer.Option(help="who (default: the login name)")]


@app.command("resolve")
def resolve(finding_id: int, reason: ReasonOpt, operator: OperatorOpt = None) -> None:
    """Mark a finding resolved: the difference was fixed by hand."""
    _decide(finding_id, "resolved", reason, operator)


@app.command("ignore")
def ignore(finding_id: int, reason: ReasonOpt, operator: OperatorOpt = None) -> None:
    """Mark a finding ignored: not worth fixing (it stays ignored when seen again)."""
    _decide(finding_id, "ignored", reason, operator)


# -- retail schedules ------------------------------------------------------------------------------


@schedules_app.command("apply")
def apply() -> None:
    """Create the schedules, or update them to the current settings (a pause is kept)."""

    async def go() -> dict[str, str]:
        return await sch.apply_schedules(await temporal_client(), settings())

    for sid, what in run(go()).items():
        typer.echo(f"{sid}: {what}")


@schedules_app.command("list")
def list_schedules(as_json: JsonOpt = False) -> None:
    """The schedules: interval, paused or not, next and last runs."""

    async def go() -> list[sch.ScheduleView]:
        return await sch.describe_schedules(await temporal_client(), settings())

    views = run(go())
    if as_json:
        print_json([v.__dict__ for v in views])
        return
    if not views:
        typer.echo("no schedules: retail schedules apply (or start a worker)")
        return
    print_table(
        "reconciliation schedules",
        ["id", "every", "state", "next run", "last run", "last workflow"],
        [
            [
                v.id,
                v.every,
                f"paused: {v.note}" if v.paused else "active",
                v.next_runs[0].isoformat(timespec="seconds") if v.next_runs and not v.paused else "",
                v.last_run.isoformat(timespec="seconds") if v.last_run else "",
                v.last_workflow_id,
            ]
            for v in views
        ],
    )


KindArg = Annotated[str, typer.Argument(help="orders, inventory, settlement or poll-<channel>")]


def _schedule_kind(value: str) -> str:
    """A reconciliation kind, or ``poll-<channel>`` for a polled channel's schedule."""
    if value.startswith(sch.POLL_KIND_PREFIX):
        return value
    return _kind(value)


@schedules_app.command("pause")
def pause(kind: KindArg, note: Annotated[str, typer.Option(help="why (shown in the UI)")] = "paused") -> None:
    """Pause a schedule (it stays paused across worker restarts and `apply`)."""
    k = _schedule_kind(kind)

    async def go() -> None:
        await sch.pause(await temporal_client(), settings(), k, note)

    run(go())
    typer.echo(f"{sch.schedule_id_for(settings(), k)} paused: {note}")


@schedules_app.command("resume")
def resume(kind: KindArg, note: Annotated[str, typer.Option(help="why")] = "resumed") -> None:
    """Resume a paused schedule."""
    k = _schedule_kind(kind)

    async def go() -> None:
        await sch.resume(await temporal_client(), settings(), k, note)

    run(go())
    typer.echo(f"{sch.schedule_id_for(settings(), k)} resumed")
