"""Tryton's stock moves mirrored into the platform's inventory ledger, so availability, the
channels and reconciliation see what Tryton reserved, shipped and received.

Tryton is the authority; the ledger follows it move by move. For each Tryton move the ledger
holds journal rows referenced ``tryton:<scope>:move:<id>`` (scope ``sale:<id>`` or ``stock``);
their deltas add up to what the move means
now (assigned: reserved; done out of a warehouse: left on hand; done into one: on hand). The
mirror writes only the difference, so mirroring twice writes nothing and a retried activity or
a move that was un-assigned and re-assigned never counts twice. Event ids are
``erp:<reference>:<n>`` (n = the move's journal rows so far): the ledger's own prefix,
written only here and by the builtin ERP.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from adapters.erp.inventory import move
from backoffice.erp import ErpItem, ErpStock
from canonical.inventory import MovementKind
from store.db import Store
from store.inventory import InventoryMovement

Direction = Literal["out", "in"]


@dataclass(frozen=True)
class MoveState:
    """One Tryton move as the ledger sees it: out of (or into) a platform location."""

    scope: str  # what the move belongs to: "sale:<id>", or "stock" for moves made in Tryton
    move_id: int
    sku: str
    location: str
    quantity: int
    state: str  # Tryton's: draft, staging, assigned, done, cancelled
    direction: Direction = "out"
    kind: MovementKind | None = None  # the journal's kind when on hand changes (else by direction)

    @property
    def reference(self) -> str:
        # A move between two platform warehouses is two legs: out of one, into the other.
        suffix = ":in" if self.direction == "in" else ""
        return f"tryton:{self.scope}:move:{self.move_id}{suffix}"

    def target(self) -> tuple[int, int]:
        """(on hand, reserved) this move accounts for now."""
        if self.direction == "in":
            return (self.quantity if self.state == "done" else 0), 0
        if self.state == "done":
            return -self.quantity, 0
        if self.state == "assigned":
            return 0, self.quantity
        return 0, 0


def _kind(on_hand: int, reserved: int, direction: Direction) -> MovementKind:
    if direction == "in":
        return "receipt" if on_hand > 0 else "adjustment"
    if on_hand < 0:
        return "shipment"
    if on_hand > 0:
        return "adjustment"  # a done move cancelled in Tryton: the goods are back
    return "reservation" if reserved > 0 else "release"


def mirror_in(
    s: Session,
    moves: Iterable[MoveState],
    *,
    scope: str | None = None,
    kind_in: MovementKind | None = None,
) -> list[str]:
    """Write the difference between each move and its journal rows; returns the SKUs changed.
    With ``scope``, ``moves`` are all the moves of that document now: one the ledger knows and
    Tryton no longer has (deleted when a shipment was split) accounts for nothing any more.
    Moves of SKUs the platform's item master does not hold are left out (the catalog sync
    brings them in)."""
    moves = list(moves)
    refs = [m.reference for m in moves]
    cond: ColumnElement[bool] = InventoryMovement.reference.in_(refs)
    if scope is not None:
        cond = or_(cond, InventoryMovement.reference.like(f"tryton:{scope}:move:%"))
    done: dict[str, tuple[int, int, int]] = {}
    where: dict[str, tuple[str, str]] = {}
    for ref, sku, loc, oh, res, n in s.execute(
        select(
            InventoryMovement.reference,
            InventoryMovement.sku,
            InventoryMovement.location,
            func.sum(InventoryMovement.on_hand_delta),
            func.sum(InventoryMovement.reserved_delta),
            func.count(),
        )
        .where(cond)
        .group_by(InventoryMovement.reference, InventoryMovement.sku, InventoryMovement.location)
    ):
        if ref is None:
            continue
        done[ref] = (int(oh or 0), int(res or 0), int(n))
        where[ref] = (sku, loc)
    if scope is not None:
        for ref in sorted(set(done) - set(refs)):
            oh, res, _ = done[ref]
            if res:  # gone from Tryton: its reservation goes back (its quantity lives on elsewhere)
                sku, loc = where[ref]
                direction: Direction = "in" if ref.endswith(":in") else "out"
                move_id = int(ref.removesuffix(":in").rsplit(":", 1)[1])
                moves.append(MoveState(scope, move_id, sku, loc, 0, "cancelled", direction))
    if not moves:
        return []
    changes = []
    for m in moves:
        oh, res, _ = done.get(m.reference, (0, 0, 0))
        t_oh, t_res = m.target()
        if (t_oh - oh, t_res - res) != (0, 0):
            changes.append((m, t_oh - oh, t_res - res))
    if not changes:
        return []
    skus = sorted({m.sku for m, _, _ in changes})
    known = set(s.scalars(select(ErpItem.sku).where(ErpItem.sku.in_(skus))))
    rows = _lock_rows(s, {(m.sku, m.location) for m, _, _ in changes if m.sku in known})
    changed: list[str] = []
    for m, d_oh, d_res in changes:
        row = rows.get((m.sku, m.location))
        if row is None:
            continue
        n = done.get(m.reference, (0, 0, 0))[2]
        if m.kind is not None and d_oh != 0:
            kind = m.kind
        elif kind_in is not None and m.direction == "in" and d_oh > 0:
            kind = kind_in
        else:
            kind = _kind(d_oh, d_res, m.direction)
        move(
            s,
            row,
            kind=kind,
            event_id=f"erp:{m.reference}:{n}",
            leg=0,
            quantity=abs(d_oh) or abs(d_res),
            on_hand=d_oh,
            reserved=d_res,
            source="erp",
            reference=m.reference,
        )
        changed.append(m.sku)
    return sorted(set(changed))


def mirror(
    store: Store, moves: Iterable[MoveState], *, scope: str | None = None, kind_in: MovementKind | None = None
) -> list[str]:
    with store.session() as s:
        return mirror_in(s, moves, scope=scope, kind_in=kind_in)


def _lock_rows(s: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], ErpStock]:
    """Lock (creating where missing) the positions of ``keys`` in (sku, location) order."""
    if not keys:
        return {}
    skus = sorted({k[0] for k in keys})
    q = (
        select(ErpStock)
        .where(ErpStock.sku.in_(skus))
        .order_by(ErpStock.sku, ErpStock.location)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    rows = {(r.sku, r.location): r for r in s.scalars(q)}
    for key in sorted(keys - set(rows)):
        row = ErpStock(sku=key[0], location=key[1], on_hand=0, reserved=0)
        s.add(row)
        rows[key] = row
    s.flush()
    return rows
