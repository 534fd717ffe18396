"""Stock that moves inside Tryton (a supplier receipt, an inventory count, a shipment or a sale
made there) reaches the ledger and, through it, every channel.

``sync_stock`` reads Tryton's done moves written since a watermark (kept in the store's
``reconcile_watermarks``, kind ``tryton_stock``), keeps those into or out of a platform
warehouse, and mirrors each one (``mirror.py``): a move of a sale, the platform's or one made in
Tryton, under its sale's scope, so the moves the adapter mirrored already write nothing; any
other under the ``stock`` scope. Runs overlap by ``OVERLAP`` (moves committed late with an
earlier write date) without counting twice: mirroring is idempotent per move.

Tryton's own reservations (a sale made in Tryton, assigned but not shipped) are not seen until
the goods leave.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.erp.tryton import master
from adapters.erp.tryton.base import SYSTEM
from adapters.erp.tryton.item_master import TrytonItemMaster
from adapters.erp.tryton.mirror import Direction, MoveState, mirror
from adapters.store_calls import in_thread
from backoffice.erp import ErpStock
from canonical.inventory import MovementKind
from store.reconcile import advance_watermark, get_watermark

WATERMARK = "tryton_stock"
# Moves up to here were counted when the stock was pushed into Tryton: never mirrored.
ADOPTED = "tryton_stock_adopted"
OVERLAP = timedelta(seconds=60)
PAGE = 500

_BY_COUNTERPART: dict[tuple[Direction, str], MovementKind] = {
    ("in", "supplier"): "receipt",
    ("in", "customer"): "return_restock",
    ("out", "customer"): "shipment",
}


class TrytonStockSync(TrytonItemMaster):
    async def sync_stock(self) -> tuple[int, list[str]]:
        """Mirror Tryton's done moves since the watermark; returns (moves read, SKUs changed)."""
        refs = await self.refs()
        storage = refs.by_storage()
        if not storage:
            return 0, []
        since = await in_thread(SYSTEM, lambda: get_watermark(self.store, WATERMARK, self._scope))
        adopted = await in_thread(SYSTEM, lambda: get_watermark(self.store, ADOPTED, self._scope))
        begin = max(
            (since - OVERLAP) if since else datetime(1970, 1, 1, tzinfo=UTC),
            adopted or datetime(1970, 1, 1, tzinfo=UTC),
        )
        start = begin.astimezone(UTC).replace(tzinfo=None)
        ids = sorted(storage)
        domain: list[Any] = [
            ("state", "=", "done"),
            ["OR", ("write_date", ">=", start), ("create_date", ">=", start)],
            ["OR", ("from_location", "in", ids), ("to_location", "in", ids)],
        ]
        fields = [
            "product",
            "quantity",
            "from_location",
            "to_location",
            "origin",
            "write_date",
            "create_date",
        ]
        moves: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = await self.rpc.model(
                "stock.move", "search_read", domain, offset, PAGE, [("id", "ASC")], fields
            )
            moves += page
            if len(page) < PAGE:
                break
            offset += PAGE
        if not moves:
            return 0, []
        await self._know_products(moves)
        types = await self._location_types(
            {m["from_location"] for m in moves} | {m["to_location"] for m in moves}
        )
        sales = await self._sales_of([m["origin"] for m in moves])
        states: list[MoveState] = []
        for m in moves:
            sku = refs.skus.get(m["product"])
            if sku is None:
                continue
            origin = m["origin"] or ""
            scope = f"sale:{sales[origin]}" if origin in sales else "stock"
            for loc, other, direction in (
                (m["from_location"], m["to_location"], "out"),
                (m["to_location"], m["from_location"], "in"),
            ):
                wh = storage.get(loc)
                if wh is None:
                    continue
                kind = _BY_COUNTERPART.get((direction, types.get(other, "")), "adjustment")  # type: ignore[arg-type]
                states.append(
                    MoveState(scope, m["id"], sku, wh.location, int(m["quantity"]), "done", direction, kind)  # type: ignore[arg-type]
                )
        changed = await in_thread(SYSTEM, lambda: mirror(self.store, states))
        newest = max((m["write_date"] or m["create_date"]) for m in moves)
        until = newest.replace(tzinfo=UTC)
        await in_thread(SYSTEM, lambda: advance_watermark(self.store, WATERMARK, self._scope, until))
        return len(moves), changed

    async def seed_stock(self) -> int:
        """Bring Tryton's quantity of each SKU and location to the ledger's on hand (one
        inventory per warehouse): how the demo and the tests start Tryton from the same stock as
        the platform. The ledger counted that stock already: the sync starts after it. Returns
        the inventory lines written."""
        refs = await self.refs()
        positions = await in_thread(SYSTEM, self._positions)
        by_location: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for sku, location, on_hand in positions:
            if location not in self.never_allocate_from:
                by_location[location].append((sku, on_hand))
        written = 0
        for location, rows in sorted(by_location.items()):
            wh = await master.ensure_warehouse(self.rpc, refs, location)
            products = await master.product_ids(self.rpc, refs, [sku for sku, _ in rows])
            lines = [
                {"product": products[sku], "quantity": float(qty)} for sku, qty in rows if sku in products
            ]
            if not lines:
                continue
            (inv,) = await self.rpc.model(
                "stock.inventory",
                "create",
                [{"location": wh.storage, "empty_quantity": "keep", "lines": [["create", lines]]}],
            )
            await self.rpc.model("stock.inventory", "confirm", [inv])
            written += len(lines)
        await self.adopt_stock_until_now()
        return written

    def _positions(self) -> list[tuple[str, str, int]]:
        from sqlalchemy import select

        with self.store.reading() as s:
            return [(r.sku, r.location, r.on_hand) for r in s.scalars(select(ErpStock))]

    async def adopt_stock_until_now(self) -> None:
        """The ledger already holds what Tryton holds (the stock was pushed from it): start the
        sync after Tryton's newest move, so nothing already counted is counted again."""
        # The newest write and the newest create, each among the moves that have one (NULLs
        # sort first on PostgreSQL, last on SQLite).
        stamps = []
        for field in ("write_date", "create_date"):
            rows = await self.rpc.search_read(
                "stock.move", [(field, "!=", None)], [field], order=[(field, "DESC")], limit=1
            )
            stamps += [r[field] for r in rows]
        if not stamps:
            return
        at = (max(stamps) + timedelta(microseconds=1)).replace(tzinfo=UTC)

        def mark() -> None:
            for kind in (ADOPTED, WATERMARK):
                advance_watermark(self.store, kind, self._scope, at)

        await in_thread(SYSTEM, mark)

    @property
    def _scope(self) -> str:
        """The watermarks' scope: the Tryton database (one platform books in one)."""
        return self.rpc.database[:64]

    async def _location_types(self, ids: set[int]) -> dict[int, str]:
        rows = await self.rpc.model("stock.location", "read", sorted(ids), ["type"])
        return {r["id"]: r["type"] for r in rows}

    async def _sales_of(self, origins: list[str | None]) -> dict[str, int]:
        lines = sorted({int(o.split(",")[1]) for o in origins if o and o.startswith("sale.line,")})
        if not lines:
            return {}
        rows = await self.rpc.model("sale.line", "read", lines, ["sale"])
        return {f"sale.line,{r['id']}": r["sale"] for r in rows}
