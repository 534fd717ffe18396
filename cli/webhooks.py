"""`retail webhooks`: what the ingress refused, what waits in the inbox, and the relay."""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from cli.common import fail, settings
from cli.output import print_json, print_table
from store import inbox
from store.db import Store
from store.migrate import upgrade

app = typer.Typer(help="Webhook ingress: rejected deliveries, the inbox, the relay.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
SinceOpt = Annotated[
    str | None,
    typer.Option(help="received at or after: ISO 8601 (UTC unless it has an offset) or an age: 30m, 2h, 7d"),
]
LimitOpt = Annotated[int, typer.Option(help="at most this many (newest first)")]

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """``2026-11-20T10:00:00``, ``2026-11-20T10:00:00+01:00`` or an age such as ``2h``."""
    if value is None:
        return None
    match = _AGE.match(value)
    if match:
        amount, unit = match.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: float(amount)})
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"--since {value!r} is neither an ISO 8601 time nor an age like 30m, 2h, 7d") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _store() -> Store:
    s = settings()
    upgrade(s.store_url)
    return Store(s.store_url)


def _short(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at else ""


@app.command("rejected")
def rejected(
    since: SinceOpt = None,
    limit: LimitOpt = 100,
    body: Annotated[bool, typer.Option("--body", help="include the stored bodies (--json)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Deliveries the API refused (4xx) or the relay rejected, newest first. Stored without
    signatures or secrets; the body only for authenticated senders within the size limit."""
    store = _store()
    try:
        rows = inbox.list_rejections(store, since=parse_since(since), limit=limit)
    finally:
        store.dispose()
    if as_json:
        print_json([r.summary(with_body=body) for r in rows])
        return
    print_table(
        f"{len(rows)} rejected deliveries",
        ["id", "received", "source", "topic", "status", "reason", "detail", "delivery"],
        [
            [
                r.id,
                _short(r.received_at),
                r.source,
                r.topic,
                r.status_code,
                r.reason,
                (f"{r.path}: " if r.path else "") + r.detail[:200],
                r.delivery_id,
            ]
            for r in rows
        ],
    )


@app.command("inbox")
def inbox_list(
    pending: Annotated[bool, typer.Option("--pending", help="only deliveries not yet relayed")] = False,
    status: Annotated[
        str | None, typer.Option(help="pending, relayed, duplicate, ignored or rejected")
    ] = None,
    order: Annotated[str | None, typer.Option(help="order key (shopify-1001) or workflow id")] = None,
    since: SinceOpt = None,
    limit: LimitOpt = 100,
    as_json: JsonOpt = False,
) -> None:
    """Accepted deliveries, newest first: what is waiting for Temporal and why."""
    wanted = "pending" if pending else status
    if wanted is not None and wanted not in inbox.INBOX_STATUSES:
        raise fail(f"--status must be one of {', '.join(inbox.INBOX_STATUSES)}")
    workflow_id = None if order is None else order if order.startswith("order-") else f"order-{order}"
    store = _store()
    try:
        rows = inbox.list_inbox(
            store,
            status=wanted,  # type: ignore[arg-type]  # checked against INBOX_STATUSES above
            since=parse_since(since),
            workflow_id=workflow_id,
            limit=limit,
        )
    finally:
        store.dispose()
    if as_json:
        print_json([e.summary() for e in rows])
        return
    print_table(
        f"{len(rows)} inbox entries",
        ["id", "received", "source", "topic", "workflow", "status", "attempts", "next try", "detail"],
        [
            [
                e.id,
                _short(e.received_at),
                e.source,
                e.topic,
                e.workflow_id,
                e.status,
                e.attempts,
                _short(e.next_attempt_at) if e.status == "pending" else "",
                (e.last_error if e.status == "pending" else e.outcome) or "",
            ]
            for e in rows
        ],
    )


@app.command("requeue")
def requeue(entry_id: Annotated[int, typer.Argument(help="inbox entry id")]) -> None:
    """Relay a rejected or ignored delivery again (e.g. once the order it refers to exists)."""
    store = _store()
    try:
        entry = inbox.requeue(store, entry_id)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    finally:
        store.dispose()
    typer.echo(f"#{entry.id} is pending again; the relay hands it to Temporal ({entry.workflow_id})")


@app.command("relay")
def relay(
    once: Annotated[bool, typer.Option("--once", help="relay what is due, then exit")] = False,
) -> None:
    """Run the inbox relay on its own (the API process runs one too)."""
    from api.relay import InboxRelay
    from orchestration.client import connect

    s = settings()
    store = _store()

    async def go() -> None:
        r = InboxRelay(store, lambda: connect(s), s)
        if once:
            report = await r.run_once()
            done = ", ".join(f"{n} {status}" for status, n in sorted(report.outcomes.items()))
            typer.echo(f"claimed {report.claimed}" + (f": {done}" if done else ""))
            return
        await r.run(asyncio.Event())

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(go())
    finally:
        store.dispose()
