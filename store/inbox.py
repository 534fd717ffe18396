"""The webhook inbox: every accepted delivery, kept before it is acknowledged, and every
rejected one (without its secrets).

An accepted delivery becomes one ``webhook_inbox`` row holding what to tell Temporal (start a
workflow, or signal one) and the raw body. A relay (``api.relay.InboxRelay``) claims pending
rows with a lease, starts or signals, and settles each row:

``pending``   waiting to be relayed (``attempts``, ``next_attempt_at`` and ``last_error`` say how
              it is going)
``relayed``   Temporal has it: the workflow was started (or found running) or signalled
``duplicate`` a redelivery of an earlier row (``duplicate_of``): same vendor event id or same
              business key; nothing was relayed for it
``ignored``   a late event for an order whose workflow has finished
``rejected``  refused when relayed (e.g. an event for an order the platform never had); also
              listed among the rejected deliveries

A delivery's *dedupe key* (source, topic and the vendor's event or delivery id) and *business
key* (workflow id, topic and e.g. ``updated_at``) are unique among rows that still hold them
(``pending``, ``relayed``, ``ignored``), enforced by partial unique indexes on both databases,
so two API replicas receiving the same event at once cannot both keep it. A rejected row gives
its keys up: a redelivery is judged afresh (the order may exist by then).

Deliveries refused at the door (bad signature, too large, malformed, unmappable) are
``webhook_rejections`` rows: the headers minus any signature or secret, and the body only
when the sender was authenticated and the body within the size limit (else its SHA-256).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.columns import UtcDateTime, rowcount, utcnow
from store.db import Base, Store

InboxStatus = Literal["pending", "relayed", "duplicate", "ignored", "rejected"]
INBOX_STATUSES: tuple[str, ...] = get_args(InboxStatus)
RelayAction = Literal["start", "signal"]

# Rows in these states hold their dedupe and business keys.
KEY_HOLDING = "status IN ('pending', 'relayed', 'ignored')"

KEY_MAX = 500  # longer keys are stored as their SHA-256
ID_MAX = 255
TEXT_MAX = 2000


def _clip(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


def bounded_key(key: str) -> str:
    """A dedupe or business key that fits its column: long ones become their hash."""
    if len(key) <= KEY_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


class InboxRow(Base):
    __tablename__ = "webhook_inbox"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'relayed', 'duplicate', 'ignored', 'rejected')",
            name="ck_webhook_inbox_status",
        ),
        CheckConstraint("action IN ('start', 'signal')", name="ck_webhook_inbox_action"),
        Index(
            "ux_webhook_inbox_dedupe_key",
            "dedupe_key",
            unique=True,
            sqlite_where=text(KEY_HOLDING),
            postgresql_where=text(KEY_HOLDING),
        ),
        Index(
            "ux_webhook_inbox_business_key",
            "business_key",
            unique=True,
            sqlite_where=text(KEY_HOLDING),
            postgresql_where=text(KEY_HOLDING),
        ),
        Index("ix_webhook_inbox_due", "status", "next_attempt_at"),
        Index("ix_webhook_inbox_workflow_id", "workflow_id"),
        Index("ix_webhook_inbox_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[str | None] = mapped_column(String(ID_MAX))
    event_id: Mapped[str | None] = mapped_column(String(ID_MAX))
    dedupe_key: Mapped[str] = mapped_column(String(KEY_MAX))
    business_key: Mapped[str | None] = mapped_column(String(KEY_MAX))
    duplicate_of: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_inbox.id", ondelete="SET NULL", name="fk_webhook_inbox_duplicate_of")
    )
    workflow_id: Mapped[str] = mapped_column(String(1000))
    action: Mapped[str] = mapped_column(String(16))
    signal: Mapped[str | None] = mapped_column(String(64))
    argument: Mapped[dict[str, Any]] = mapped_column(JSON)
    correlation_id: Mapped[str] = mapped_column(String(ID_MAX))
    relay_id: Mapped[str] = mapped_column(String(64))
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(TEXT_MAX))
    outcome: Mapped[str | None] = mapped_column(String(TEXT_MAX))
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RejectionRow(Base):
    __tablename__ = "webhook_rejections"
    __table_args__ = (
        Index("ix_webhook_rejections_received_at", "received_at"),
        Index("ix_webhook_rejections_inbox_id", "inbox_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str | None] = mapped_column(String(64))
    delivery_id: Mapped[str | None] = mapped_column(String(ID_MAX))
    event_id: Mapped[str | None] = mapped_column(String(ID_MAX))
    status_code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(TEXT_MAX))
    path: Mapped[str | None] = mapped_column(String(ID_MAX))
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    body_size: Mapped[int | None] = mapped_column(Integer)
    inbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_inbox.id", ondelete="SET NULL", name="fk_webhook_rejections_inbox_id")
    )


# -- views ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewDelivery:
    """An authenticated, mapped delivery about to be kept."""

    source: str
    topic: str
    delivery_id: str | None
    event_id: str | None
    dedupe_key: str
    business_key: str | None
    workflow_id: str
    action: RelayAction
    signal: str | None
    argument: dict[str, Any]
    correlation_id: str
    headers: dict[str, str]
    body: bytes


TRACE_HEADERS = ("traceparent", "tracestate")


@dataclass(frozen=True)
class InboxEntry:
    id: int
    received_at: datetime
    source: str
    topic: str
    delivery_id: str | None
    event_id: str | None
    dedupe_key: str
    business_key: str | None
    duplicate_of: int | None
    workflow_id: str
    action: RelayAction
    signal: str | None
    argument: dict[str, Any]
    correlation_id: str
    relay_id: str
    status: InboxStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    outcome: str | None
    settled_at: datetime | None
    # W3C trace context kept with the delivery (tracing on), so a later relay joins its trace.
    trace_context: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What the CLI shows (no body, no headers)."""
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "source": self.source,
            "topic": self.topic,
            "delivery_id": self.delivery_id,
            "event_id": self.event_id,
            "workflow_id": self.workflow_id,
            "action": self.signal or self.action,
            "status": self.status,
            "duplicate_of": self.duplicate_of,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.status == "pending" else None,
            "last_error": self.last_error,
            "outcome": self.outcome,
            "settled_at": self.settled_at.isoformat() if self.settled_at else None,
        }


def _entry(row: InboxRow) -> InboxEntry:
    return InboxEntry(
        id=row.id,
        received_at=row.received_at,
        source=row.source,
        topic=row.topic,
        delivery_id=row.delivery_id,
        event_id=row.event_id,
        dedupe_key=row.dedupe_key,
        business_key=row.business_key,
        duplicate_of=row.duplicate_of,
        workflow_id=row.workflow_id,
        action=row.action,  # type: ignore[arg-type]  # the check constraint keeps it a RelayAction
        signal=row.signal,
        argument=dict(row.argument),
        correlation_id=row.correlation_id,
        relay_id=row.relay_id,
        status=row.status,  # type: ignore[arg-type]  # the check constraint keeps it an InboxStatus
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        outcome=row.outcome,
        settled_at=row.settled_at,
        trace_context={k: v for k, v in row.headers.items() if k in TRACE_HEADERS},
    )


@dataclass(frozen=True)
class Recorded:
    """The kept row; ``original`` is set when it is a duplicate of that earlier row."""

    entry: InboxEntry
    original: InboxEntry | None

    @property
    def duplicate(self) -> bool:
        return self.original is not None


@dataclass(frozen=True)
class Rejection:
    id: int
    received_at: datetime
    source: str
    topic: str | None
    delivery_id: str | None
    event_id: str | None
    status_code: int
    reason: str
    detail: str
    path: str | None
    headers: dict[str, str]
    body: bytes | None
    body_sha256: str | None
    body_size: int | None
    inbox_id: int | None

    def summary(self, *, with_body: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "source": self.source,
            "topic": self.topic,
            "delivery_id": self.delivery_id,
            "event_id": self.event_id,
            "status_code": self.status_code,
            "reason": self.reason,
            "detail": self.detail,
            "path": self.path,
            "body_size": self.body_size,
            "body_sha256": self.body_sha256,
            "inbox_id": self.inbox_id,
            "headers": self.headers,
        }
        if with_body:
            out["body"] = None if self.body is None else self.body.decode("utf-8", "replace")
        return out


def _rejection(row: RejectionRow) -> Rejection:
    return Rejection(
        id=row.id,
        received_at=row.received_at,
        source=row.source,
        topic=row.topic,
        delivery_id=row.delivery_id,
        event_id=row.event_id,
        status_code=row.status_code,
        reason=row.reason,
        detail=row.detail,
        path=row.path,
        headers=dict(row.headers),
        body=row.body,
        body_sha256=row.body_sha256,
        body_size=row.body_size,
        inbox_id=row.inbox_id,
    )


# -- accepting deliveries ---------------------------------------------------------------------


def _holder(s: Session, dedupe_key: str, business_key: str | None) -> InboxRow | None:
    """The earlier row holding the same dedupe key (preferred) or business key."""
    holding = InboxRow.status.in_(("pending", "relayed", "ignored"))
    row = s.scalars(select(InboxRow).where(InboxRow.dedupe_key == dedupe_key, holding)).first()
    if row is None and business_key is not None:
        row = s.scalars(select(InboxRow).where(InboxRow.business_key == business_key, holding)).first()
    return row


def record_delivery(
    store: Store,
    d: NewDelivery,
    *,
    now: datetime | None = None,
    lease_owner: str | None = None,
    lease_until: datetime | None = None,
) -> Recorded:
    """Keep the delivery: a new pending row (optionally already leased to the caller, who relays
    it at once), or a ``duplicate`` row pointing at the earlier delivery it repeats."""
    now = now or utcnow()
    dedupe_key = bounded_key(d.dedupe_key)
    business_key = bounded_key(d.business_key) if d.business_key is not None else None
    for _ in range(3):
        try:
            with store.session() as s:
                holder = _holder(s, dedupe_key, business_key)
                row = InboxRow(
                    received_at=now,
                    source=d.source[:64],
                    topic=d.topic[:64],
                    delivery_id=_clip(d.delivery_id, ID_MAX),
                    event_id=_clip(d.event_id, ID_MAX),
                    dedupe_key=dedupe_key,
                    business_key=business_key,
                    duplicate_of=holder.id if holder is not None else None,
                    workflow_id=d.workflow_id,
                    action=d.action,
                    signal=d.signal,
                    argument=d.argument,
                    correlation_id=d.correlation_id[:ID_MAX],
                    relay_id=uuid.uuid4().hex,
                    headers=d.headers,
                    body=d.body,
                    status="pending" if holder is None else "duplicate",
                    attempts=0,
                    next_attempt_at=now,
                    lease_owner=lease_owner if holder is None else None,
                    lease_until=lease_until if holder is None else None,
                )
                if holder is not None:
                    same = "event id" if holder.dedupe_key == dedupe_key else "business key"
                    row.outcome = f"duplicate of #{holder.id} (same {same})"
                    row.settled_at = now
                s.add(row)
                s.flush()
                return Recorded(_entry(row), _entry(holder) if holder is not None else None)
        except IntegrityError:
            # A concurrent delivery of the same event took the key between our look and our
            # insert (PostgreSQL; SQLite writers are serialised): look again, find it.
            continue
    raise RuntimeError(f"could not record delivery {d.dedupe_key!r}: its keys keep changing hands")


# -- relaying ---------------------------------------------------------------------------------


def new_lease_owner(name: str) -> str:
    """A claim token: the relay's name plus a random part, unique per claim."""
    return f"{name[:80]}:{uuid.uuid4().hex}"


def claim_due(
    store: Store, owner: str, *, lease_until: datetime, now: datetime | None = None, limit: int = 100
) -> list[InboxEntry]:
    """Take up to ``limit`` pending rows that are due and not leased by another relay, oldest
    first. One conditional UPDATE: of several relays running at once each row goes to one."""
    now = now or utcnow()
    claimable = (
        InboxRow.status == "pending",
        InboxRow.next_attempt_at <= now,
        or_(InboxRow.lease_until.is_(None), InboxRow.lease_until < now),
    )
    due = select(InboxRow.id).where(*claimable).order_by(InboxRow.id).limit(limit).scalar_subquery()
    with store.session() as s:
        s.execute(
            update(InboxRow)
            .where(InboxRow.id.in_(due), *claimable)
            .values(lease_owner=owner, lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
    with store.session() as s:
        rows = s.scalars(select(InboxRow).where(InboxRow.lease_owner == owner).order_by(InboxRow.id))
        return [_entry(r) for r in rows if r.status == "pending"]


def _settle(store: Store, entry_id: int, **values: Any) -> bool:
    with store.session() as s:
        result = s.execute(
            update(InboxRow)
            .where(InboxRow.id == entry_id, InboxRow.status == "pending")
            .values(lease_owner=None, lease_until=None, **values)
        )
        return rowcount(result) == 1


def mark_relayed(store: Store, entry_id: int, outcome: str, *, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return _settle(
        store,
        entry_id,
        status="relayed",
        outcome=outcome[:TEXT_MAX],
        settled_at=now,
        attempts=InboxRow.attempts + 1,
    )


def mark_ignored(store: Store, entry_id: int, outcome: str, *, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return _settle(
        store,
        entry_id,
        status="ignored",
        outcome=outcome[:TEXT_MAX],
        settled_at=now,
        attempts=InboxRow.attempts + 1,
    )


def mark_rejected(
    store: Store,
    entry_id: int,
    reason: str,
    detail: str,
    *,
    status_code: int = 404,
    now: datetime | None = None,
) -> bool:
    """Refused when relayed: the row gives its keys up and is listed among the rejections."""
    now = now or utcnow()
    with store.session() as s:
        row = s.get(InboxRow, entry_id)
        if row is None or row.status != "pending":
            return False
        row.status = "rejected"
        row.outcome = f"{reason}: {detail}"[:TEXT_MAX]
        row.settled_at = now
        row.attempts += 1
        row.lease_owner = None
        row.lease_until = None
        s.add(
            RejectionRow(
                received_at=now,
                source=row.source,
                topic=row.topic,
                delivery_id=row.delivery_id,
                event_id=row.event_id,
                status_code=status_code,
                reason=reason[:64],
                detail=detail[:TEXT_MAX],
                path=None,
                headers=dict(row.headers),
                body=row.body,
                body_sha256=hashlib.sha256(row.body).hexdigest(),
                body_size=len(row.body),
                inbox_id=row.id,
            )
        )
        return True


def mark_failed(store: Store, entry_id: int, error: str, *, retry_at: datetime) -> bool:
    """A relay attempt failed: count it, say why, and leave the row pending until ``retry_at``."""
    return _settle(
        store,
        entry_id,
        attempts=InboxRow.attempts + 1,
        last_error=error[:TEXT_MAX],
        next_attempt_at=retry_at,
    )


def release(store: Store, entry_ids: list[int]) -> None:
    """Give claimed rows back untried (e.g. Temporal is down: no point trying the rest now)."""
    if not entry_ids:
        return
    with store.session() as s:
        s.execute(
            update(InboxRow)
            .where(InboxRow.id.in_(entry_ids), InboxRow.status == "pending")
            .values(lease_owner=None, lease_until=None)
        )


def expedite_pending(store: Store, *, now: datetime | None = None) -> int:
    """Make every pending row due now (Temporal is back: no need to sit out the backoff)."""
    now = now or utcnow()
    with store.session() as s:
        result = s.execute(
            update(InboxRow)
            .where(InboxRow.status == "pending", InboxRow.next_attempt_at > now)
            .values(next_attempt_at=now)
        )
        return rowcount(result)


def requeue(store: Store, entry_id: int, *, now: datetime | None = None) -> InboxEntry:
    """Send a rejected or ignored row through the relay again (an operator's decision).

    Raises ValueError when the row does not exist, is not settled that way, or a newer delivery
    of the same event now holds its keys."""
    now = now or utcnow()
    try:
        with store.session() as s:
            row = s.get(InboxRow, entry_id)
            if row is None:
                raise ValueError(f"no inbox entry #{entry_id}")
            if row.status not in ("rejected", "ignored"):
                raise ValueError(f"inbox entry #{entry_id} is {row.status}; only rejected or ignored ones")
            row.status = "pending"
            row.next_attempt_at = now
            row.settled_at = None
            row.last_error = None
            row.outcome = f"requeued by an operator ({row.outcome})"[:TEXT_MAX]
            s.flush()
            return _entry(row)
    except IntegrityError as exc:
        raise ValueError(f"a later delivery of the same event holds #{entry_id}'s keys") from exc


def pending_start_for(store: Store, workflow_id: str) -> bool:
    """Whether a delivery that starts this workflow is still waiting to be relayed."""
    with store.session() as s:
        found = s.scalar(
            select(InboxRow.id)
            .where(
                InboxRow.workflow_id == workflow_id,
                InboxRow.action == "start",
                InboxRow.status == "pending",
            )
            .limit(1)
        )
        return found is not None


# -- reading ----------------------------------------------------------------------------------


def get_entry(store: Store, entry_id: int) -> InboxEntry | None:
    with store.session() as s:
        row = s.get(InboxRow, entry_id)
        return _entry(row) if row is not None else None


def entry_body(store: Store, entry_id: int) -> bytes | None:
    with store.session() as s:
        return s.scalar(select(InboxRow.body).where(InboxRow.id == entry_id))


def list_inbox(
    store: Store,
    *,
    status: InboxStatus | None = None,
    since: datetime | None = None,
    workflow_id: str | None = None,
    limit: int = 100,
) -> list[InboxEntry]:
    """Newest first."""
    query = select(InboxRow).order_by(InboxRow.id.desc()).limit(limit)
    if status is not None:
        query = query.where(InboxRow.status == status)
    if since is not None:
        query = query.where(InboxRow.received_at >= since)
    if workflow_id is not None:
        query = query.where(InboxRow.workflow_id == workflow_id)
    with store.session() as s:
        return [_entry(r) for r in s.scalars(query)]


def count_by_status(store: Store) -> dict[str, int]:
    with store.session() as s:
        counts = {status: 0 for status in INBOX_STATUSES}
        for status, n in s.execute(select(InboxRow.status, func.count()).group_by(InboxRow.status)):
            counts[status] = n
        return counts


def pending_stats(store: Store) -> tuple[int, datetime | None]:
    """How many deliveries wait to be relayed, and since when the oldest does (index-only)."""
    with store.session() as s:
        n, oldest = s.execute(
            select(func.count(), func.min(InboxRow.received_at)).where(InboxRow.status == "pending")
        ).one()
        return int(n), oldest


# -- rejections -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewRejection:
    source: str
    status_code: int
    reason: str
    detail: str
    headers: dict[str, str]
    topic: str | None = None
    delivery_id: str | None = None
    event_id: str | None = None
    path: str | None = None
    body: bytes | None = None
    body_sha256: str | None = None
    body_size: int | None = None


def record_rejection(store: Store, r: NewRejection, *, now: datetime | None = None) -> int:
    with store.session() as s:
        row = RejectionRow(
            received_at=now or utcnow(),
            source=r.source[:64],
            topic=_clip(r.topic, 64),
            delivery_id=_clip(r.delivery_id, ID_MAX),
            event_id=_clip(r.event_id, ID_MAX),
            status_code=r.status_code,
            reason=r.reason[:64],
            detail=r.detail[:TEXT_MAX],
            path=_clip(r.path, ID_MAX),
            headers=r.headers,
            body=r.body,
            body_sha256=r.body_sha256,
            body_size=r.body_size,
            inbox_id=None,
        )
        s.add(row)
        s.flush()
        return row.id


def list_rejections(store: Store, *, since: datetime | None = None, limit: int = 100) -> list[Rejection]:
    """Newest first."""
    query = select(RejectionRow).order_by(RejectionRow.id.desc()).limit(limit)
    if since is not None:
        query = query.where(RejectionRow.received_at >= since)
    with store.session() as s:
        return [_rejection(r) for r in s.scalars(query)]


def lease_deadline(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
