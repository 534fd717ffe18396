"""Reconciliation findings: every difference between two systems, kept until someone settles it.

A finding has a stable natural key (its kind and the keys that identify the thing compared, e.g.
``order_total_mismatch|shopify|1001``), so a second run over the same window finds the same row
and only moves ``last_seen`` (and counts the sighting) instead of adding a duplicate.

Statuses: ``open`` (someone should look), ``healed`` (reconciliation fixed it itself: a lost
order ingested, drifted stock pushed), ``resolved`` and ``ignored`` (an operator's decision,
with who, when and why). A finding seen again after an operator resolved it opens again; one an
operator ignored stays ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, Store

FindingStatus = Literal["open", "healed", "resolved", "ignored"]
STATUSES: tuple[FindingStatus, ...] = ("open", "healed", "resolved", "ignored")

# The kinds reconciliation records (docs/reconciliation.md explains each).
ORDER_MISSING_ON_PLATFORM = "order_missing_on_platform"
ORDER_NOT_IN_CHANNEL = "order_not_in_channel"
ORDER_TOTAL_MISMATCH = "order_total_mismatch"
ORDER_UNMAPPABLE = "order_unmappable"
INVENTORY_DRIFT = "inventory_drift"
# The inventory sync gave a SKU up after repeated compare-and-set mismatches (docs/inventory.md).
INVENTORY_COMPARE_CONFLICT = "inventory_compare_conflict"
CAPTURE_WITHOUT_INVOICE = "capture_without_invoice"
INVOICE_WITHOUT_PAYMENT = "invoice_without_payment"
SETTLEMENT_AMOUNT_MISMATCH = "settlement_amount_mismatch"
REFUND_WITHOUT_CREDIT_MEMO = "refund_without_credit_memo"
REFUND_EXCEEDS_CREDIT_MEMO = "refund_exceeds_credit_memo"
KINDS = (
    ORDER_MISSING_ON_PLATFORM,
    ORDER_NOT_IN_CHANNEL,
    ORDER_TOTAL_MISMATCH,
    ORDER_UNMAPPABLE,
    INVENTORY_DRIFT,
    INVENTORY_COMPARE_CONFLICT,
    CAPTURE_WITHOUT_INVOICE,
    INVOICE_WITHOUT_PAYMENT,
    SETTLEMENT_AMOUNT_MISMATCH,
    REFUND_WITHOUT_CREDIT_MEMO,
    REFUND_EXCEEDS_CREDIT_MEMO,
)

KEY_MAX = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


class FindingRow(Base):
    __tablename__ = "reconcile_findings"
    __table_args__ = (
        UniqueConstraint("natural_key", name="uq_reconcile_findings_natural_key"),
        CheckConstraint(
            "status IN ('open', 'healed', 'resolved', 'ignored')", name="ck_reconcile_findings_status"
        ),
        Index("ix_reconcile_findings_status_kind", "status", "kind"),
        Index("ix_reconcile_findings_last_seen", "last_seen"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    natural_key: Mapped[str] = mapped_column(String(KEY_MAX))
    kind: Mapped[str] = mapped_column(String(64))
    systems: Mapped[str] = mapped_column(String(200), doc="the systems compared, e.g. 'shopify,erp'")
    keys: Mapped[dict[str, str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(300), doc="what it is about, for people: an order key, a SKU")
    expected: Mapped[Decimal | None] = mapped_column(nullable=True)
    actual: Mapped[Decimal | None] = mapped_column(nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    detail: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    healed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sightings: Mapped[int] = mapped_column(Integer)
    last_run: Mapped[str | None] = mapped_column(String(300), nullable=True, doc="the workflow that saw it")


@dataclass(frozen=True)
class NewFinding:
    """A difference as a comparison reports it; ``healed`` when the run already fixed it."""

    kind: str
    systems: Sequence[str]
    keys: dict[str, str]
    subject: str
    detail: str
    expected: Decimal | None = None
    actual: Decimal | None = None
    currency: str | None = None
    healed: bool = False

    @property
    def natural_key(self) -> str:
        parts = [self.kind, *(f"{k}={v}" for k, v in sorted(self.keys.items()))]
        return "|".join(parts)[:KEY_MAX]


@dataclass(frozen=True)
class Finding:
    id: int
    kind: str
    systems: list[str]
    keys: dict[str, str]
    subject: str
    expected: Decimal | None
    actual: Decimal | None
    currency: str | None
    detail: str
    status: FindingStatus
    reason: str | None
    decided_by: str | None
    decided_at: datetime | None
    healed_at: datetime | None
    first_seen: datetime
    last_seen: datetime
    sightings: int
    last_run: str | None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = str(value)
            out[name] = value
        return out


@dataclass
class RecordResult:
    """What one batch of sightings did to the table."""

    new: int = 0
    seen_again: int = 0
    healed: int = 0
    reopened: int = 0


def _view(r: FindingRow) -> Finding:
    return Finding(
        id=r.id,
        kind=r.kind,
        systems=[s for s in r.systems.split(",") if s],
        keys=dict(r.keys),
        subject=r.subject,
        expected=r.expected,
        actual=r.actual,
        currency=r.currency,
        detail=r.detail,
        status=r.status,  # type: ignore[arg-type]
        reason=r.reason,
        decided_by=r.decided_by,
        decided_at=_aware(r.decided_at),
        healed_at=_aware(r.healed_at),
        first_seen=_aware(r.first_seen) or utcnow(),
        last_seen=_aware(r.last_seen) or utcnow(),
        sightings=r.sightings,
        last_run=r.last_run,
    )


def record_findings(
    store: Store, found: Iterable[NewFinding], run: str | None = None, now: datetime | None = None
) -> RecordResult:
    """Insert new findings and update those already known (by natural key), in one transaction.

    Seen again: ``last_seen``, the figures and the detail move on; an open one the run healed
    becomes ``healed``; a resolved one opens again (it came back); an ignored one stays ignored.
    """
    batch = {f.natural_key: f for f in found}  # one sighting per key per batch
    result = RecordResult()
    if not batch:
        return result
    at = now or utcnow()
    for attempt in range(2):
        try:
            result = RecordResult()
            with store.session() as s:
                keys = list(batch)
                existing: dict[str, FindingRow] = {}
                for n in range(0, len(keys), 500):
                    q = select(FindingRow).where(FindingRow.natural_key.in_(keys[n : n + 500]))
                    existing.update({r.natural_key: r for r in s.scalars(q)})
                for key, f in batch.items():
                    row = existing.get(key)
                    if row is None:
                        row = FindingRow(
                            natural_key=key,
                            kind=f.kind,
                            systems=",".join(f.systems),
                            keys=dict(f.keys),
                            subject=f.subject[:300],
                            first_seen=at,
                            sightings=0,
                            status="healed" if f.healed else "open",
                            healed_at=at if f.healed else None,
                        )
                        s.add(row)
                        result.new += 1
                    else:
                        result.seen_again += 1
                        if row.status == "resolved" or (row.status == "healed" and not f.healed):
                            row.status = "open"  # it came back, and nothing fixed it this time
                            row.reason = row.decided_by = None
                            row.decided_at = None
                            result.reopened += 1
                        if f.healed and row.status == "open":
                            row.status, row.healed_at = "healed", at
                    if f.healed:
                        result.healed += 1
                    row.expected, row.actual, row.currency = f.expected, f.actual, f.currency
                    row.detail = f.detail
                    row.last_seen = at
                    row.sightings += 1
                    row.last_run = run
            return result
        except IntegrityError:
            if attempt:  # a concurrent run inserted the same key first: the retry updates it
                raise
    return result


def list_findings(
    store: Store,
    *,
    status: Sequence[str] | None = None,
    kind: str | None = None,
    limit: int = 200,
    since: datetime | None = None,
) -> list[Finding]:
    q = select(FindingRow).order_by(FindingRow.last_seen.desc(), FindingRow.id.desc()).limit(limit)
    if status:
        q = q.where(FindingRow.status.in_(list(status)))
    if kind:
        q = q.where(FindingRow.kind == kind)
    if since is not None:
        q = q.where(FindingRow.last_seen >= since)
    with store.reading() as s:
        return [_view(r) for r in s.scalars(q)]


def get_finding(store: Store, finding_id: int) -> Finding | None:
    with store.reading() as s:
        row = s.get(FindingRow, finding_id)
        return _view(row) if row is not None else None


def find_by_key(store: Store, natural_key: str) -> Finding | None:
    with store.reading() as s:
        row = s.scalar(select(FindingRow).where(FindingRow.natural_key == natural_key))
        return _view(row) if row is not None else None


def decide(
    store: Store, finding_id: int, status: Literal["resolved", "ignored"], reason: str, operator: str
) -> Finding:
    """An operator settles a finding (resolved: fixed by hand; ignored: not worth fixing)."""
    if not reason.strip():
        raise ValueError("a reason is required")
    with store.session() as s:
        row = s.get(FindingRow, finding_id, with_for_update=True)
        if row is None:
            raise LookupError(f"no finding {finding_id}")
        row.status, row.reason, row.decided_by, row.decided_at = status, reason.strip(), operator, utcnow()
        s.flush()
        return _view(row)


def counts_by_kind(store: Store) -> dict[tuple[str, str], int]:
    """(kind, status) -> number of findings: the metrics' source."""
    q = select(FindingRow.kind, FindingRow.status, func.count()).group_by(FindingRow.kind, FindingRow.status)
    with store.reading() as s:
        return {(k, st): int(n) for k, st, n in s.execute(q)}
