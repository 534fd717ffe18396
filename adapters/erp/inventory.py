"""The inventory ledger: one journal for every stock movement, positions per SKU and location,
what each channel may sell, and a cheap "what changed" feed for the channel sync.

Positions are the builtin ERP's ``erp_stock`` rows (on hand, reserved; available to promise is
on hand minus reserved, never below zero). Nothing changes them except :func:`move`, which
appends a journal row in the same transaction: the ERP's own allocation, shipment and
cancellation, the stock import and :meth:`InventoryLedger.apply` for events from elsewhere.
See docs/inventory.md for the model, the movement kinds and the locking rules.

Idempotency: an event's ``event_id`` is stored with its journal rows (unique with the leg).
A replay writes nothing and returns the positions the event produced the first time (the
balances recorded in its journal rows), not the current ones. Ids starting ``erp:`` or
``import:`` are the ledger's own (derived from ERP documents and import runs) and refused
from outside.

Out-of-order counts: a cycle count is absolute, so one taken before the newest count already
applied at its position (``erp_stock.counted_at``) would put back an old figure. It changes
nothing: it is journalled with zero deltas and ``stale`` set (its id is taken, so a replay
answers the same), and ``apply`` returns the position as it is.

Locking: the stock rows an event touches are locked before they are read (``SELECT ... FOR
UPDATE`` on PostgreSQL, always in (sku, location) order, after the sales order row when
there is one; SQLite's ``BEGIN IMMEDIATE`` serialises writers). Journal ids come from a
sequence, which on PostgreSQL hands them out in insert order, not commit order: every writer
holds the shared side of an advisory "sequence barrier" from its first journal insert to its
commit, and :meth:`InventoryLedger.changes_since` takes the exclusive side for an instant to
find the highest id below which nothing can still appear.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.errors import PermanentError, TransientError
from adapters.store_calls import store_errors
from backoffice.erp import ErpItem, ErpStock
from canonical.inventory import ChannelAvailability, InventoryEvent, MovementKind, StockPosition
from store.db import Store
from store.inventory import (
    ChannelPolicy,
    InventoryChannelPolicy,
    InventoryMovement,
    Movement,
    aware,
    utcnow,
)

__all__ = [
    "RESERVED_PREFIXES",
    "InventoryLedger",
    "apply_in",
    "import_run_id",
    "journal_barrier",
    "move",
]

log = structlog.get_logger(__name__)

SYSTEM = "inventory"
# Event ids the ledger writes itself; an outside event may not use them.
RESERVED_PREFIXES = ("erp:", "import:")
# The advisory lock key of the journal's sequence barrier (PostgreSQL), "RCINV".
_BARRIER_KEY = 0x5243494E56
_BARRIER_TXN = "inventory.barrier_txn"
_ATTEMPTS = 4
_CHUNK = 500


def _permanent(message: str, reason: str) -> PermanentError:
    return PermanentError(message, reason=reason, system=SYSTEM)


# -- the journal (used by the ERP, the import and apply) -------------------------------------


def journal_barrier(s: Session) -> None:
    """Take the shared side of the sequence barrier once per transaction (PostgreSQL only).

    Flushes pending writes first, so a wait on someone else's insert (a unique key, a new
    position) never happens while the barrier is held; from here to the commit a writer
    only touches rows it has locked already."""
    txn = s.get_transaction()
    if txn is not None and s.info.get(_BARRIER_TXN) is txn:
        return
    s.flush()
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": _BARRIER_KEY})
    s.info[_BARRIER_TXN] = txn


def move(
    s: Session,
    row: ErpStock,
    *,
    kind: MovementKind,
    event_id: str,
    leg: int,
    quantity: int,
    on_hand: int = 0,
    reserved: int = 0,
    source: str,
    reference: str | None,
    occurred_at: datetime | None = None,
    stale: bool = False,
) -> InventoryMovement:
    """Change a locked position by ``on_hand``/``reserved`` and journal it: the one way stock
    changes. The caller has checked the rules and holds the row lock. A cycle count (not
    ``stale``) also becomes the position's newest count, which older counts cannot undo."""
    journal_barrier(s)
    # UTC: SQLite keeps a timestamp without its offset, and it is read back as UTC.
    at = aware(occurred_at or utcnow()).astimezone(UTC)
    row.on_hand += on_hand
    row.reserved += reserved
    if kind == "cycle_count" and not stale:
        last = aware(row.counted_at) if row.counted_at is not None else None
        row.counted_at = at if last is None or at > last else last
    m = InventoryMovement(
        event_id=event_id,
        leg=leg,
        kind=kind,
        sku=row.sku,
        location=row.location,
        quantity=quantity,
        on_hand_delta=on_hand,
        reserved_delta=reserved,
        on_hand_after=row.on_hand,
        reserved_after=row.reserved,
        source=source,
        reference=reference,
        occurred_at=at,
        recorded_at=utcnow(),
        stale=stale,
    )
    s.add(m)
    return m


def import_run_id() -> str:
    """A fresh id for one stock import; its rows are journalled as ``import:<run>:<row>``."""
    return uuid.uuid4().hex[:16]


def _position(row: ErpStock) -> StockPosition:
    return StockPosition(sku=row.sku, location=row.location, on_hand=row.on_hand, reserved=row.reserved)


def _recorded(s: Session, event_id: str) -> list[InventoryMovement]:
    q = (
        select(InventoryMovement)
        .where(InventoryMovement.event_id == event_id)
        .order_by(InventoryMovement.leg)
    )
    return list(s.scalars(q))


def _replay(event: InventoryEvent, done: list[InventoryMovement]) -> list[StockPosition]:
    """The positions the event produced the first time; refuses an id reused for another change."""
    first = done[0]
    to_location = done[1].location if first.kind == "transfer" and len(done) > 1 else None
    if (first.kind, first.sku, first.location, first.quantity, to_location) != (
        event.kind,
        event.sku,
        event.location,
        event.quantity,
        event.to_location,
    ):
        raise _permanent(
            f"event {event.event_id} was already applied as a {first.kind} of {first.quantity}"
            f" {first.sku} at {first.location}",
            "event_id_reuse",
        )
    after: dict[tuple[str, str], StockPosition] = {}
    for m in done:
        after[(m.sku, m.location)] = StockPosition(
            sku=m.sku, location=m.location, on_hand=m.on_hand_after, reserved=m.reserved_after
        )
    return list(after.values())


def _stale_count(event: InventoryEvent, row: ErpStock | None) -> bool:
    """Whether ``event`` is a cycle count taken before the newest count applied at its position.
    A tie is not stale: sources that stamp whole seconds (Shopify) cannot order two counts
    within one second, and the later arrival is the better guess."""
    if event.kind != "cycle_count" or row is None or row.counted_at is None:
        return False
    return aware(event.occurred_at) < aware(row.counted_at)


def _legs(event: InventoryEvent, rows: dict[str, ErpStock]) -> list[tuple[ErpStock, int, int]]:
    """(position, on hand delta, reserved delta) per leg, or PermanentError when the rules
    refuse the movement (nothing is written then)."""
    q = event.quantity
    row = rows[event.location]
    where = f"{event.sku} at {event.location}"
    match event.kind:
        case "receipt" | "return_restock":
            return [(row, q, 0)]
        case "adjustment":
            if row.on_hand + q < 0:
                raise _permanent(
                    f"adjusting {where} by {q}: only {row.on_hand} on hand", "insufficient_stock"
                )
            return [(row, q, 0)]
        case "transfer":
            assert event.to_location is not None
            if event.to_location == event.location:
                raise _permanent(f"transfer of {where} to the same location", "invalid_event")
            if row.available < q:
                raise _permanent(
                    f"transferring {q} {where}: {row.available} unreserved", "insufficient_stock"
                )
            return [(row, -q, 0), (rows[event.to_location], q, 0)]
        case "cycle_count":
            return [(row, q - row.on_hand, 0)]
        case "reservation":
            if row.available < q:
                raise _permanent(f"reserving {q} {where}: {row.available} available", "insufficient_stock")
            return [(row, 0, q)]
        case "release":
            if row.reserved < q:
                raise _permanent(f"releasing {q} {where}: {row.reserved} reserved", "insufficient_reserved")
            return [(row, 0, -q)]
        case "shipment":
            if row.on_hand < q:
                raise _permanent(f"shipping {q} {where}: {row.on_hand} on hand", "insufficient_stock")
            if row.reserved < q:
                raise _permanent(f"shipping {q} {where}: {row.reserved} reserved", "not_reserved")
            return [(row, -q, -q)]
        case "channel_sale":
            # Already happened at the till: recorded even past zero; available clamps at 0.
            return [(row, -q, 0)]
    raise AssertionError(f"unhandled movement kind {event.kind}")  # pragma: no cover


# Column widths, checked up front so both databases refuse the same events the same way.
_WIDTHS = {"sku": 100, "location": 100, "to_location": 100, "source": 100, "reference": 200}


# How far ahead of our clock a count's time may be (senders' clocks drift).
COUNT_CLOCK_SKEW = timedelta(minutes=5)


def _check(event: InventoryEvent) -> None:
    if event.event_id.startswith(RESERVED_PREFIXES):
        raise _permanent(f"event id {event.event_id!r} uses a reserved prefix", "reserved_event_id")
    for name, width in _WIDTHS.items():
        value = getattr(event, name)
        if value is not None and len(value) > width:
            raise _permanent(
                f"event {event.event_id}: {name} longer than {width} characters", "invalid_event"
            )
    if event.kind == "cycle_count" and aware(event.occurred_at) > datetime.now(UTC) + COUNT_CLOCK_SKEW:
        # Taken as the newest count, it would make every real count until then look stale.
        raise _permanent(
            f"count {event.event_id} is dated {event.occurred_at.isoformat()}, in the future:"
            " check the sender's clock",
            "count_in_future",
        )


def apply_in(s: Session, event: InventoryEvent) -> list[StockPosition]:
    """Apply ``event`` inside the caller's transaction (see :meth:`InventoryLedger.apply`)."""
    _check(event)
    done = _recorded(s, event.event_id)
    if done:
        return _replay(event, done)
    if s.get(ErpItem, event.sku) is None:
        raise _permanent(f"SKU {event.sku} is not in the item master", "unknown_sku")
    locations = sorted({event.location, *([event.to_location] if event.to_location else [])})
    q = (
        select(ErpStock)
        .where(ErpStock.sku == event.sku, ErpStock.location.in_(locations))
        .order_by(ErpStock.location)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    rows = {r.location: r for r in s.scalars(q)}
    # With the locks held, a concurrent copy of this event has committed (seen now) or has not
    # started writing; a copy racing to create the same new position fails on its key.
    done = _recorded(s, event.event_id)
    if done:
        return _replay(event, done)
    stale = _stale_count(event, rows.get(event.location))
    new = [
        ErpStock(sku=event.sku, location=loc, on_hand=0, reserved=0) for loc in locations if loc not in rows
    ]
    rows.update((r.location, r) for r in new)
    # A stale count is journalled with no effect (its id taken, so a replay answers the same).
    legs = [(rows[event.location], 0, 0)] if stale else _legs(event, rows)  # refuses before adding
    if stale:
        counted_at = rows[event.location].counted_at
        log.info(
            "stale cycle count journalled without effect",
            event_id=event.event_id,
            sku=event.sku,
            location=event.location,
            occurred_at=event.occurred_at.isoformat(),
            newest_count_at=aware(counted_at).isoformat() if counted_at else None,
        )
    s.add_all(new)
    for i, (row, on_hand, reserved) in enumerate(legs):
        move(
            s,
            row,
            kind=event.kind,
            event_id=event.event_id,
            leg=i,
            quantity=event.quantity,
            on_hand=on_hand,
            reserved=reserved,
            source=event.source,
            reference=event.reference,
            occurred_at=event.occurred_at,
            stale=stale,
        )
    s.flush()
    return [_position(row) for row, _, _ in legs]


# -- the ledger -------------------------------------------------------------------------------


class InventoryLedger:
    """Stock movements, positions and channel availability over the store.

    Methods are synchronous (one transaction each); from async code run them in a thread
    (``asyncio.to_thread`` or ``adapters.store_calls.in_thread``). Store failures surface as
    ``TransientError``/``PermanentError`` like every adapter's."""

    def __init__(self, store: Store, store_shelves: Collection[str] = ()) -> None:
        self.store = store
        # Locations whose stock a channel's POS sells (RETAIL_SHOPIFY_STORE_LOCATIONS): offered
        # to a channel only when its policy names them (the ERP never allocates web orders there).
        self.store_shelves = frozenset(store_shelves)

    # -- movements ---------------------------------------------------------------------------

    def apply(self, event: InventoryEvent) -> list[StockPosition]:
        """Apply one movement; returns the positions it changed (two for a transfer).

        Idempotent on ``event.event_id``: a replay writes nothing and returns the positions as
        the first application left them. A cycle count older than the newest count at its
        position (``occurred_at``) changes nothing: it is journalled as ``stale`` and the
        position is returned as it is. PermanentError reasons: ``unknown_sku``,
        ``insufficient_stock``, ``insufficient_reserved``, ``not_reserved``, ``invalid_event``,
        ``event_id_reuse`` (same id, different change), ``reserved_event_id``."""
        with store_errors(SYSTEM):
            for _ in range(_ATTEMPTS):
                try:
                    with self.store.session() as s:
                        return apply_in(s, event)
                except IntegrityError:
                    continue  # a concurrent writer created the position or the event: look again
        raise TransientError(
            f"event {event.event_id} kept conflicting with concurrent writers", system=SYSTEM
        )

    def positions(self, sku: str | None = None, location: str | None = None) -> list[StockPosition]:
        """Positions ordered by sku then location, optionally for one sku and/or location."""
        q = select(ErpStock).order_by(ErpStock.sku, ErpStock.location)
        if sku is not None:
            q = q.where(ErpStock.sku == sku)
        if location is not None:
            q = q.where(ErpStock.location == location)
        with store_errors(SYSTEM), self.store.reading() as s:
            return [_position(r) for r in s.scalars(q)]

    def movements(self, sku: str, limit: int = 100, location: str | None = None) -> list[Movement]:
        """The latest ``limit`` journal rows of ``sku`` (optionally at one location), newest first."""
        q = select(InventoryMovement).where(InventoryMovement.sku == sku)
        if location is not None:
            q = q.where(InventoryMovement.location == location)
        q = q.order_by(InventoryMovement.id.desc()).limit(limit)
        with store_errors(SYSTEM), self.store.reading() as s:
            return [Movement.of(m) for m in s.scalars(q)]

    def changes_since(self, seq: int, limit: int = 10_000) -> tuple[list[str], int]:
        """SKUs whose on hand or reserved changed in journal rows after ``seq``, and the
        sequence to pass next time.

        No row is ever skipped: rows are read only up to the highest id below which no
        transaction is still writing (on PostgreSQL ids are handed out before commit, so a
        higher id can commit first). At most ``limit`` rows are read per call."""
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        with store_errors(SYSTEM):
            with self.store.session() as s:
                if s.get_bind().dialect.name == "postgresql":
                    s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _BARRIER_KEY})
                high = s.scalar(select(func.max(InventoryMovement.id))) or 0
            if high <= seq:
                return [], seq
            q = (
                select(
                    InventoryMovement.id,
                    InventoryMovement.sku,
                    InventoryMovement.on_hand_delta,
                    InventoryMovement.reserved_delta,
                )
                .where(InventoryMovement.id > seq, InventoryMovement.id <= high)
                .order_by(InventoryMovement.id)
                .limit(limit)
            )
            with self.store.session() as s:
                rows = s.execute(q).all()
        last = rows[-1].id if len(rows) >= limit else high
        skus = sorted({r.sku for r in rows if r.on_hand_delta or r.reserved_delta})
        return skus, last

    def earliest_change_after(self, seq: int, up_to: int) -> datetime | None:
        """When the oldest journal row in ``(seq, up_to]`` that changed a position was written:
        where a channel's sync lag starts (None when no row changed anything)."""
        q = select(func.min(InventoryMovement.recorded_at)).where(
            InventoryMovement.id > seq,
            InventoryMovement.id <= up_to,
            (InventoryMovement.on_hand_delta != 0) | (InventoryMovement.reserved_delta != 0),
        )
        with store_errors(SYSTEM), self.store.session() as s:
            at = s.scalar(q)
        return None if at is None else (at.replace(tzinfo=UTC) if at.tzinfo is None else at)

    # -- channels ----------------------------------------------------------------------------

    def set_channel_policy(
        self, channel: str, locations: Sequence[str] | None = None, safety_buffer: int = 0
    ) -> ChannelPolicy:
        """Sell ``channel`` from ``locations`` (None: every location) holding back
        ``safety_buffer`` units per SKU. Changes every SKU's number for the channel: push the
        channel's whole catalogue afterwards (the journal does not record policy changes)."""
        if not channel.strip():
            raise ValueError("channel must not be blank")
        if safety_buffer < 0:
            raise ValueError(f"safety_buffer must not be negative, got {safety_buffer}")
        mapped: list[str] | None = None
        if locations is not None:
            if isinstance(locations, str):
                raise ValueError("locations must be a list of location names, not a string")
            mapped = sorted({loc.strip() for loc in locations})
            if not mapped or "" in mapped:
                raise ValueError("locations must name at least one location (None means all)")
        with store_errors(SYSTEM):
            for _ in range(_ATTEMPTS):
                try:
                    with self.store.session() as s:
                        row = s.get(InventoryChannelPolicy, channel, with_for_update=True)
                        if row is None:
                            s.add(
                                InventoryChannelPolicy(
                                    channel=channel, locations=mapped, safety_buffer=safety_buffer
                                )
                            )
                        else:
                            row.locations, row.safety_buffer = mapped, safety_buffer
                    return ChannelPolicy(channel, mapped, safety_buffer)
                except IntegrityError:
                    continue  # set concurrently for a new channel: update the winner's row
        raise TransientError(f"channel policy {channel} kept conflicting", system=SYSTEM)

    def channel_policy(self, channel: str) -> ChannelPolicy:
        """The channel's policy; a channel never set sells every location with no buffer."""
        with store_errors(SYSTEM), self.store.reading() as s:
            return _policy(s, channel)

    def channel_availability(self, channel: str, skus: Iterable[str]) -> list[ChannelAvailability]:
        """Per SKU (in the order given, once each): available summed over the channel's
        locations (by default every one but the stores' shelves), minus its safety buffer,
        never below zero. A SKU without stock (or unknown
        to the ERP) is 0: a channel is never told it may sell what the ledger cannot back."""
        wanted = list(dict.fromkeys(skus))
        with store_errors(SYSTEM), self.store.reading() as s:
            policy = _policy(s, channel)
            total = dict.fromkeys(wanted, 0)
            where: dict[str, set[str]] = {sku: set() for sku in wanted}
            for n in range(0, len(wanted), _CHUNK):
                q = select(ErpStock).where(ErpStock.sku.in_(wanted[n : n + _CHUNK]))
                if policy.locations is not None:
                    q = q.where(ErpStock.location.in_(policy.locations))
                elif self.store_shelves:
                    q = q.where(ErpStock.location.not_in(self.store_shelves))
                for r in s.scalars(q):
                    total[r.sku] += r.available
                    where[r.sku].add(r.location)
        return [
            ChannelAvailability(
                channel=channel,
                sku=sku,
                available=max(0, total[sku] - policy.safety_buffer),
                locations=policy.locations if policy.locations is not None else sorted(where[sku]),
                safety_buffer=policy.safety_buffer,
            )
            for sku in wanted
        ]


def _policy(s: Session, channel: str) -> ChannelPolicy:
    row = s.get(InventoryChannelPolicy, channel)
    if row is None:
        return ChannelPolicy(channel, None, 0)
    return ChannelPolicy(
        channel, list(row.locations) if row.locations is not None else None, row.safety_buffer
    )
