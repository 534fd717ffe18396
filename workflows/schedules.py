"""The reconciliation schedules and one polling schedule per polled channel (Temporal Schedules):
created or updated idempotently at worker start and by `retail schedules apply`; listed, paused
and resumed by `retail schedules` (a polled channel's kind is ``poll-<channel>``).

Overlap policy SKIP: a run still going when the next is due makes that one skip (the next window
starts from the watermark, so nothing is lost). Runs missed while Temporal was down are made up
within the catch-up window. An update keeps a schedule's paused state and note: an operator's
pause survives deploys and restarts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowHandle,
)

from orchestration.poll_models import PollInput, PollResult
from orchestration.reconcile_models import KINDS, Kind, ReconcileInput, ReconcilePolicy, ReconcileReport
from settings import Settings
from workflows.erp_stock import ErpStockSync
from workflows.poll import PollOrders
from workflows.reconcile import ReconcileInventory, ReconcileOrders, ReconcileSettlement

WORKFLOWS: dict[Kind, Any] = {
    "orders": ReconcileOrders.run,
    "inventory": ReconcileInventory.run,
    "settlement": ReconcileSettlement.run,
}
SUMMARIES: dict[Kind, str] = {
    "orders": "Reconcile orders: channel vs platform vs ERP; lost webhooks ingested",
    "inventory": "Reconcile inventory: what channels show vs the ledger; drift pushed back",
    "settlement": "Reconcile settlement: captures and refunds vs invoices",
}


def schedule_id(settings: Settings, kind: Kind) -> str:
    return f"{settings.reconcile_schedule_prefix}-{kind}"


def policy_for(settings: Settings, kind: Kind) -> ReconcilePolicy:
    overlap = (
        settings.reconcile_settlement_overlap_s
        if kind == "settlement"
        else settings.reconcile_orders_overlap_s
    )
    return ReconcilePolicy(
        activity_timeout_s=max(300.0, settings.activity_timeout_s),
        page_size=settings.reconcile_page_size,
        pages_per_activity=settings.reconcile_pages_per_activity,
        overlap_s=overlap,
        lookback_s=settings.reconcile_lookback_s,
        settle_s=settings.reconcile_settle_s,
    )


def reconcile_input(settings: Settings, kind: Kind, since: datetime | None = None) -> ReconcileInput:
    channels = [] if kind == "settlement" else list(settings.reconcile_channels)
    return ReconcileInput(channels=channels, since=since, policy=policy_for(settings, kind))


def every(settings: Settings, kind: Kind) -> timedelta:
    seconds = {
        "orders": settings.reconcile_orders_every_s,
        "inventory": settings.reconcile_inventory_every_s,
        "settlement": settings.reconcile_settlement_every_s,
    }[kind]
    return timedelta(seconds=seconds)


def _schedule(
    settings: Settings, workflow: Any, arg: Any, sid: str, summary: str, interval: timedelta
) -> Schedule:
    """Overlap SKIP, the catch-up window, and a note: the same rules for every schedule."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            workflow,
            args=[] if arg is None else [arg],
            id=sid,  # Temporal appends the scheduled time
            task_queue=settings.task_queue,
            static_summary=summary,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=timedelta(seconds=settings.reconcile_catchup_window_s),
        ),
        state=ScheduleState(note="created by Retail Connect"),
    )


def build_schedule(settings: Settings, kind: Kind) -> Schedule:
    return _schedule(
        settings,
        WORKFLOWS[kind],
        reconcile_input(settings, kind),
        schedule_id(settings, kind),
        SUMMARIES[kind],
        every(settings, kind),
    )


# -- polled channels ------------------------------------------------------------------------------

POLL_KIND_PREFIX = "poll-"


def poll_schedule_id(settings: Settings, channel: str) -> str:
    return f"{settings.poll_schedule_prefix}-{channel}"


def poll_input(settings: Settings, channel: str, since: datetime | None = None) -> PollInput:
    policy = ReconcilePolicy(
        activity_timeout_s=max(300.0, settings.activity_timeout_s),
        page_size=settings.poll_page_size,
        pages_per_activity=settings.reconcile_pages_per_activity,
        overlap_s=settings.poll_overlap_s,
        lookback_s=settings.poll_lookback_s,
        settle_s=settings.poll_settle_s,
    )
    return PollInput(channel=channel, since=since, policy=policy)


def build_poll_schedule(settings: Settings, channel: str) -> Schedule:
    seconds = settings.poll_every_s_by_channel.get(channel, settings.poll_every_s)
    return _schedule(
        settings,
        PollOrders.run,
        poll_input(settings, channel),
        poll_schedule_id(settings, channel),
        f"Poll {channel}: import the orders updated since the last run",
        timedelta(seconds=seconds),
    )


# -- the ERP's own stock ---------------------------------------------------------------------------

ERP_STOCK_KIND = "erp-stock"
# ERPs that keep stock of their own, moved there by people: their moves are mirrored on a schedule.
ERPS_WITH_OWN_STOCK = ("tryton",)


def erp_stock_schedule_id(settings: Settings) -> str:
    return f"{settings.reconcile_schedule_prefix}-{ERP_STOCK_KIND}"


def build_erp_stock_schedule(settings: Settings) -> Schedule:
    return _schedule(
        settings,
        ErpStockSync.run,
        None,
        erp_stock_schedule_id(settings),
        f"Mirror stock moved inside the ERP ({settings.erp}) into the ledger",
        timedelta(seconds=settings.erp_stock_sync_every_s),
    )


def wanted_schedules(settings: Settings) -> dict[str, tuple[str, Schedule]]:
    """schedule id -> (kind, schedule) for every schedule the settings ask for."""
    out = {schedule_id(settings, k): (str(k), build_schedule(settings, k)) for k in KINDS}
    if settings.erp in ERPS_WITH_OWN_STOCK:
        out[erp_stock_schedule_id(settings)] = (ERP_STOCK_KIND, build_erp_stock_schedule(settings))
    for channel in settings.poll_channels:
        out[poll_schedule_id(settings, channel)] = (
            POLL_KIND_PREFIX + channel,
            build_poll_schedule(settings, channel),
        )
    return out


def schedule_id_for(settings: Settings, kind: str) -> str:
    """``orders``/``inventory``/``settlement``, or ``poll-<channel>``."""
    if kind.startswith(POLL_KIND_PREFIX):
        return poll_schedule_id(settings, kind.removeprefix(POLL_KIND_PREFIX))
    if kind == ERP_STOCK_KIND:
        return erp_stock_schedule_id(settings)
    if kind not in KINDS:
        raise ValueError(
            f"unknown schedule kind {kind!r}: orders, inventory, settlement, erp-stock or poll-<channel>"
        )
    return schedule_id(settings, kind)


async def apply_schedules(client: Client, settings: Settings) -> dict[str, str]:
    """Create each schedule, or bring an existing one up to date (keeping its paused state).
    Returns schedule id -> "created" or "updated"."""
    out: dict[str, str] = {}
    for sid, (_, wanted) in wanted_schedules(settings).items():
        try:
            await client.create_schedule(sid, wanted)
            out[sid] = "created"
        except ScheduleAlreadyRunningError:

            def keep_state(current: ScheduleUpdateInput, wanted: Schedule = wanted) -> ScheduleUpdate:
                wanted.state = current.description.schedule.state
                return ScheduleUpdate(schedule=wanted)

            await client.get_schedule_handle(sid).update(keep_state)
            out[sid] = "updated"
    return out


async def start_poll(
    client: Client, settings: Settings, channel: str, since: datetime | None = None
) -> WorkflowHandle[Any, PollResult]:
    """Poll a channel now (`retail poll run`), beside its schedule. With ``since`` the window
    starts there and the watermark is left alone."""
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    handle: WorkflowHandle[Any, PollResult] = await client.start_workflow(
        PollOrders.run,
        poll_input(settings, channel, since),
        id=f"{poll_schedule_id(settings, channel)}-manual-{stamp}",
        task_queue=settings.task_queue,
        static_summary=f"Poll {channel} (run by hand)",
    )
    return handle


@dataclass(frozen=True)
class ScheduleView:
    id: str
    kind: str
    every: timedelta | None
    paused: bool
    note: str | None
    next_runs: list[datetime]
    last_run: datetime | None
    last_workflow_id: str | None


async def describe_schedules(client: Client, settings: Settings) -> list[ScheduleView]:
    """The reconciliation and polling schedules as Temporal has them (missing ones are left out)."""
    from temporalio.service import RPCError, RPCStatusCode

    out: list[ScheduleView] = []
    for sid, (kind, _) in wanted_schedules(settings).items():
        try:
            d = await client.get_schedule_handle(sid).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                continue
            raise
        intervals = d.schedule.spec.intervals
        recent = d.info.recent_actions[-1] if d.info.recent_actions else None
        action = getattr(recent, "action", None) if recent else None
        out.append(
            ScheduleView(
                id=sid,
                kind=kind,
                every=intervals[0].every if intervals else None,
                paused=d.schedule.state.paused,
                note=d.schedule.state.note,
                next_runs=list(d.info.next_action_times[:3]),
                last_run=recent.started_at if recent else None,
                last_workflow_id=getattr(action, "workflow_id", None),
            )
        )
    return out


async def pause(client: Client, settings: Settings, kind: str, note: str) -> None:
    await client.get_schedule_handle(schedule_id_for(settings, kind)).pause(note=note)


async def resume(client: Client, settings: Settings, kind: str, note: str) -> None:
    await client.get_schedule_handle(schedule_id_for(settings, kind)).unpause(note=note)


async def start_reconcile(
    client: Client, settings: Settings, kind: Kind, since: datetime | None = None
) -> WorkflowHandle[Any, ReconcileReport]:
    """Run a reconciliation now (`retail reconcile run`), beside the schedule's own runs. With
    ``since`` the window starts there and the watermark is left alone."""
    wf_id = f"{schedule_id(settings, kind)}-manual-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    handle: WorkflowHandle[Any, ReconcileReport] = await client.start_workflow(
        WORKFLOWS[kind],
        reconcile_input(settings, kind, since),
        id=wf_id,
        task_queue=settings.task_queue,
        static_summary=f"{SUMMARIES[kind]} (run by hand)",
        result_type=ReconcileReport,
    )
    return handle
