"""What every part of the Tryton ERP adapter shares: the JSON-RPC session, the company's
setup read at start, reading sales and their moves, and mirroring moves into the ledger."""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Callable, Collection, Coroutine
from decimal import Decimal
from typing import Any, Concatenate, ParamSpec, TypeVar

import structlog

from adapters.erp.tryton import master
from adapters.erp.tryton.batching import Batcher
from adapters.erp.tryton.master import Refs
from adapters.erp.tryton.mirror import MoveState, mirror
from adapters.erp.tryton.rpc import TrytonRpc
from adapters.errors import PermanentError
from adapters.store_calls import in_thread
from backoffice.erp import ErpItem, ErpStock
from canonical import InvoiceAmounts
from canonical.documents import (
    Allocation,
    BackorderLine,
    SalesOrderAck,
)
from store.db import Store

log = structlog.get_logger("tryton.erp")
SYSTEM = "erp"
OPEN_MOVE = ("draft", "staging", "waiting", "assigned")
LINE_NOTE = "line:"
GUEST = "Guest customer"


def platform_line(row: dict[str, Any]) -> str | None:
    """The platform's line id a sale line keeps in its note, None for the adapter's own lines
    (shipping, tax, discounts)."""
    note = row.get("note") or ""
    return note[len(LINE_NOTE) :] if note.startswith(LINE_NOTE) else None


def line_map(rows: list[dict[str, Any]]) -> dict[int, str]:
    """Sale line id -> the platform's line id, of sale lines read with their note."""
    return {r["id"]: line for r in rows if (line := platform_line(r)) is not None}


def sale_line_ids(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The platform's line id -> sale line id (``line_map`` the other way round)."""
    return {line: sale_line for sale_line, line in line_map(rows).items()}


def _permanent(message: str, reason: str) -> PermanentError:
    return PermanentError(message, system=SYSTEM, reason=reason)


S = TypeVar("S", bound="TrytonBase")
P = ParamSpec("P")
R = TypeVar("R")


def one_at_a_time(
    key: Callable[..., str],
) -> Callable[
    [Callable[Concatenate[S, P], Coroutine[Any, Any, R]]], Callable[Concatenate[S, P], Coroutine[Any, Any, R]]
]:
    """Serialise calls of one operation on one document (``key`` of the call's arguments) in
    this worker. A retry that waited finds what the first attempt did (every step looks its
    document up first) instead of repeating half of it. Across workers the look-ups alone
    protect; see docs/erp-tryton.md."""

    def deco(
        fn: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
    ) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
        @functools.wraps(fn)
        async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            async with self._doc_locks[key(*args, **kwargs)]:
                return await fn(self, *args, **kwargs)

        return wrapper

    return deco


class TrytonBase:
    """The Tryton adapter's shared state and reads. ``start()`` logs in and reads (or creates)
    what the adapter books on; it runs at worker start, so wrong credentials stop the worker
    there."""

    name = "tryton"

    def __init__(self, rpc: TrytonRpc, store: Store, *, never_allocate_from: Collection[str] = ()) -> None:
        self.rpc = rpc
        self.store = store
        self.never_allocate_from = set(never_allocate_from)
        self._refs: Refs | None = None
        self._locations: list[str] = []  # the platform's locations, read at start
        self._start_lock = asyncio.Lock()
        self._customer_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._party_create = asyncio.Lock()
        self.posting = Batcher(self._post_invoices)
        # How long a confirmed sale may wait for Tryton's queue worker to process it (_processed).
        # A read of its state after each pause.
        self.queue_wait_s: tuple[float, ...] = (0.1, 0.2, 0.4, 0.6, 0.7)
        # One operation per document at a time in this worker: an activity attempt Temporal
        # timed out may still be running when its retry starts, and the two would race on the
        # same sale (see one_at_a_time).
        self._doc_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # -- start ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in, read the company's setup, and make sure every platform location has its
        warehouse and every SKU of the item master its product."""
        await self.rpc.login()
        refs = await self.refs()
        locations, items = await in_thread(SYSTEM, self._platform_master)
        self._locations = [loc for loc in locations if loc not in self.never_allocate_from]
        for location in locations:
            wh = await master.ensure_warehouse(self.rpc, refs, location)
            if not wh.one_step:
                raise PermanentError(
                    f"Tryton's warehouse {location} ships in two steps (an output zone apart from its "
                    "storage): this adapter version ships from one-step warehouses only",
                    system=SYSTEM,
                    reason="erp_setup",
                )
        created = await master.ensure_products(self.rpc, refs, items)
        log.info("tryton ready", url=self.rpc.endpoint, warehouses=len(refs.warehouses), new_products=created)

    async def refs(self) -> Refs:
        if self._refs is None:
            async with self._start_lock:
                if self._refs is None:
                    self._refs = await master.load_refs(self.rpc)
        return self._refs

    def _platform_master(self) -> tuple[list[str], list[tuple[str, str, Decimal]]]:
        from sqlalchemy import select

        with self.store.reading() as s:
            locations = sorted(set(s.scalars(select(ErpStock.location).distinct())))
            items = [(i.sku, i.title, i.price) for i in s.scalars(select(ErpItem).where(ErpItem.active))]
        return [loc for loc in locations if loc not in self.never_allocate_from], items

    # -- reading Tryton ---------------------------------------------------------------------

    _SALE_FIELDS = (
        "number",
        "state",
        "reference",
        "lines",
        "shipments",
        "party",
        "invoice_address",
        "warehouse",
    )

    async def _sale(self, sale_id: int) -> dict[str, Any]:
        (sale,) = await self.rpc.model("sale.sale", "read", [sale_id], list(self._SALE_FIELDS))
        return dict(sale)

    async def _processed(self, sale: dict[str, Any]) -> dict[str, Any]:
        """Quoted, confirmed and processed (its shipments made), from wherever it is.
        Confirming queues Tryton's process of the sale: a Tryton without queue workers runs it
        before answering, one with workers runs it there at once. The adapter waits for the
        worker a little (processing here at the same time would collide on the sale's lock and
        do the work twice), then processes the sale itself."""
        buttons = {"draft": ["quote", "confirm"], "quotation": ["confirm"]}.get(sale["state"], [])
        for button in buttons:  # no read between: each button's outcome is its state
            await self.rpc.model("sale.sale", button, [sale["id"]])
        if not buttons and sale["state"] != "confirmed":
            return sale
        state = await self._state(sale["id"]) if buttons else sale["state"]
        for pause in self.queue_wait_s:
            if state != "confirmed":
                break
            await asyncio.sleep(pause)
            state = await self._state(sale["id"])
        if state == "confirmed":
            await self.rpc.model("sale.sale", "process", [sale["id"]])
        return await self._sale(sale["id"])

    async def _state(self, sale_id: int) -> str:
        (row,) = await self.rpc.model("sale.sale", "read", [sale_id], ["state"])
        return str(row["state"])

    async def _sale_by_reference(self, reference: str) -> dict[str, Any] | None:
        found = await self.rpc.search_read(
            "sale.sale",
            [("reference", "=", reference), ("state", "!=", "cancelled")],
            list(self._SALE_FIELDS),
            order=[("id", "ASC")],
            limit=1,
        )
        return dict(found[0]) if found else None

    async def _sale_by_number(self, number: str) -> dict[str, Any]:
        found = await self.rpc.search_read(
            "sale.sale", [("number", "=", number)], list(self._SALE_FIELDS), limit=1
        )
        if not found:
            raise _permanent(f"Tryton has no sale {number}", "unknown_order")
        return dict(found[0])

    async def _sale_lines(self, sale: dict[str, Any]) -> list[dict[str, Any]]:
        """The sale's lines with everything an operation reads of them (one call)."""
        rows: list[dict[str, Any]] = await self.rpc.model(
            "sale.line",
            "read",
            sale["lines"],
            ["note", "description", "quantity", "unit_price", "product", "unit"],
        )
        return rows

    async def _lines(self, sale: dict[str, Any]) -> dict[int, str]:
        """Sale line id -> the platform's line id (kept in the line's note)."""
        return line_map(await self._sale_lines(sale))

    async def _moves(self, sale: dict[str, Any]) -> list[dict[str, Any]]:
        origins = [f"sale.line,{i}" for i in sale["lines"]]
        return await self.rpc.search_read(
            "stock.move",
            [("origin", "in", origins)],
            [
                "origin",
                "product",
                "quantity",
                "state",
                "from_location",
                "to_location",
                "shipment",
                "unit",
                "unit_price",
                "currency",
            ],
            order=[("id", "ASC")],
        )

    @staticmethod
    def _placed(
        lines: dict[int, str], moves: list[dict[str, Any]], refs: Refs
    ) -> list[tuple[str, str, str, int]]:
        """(location, platform line id, SKU, quantity) of each move."""
        storage = refs.by_storage()
        out = []
        for m in moves:
            wh = storage.get(m["from_location"])
            sku = refs.skus.get(m["product"])
            line = lines.get(int(m["origin"].split(",")[1]))
            if wh is None or sku is None or line is None:
                continue
            out.append((wh.location, line, sku, int(m["quantity"])))
        return out

    async def _ack(
        self, sale: dict[str, Any], *, created: bool, moves: list[dict[str, Any]] | None = None
    ) -> SalesOrderAck:
        """What Tryton holds for the sale; ``moves``: its moves, if the caller has just read them."""
        refs = await self.refs()
        lines = await self._lines(sale)
        if moves is None:
            moves = await self._moves(sale)
        await self._know_products(moves)
        allocations = [
            Allocation(location=loc, line_id=line, sku=sku, quantity=qty)
            for loc, line, sku, qty in self._placed(
                lines, [m for m in moves if m["state"] in ("assigned", "done")], refs
            )
        ]
        waiting: dict[tuple[str, str], int] = defaultdict(int)
        for _, line, sku, qty in self._placed(
            lines, [m for m in moves if m["state"] in ("draft", "staging", "waiting")], refs
        ):
            waiting[(line, sku)] += qty
        backordered = [BackorderLine(line_id=ln, sku=sku, quantity=q) for (ln, sku), q in waiting.items()]
        return SalesOrderAck(
            erp_order_id=sale["number"],
            allocations=allocations,
            backordered=backordered,
            created=created,
            backend=self.name,
        )

    async def _invoice_values(
        self,
        sale: dict[str, Any],
        amounts: InvoiceAmounts,
        refs: Refs,
        reference: str,
        *,
        sign: int = 1,
        rows: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A customer invoice (``sign=-1``: a credit note, negative quantities) whose lines and
        manual tax add up to ``amounts.total`` to the cent. ``rows``: the sale's lines, if the
        caller read them already (``_sale_lines``)."""
        if rows is None:
            rows = await self._sale_lines(sale)
        line_ids = sale_line_ids(rows)
        sale_lines = {r["id"]: r for r in rows}
        lines: list[dict[str, Any]] = []
        goods = Decimal(0)
        for il in amounts.lines:
            sl = sale_lines.get(line_ids.get(il.line_id, -1))
            if sl is None:
                raise _permanent(f"Tryton's sale {sale['number']} has no line {il.line_id}", "unknown_line")
            row: dict[str, Any] = {
                "type": "line",
                "quantity": float(sign * il.quantity),
                "unit_price": sl["unit_price"],
                "description": sl["description"],
                "account": refs.revenue,
                "origin": f"sale.line,{sl['id']}",
            }
            if sl["product"]:
                row |= {"product": sl["product"], "unit": refs.unit}
            lines.append(row)
            goods += sl["unit_price"] * il.quantity
        # Prices that include tax: the tax is still booked on the tax account, and the discount
        # line carries the difference, so the total is the platform's either way.
        tax = amounts.tax.amount
        discount = amounts.total.amount - tax - amounts.shipping.amount - goods
        for title, amount in (("Shipping", amounts.shipping.amount), ("Discounts", discount)):
            if amount:
                lines.append(
                    {
                        "type": "line",
                        "quantity": float(sign),
                        "unit_price": amount,
                        "description": title,
                        "account": refs.revenue,
                    }
                )
        values: dict[str, Any] = {
            "type": "out",
            "party": sale["party"],
            "invoice_address": sale["invoice_address"],
            "currency": refs.currency,
            "company": refs.company,
            "journal": refs.journal,
            "account": refs.receivable,
            "reference": reference,
            "description": f"{sale['reference']} ({sale['number']})",
            "lines": [["create", lines]],
        }
        if tax:
            values["taxes"] = [
                [
                    "create",
                    [
                        {
                            "manual": True,
                            "description": "Sales tax",
                            "base": sign * (goods + discount + amounts.shipping.amount),
                            "amount": sign * tax,
                            "account": refs.tax_account,
                        }
                    ],
                ]
            ]
        return values

    async def _post_invoice(self, invoice_id: int) -> None:
        """Posted with the invoices of this worker waiting at the same time (batching.py)."""
        await self.posting.submit(invoice_id)

    async def _post_invoices(self, invoice_ids: list[int]) -> None:
        await self.rpc.model("account.invoice", "post", invoice_ids)

    async def _ignore(self, sale: dict[str, Any], moves: list[dict[str, Any]]) -> None:
        """Mark cancelled moves ignored on their sale lines (adding twice changes nothing)."""
        by_line: dict[int, list[int]] = defaultdict(list)
        for m in moves:
            by_line[int(m["origin"].split(",")[1])].append(m["id"])
        for line_id, move_ids in by_line.items():
            await self.rpc.model("sale.line", "write", [line_id], {"moves_ignored": [["add", move_ids]]})
        if by_line:
            await self.rpc.model("sale.sale", "process", [sale["id"]])

    async def _know_products(self, moves: list[dict[str, Any]]) -> None:
        """Learn the SKU of products the moves carry that the cache does not know."""
        refs = await self.refs()
        missing = sorted({m["product"] for m in moves if m["product"] not in refs.skus})
        if missing:
            for p in await self.rpc.model("product.product", "read", missing, ["code"]):
                if p["code"]:
                    refs.skus[p["id"]] = p["code"]
                    refs.products[p["code"]] = p["id"]

    async def _mirror(self, sale: dict[str, Any]) -> list[dict[str, Any]]:
        """The sale's moves into the ledger: out of a warehouse (a sale's shipments) or into
        one (a return sale's receipts: ``return_restock``). Returns the moves it read."""
        refs = await self.refs()
        moves = await self._moves(sale)
        await self._know_products(moves)
        storage = refs.by_storage()
        scope = f"sale:{sale['id']}"
        states: list[MoveState] = []
        for m in moves:
            sku = refs.skus.get(m["product"])
            if sku is None:
                continue
            if m["from_location"] in storage:
                wh, direction = storage[m["from_location"]], "out"
            elif m["to_location"] in storage:
                wh, direction = storage[m["to_location"]], "in"
            else:
                continue
            states.append(
                MoveState(scope, m["id"], sku, wh.location, int(m["quantity"]), m["state"], direction)  # type: ignore[arg-type]
            )
        await in_thread(SYSTEM, lambda: mirror(self.store, states, scope=scope, kind_in="return_restock"))
        return moves
