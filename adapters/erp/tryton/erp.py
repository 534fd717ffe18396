"""``ErpPort`` on a real Tryton over JSON-RPC (docs/erp-tryton.md).

Documents: a customer is a ``party.party`` (email, phone and the channel's customer id as
contact mechanisms); an order is one ``sale.sale`` whose reference is the platform's order key
(Tryton has no idempotency keys: every create looks the reference up first, so a replay after a
crash finds the sale instead of making another, and carries on from the state it reached);
stock is reserved by assigning the sale's customer shipment moves; each platform shipment
becomes one Tryton customer shipment, done, and one posted invoice whose reference is the
platform's idempotency key.

Amounts are the platform's: a sale carries the lines at their unit prices, the discounts as one
"Discounts" line, shipping on the ``SHIPPING`` product and the tax engine's tax as a "Sales
tax" line (a sale has no manual taxes), so its total is the channel's to the cent. An invoice
carries the shipped units at their unit prices, this shipment's discounts, its shipping, and
its tax as a manual invoice tax on the tax account, so its total is what the shipment captures.

One sale has one warehouse. When the platform's allocation takes units from several locations,
the sale's warehouse is the one serving most; what another location serves moves to a customer
shipment of that location's warehouse, with the same sale lines as origin (Tryton's sale sees
every move of its lines wherever it ships from).

Stock: Tryton is the authority; every operation ends by mirroring the sale's moves into the
ledger (``mirror.py``), so channels hear of what Tryton reserved, shipped or released.

Edits before release are Tryton sale amendments (the ``sale_amendment`` module: a processing
sale's lines cannot be written otherwise). Returns are in ``returns.py``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from decimal import Decimal
from typing import Any

import structlog

from adapters.erp.builtin import plan_allocation
from adapters.erp.tryton import master
from adapters.erp.tryton.base import (
    GUEST,
    LINE_NOTE,
    OPEN_MOVE,
    SYSTEM,
    _permanent,
    one_at_a_time,
    platform_line,
    sale_line_ids,
)
from adapters.erp.tryton.master import Refs, Warehouse
from adapters.erp.tryton.returns import TrytonReturns
from adapters.erp.tryton.rpc import TrytonLoginError, TrytonRpc
from adapters.errors import PermanentError, TransientError
from adapters.registry import AdapterContext, register
from adapters.store_calls import in_thread
from backoffice.erp import ErpStock
from canonical import Address, Customer, InvoiceAmounts, Money, Order, Shipment
from canonical.documents import (
    Allocation,
    BackorderLine,
    CancelAck,
    CustomerRef,
    InvoiceAck,
    SalesOrderAck,
)

log = structlog.get_logger("tryton.erp")

__all__ = ["TrytonErp", "TrytonLoginError"]


class TrytonErp(TrytonReturns):
    """The ERP port on Tryton. ``start()`` logs in and reads (or creates) what the adapter
    books on; it runs at worker start, so wrong credentials stop the worker there."""

    # -- customers --------------------------------------------------------------------------

    async def resolve_customer(self, customer: Customer, address: Address | None) -> CustomerRef:
        """Normalised email, then phone, then the channel's customer id, each a contact
        mechanism of the party; the first that matches wins and the others are added to it.
        Calls for the same person are serialised in this worker (Tryton has no unique key on
        contact mechanisms)."""
        keys = _customer_keys(customer)
        async with self._customer_locks[keys[0][1] if keys else GUEST]:
            if not keys:
                return await self._guest()
            # One search for every key: the first key (in matching order) that some party has
            # wins, the oldest such party first (Tryton's own order: party, then sequence), and
            # that party learns the keys it lacks.
            have = await self.rpc.search_read(
                "party.contact_mechanism",
                ["OR", *[[("type", "=", k), ("value", "=", v)] for k, v in keys]],
                ["party", "type", "value"],
                order=[("party", "ASC"), ("sequence", "ASC"), ("id", "ASC")],
            )
            for kind, value in keys:
                match = next((m for m in have if (m["type"], m["value"]) == (kind, value)), None)
                if match is not None:
                    party = match["party"]
                    known = {(m["type"], m["value"]) for m in have if m["party"] == party}
                    await self._learn(party, [k for k in keys if k not in known])
                    return CustomerRef(customer_id=str(party), created=False, matched_on=_MATCHED_ON[kind])
            values: dict[str, Any] = {
                "name": _party_name(customer),
                "contact_mechanisms": [["create", [{"type": k, "value": v} for k, v in keys]]],
            }
            if address is not None:
                values["addresses"] = [["create", [_address(address)]]]
            party = await self._create_party(values)
            return CustomerRef(customer_id=str(party), created=True, matched_on="new")

    async def _create_party(self, values: dict[str, Any]) -> int:
        """Tryton numbers parties from a sequence; two creates at once can draw the same code on
        SQLite ("The code on party must be unique"): one at a time here, and a clash left is
        worth a retry (which matches the person if the other create was theirs)."""
        async with self._party_create:
            try:
                (party,) = await self.rpc.model("party.party", "create", [values])
            except PermanentError as exc:
                if "must be unique" in str(exc):
                    raise TransientError(str(exc), system=SYSTEM) from exc
                raise
        return int(party)

    async def _learn(self, party: int, missing: list[tuple[str, str]]) -> None:
        if missing:
            await self.rpc.model(
                "party.contact_mechanism",
                "create",
                [{"party": party, "type": k, "value": v} for k, v in missing],
            )

    async def _guest(self) -> CustomerRef:
        found = await self.rpc.model("party.party", "search", [("name", "=", GUEST)], 0, 1, None)
        if found:
            return CustomerRef(customer_id=str(found[0]), created=False, matched_on="external_id")
        party = await self._create_party({"name": GUEST})
        return CustomerRef(customer_id=str(party), created=True, matched_on="new")

    # -- sales orders -----------------------------------------------------------------------

    @one_at_a_time(lambda order, *_: f"order:{order.key}")
    async def create_sales_order(self, order: Order, customer_id: str, idempotency_key: str) -> SalesOrderAck:
        refs = await self.refs()
        # An existing sale is carried on from where it stopped (Tryton's confirm queues process:
        # a sale can be processing before its split and assignment ran).
        sale = await self._sale_by_reference(order.key)
        stocked = [ln for ln in order.lines if ln.fulfillable and not ln.digital and ln.sku]
        products = await master.product_ids(self.rpc, refs, [ln.sku for ln in stocked if ln.sku])
        unknown = sorted({ln.sku for ln in stocked if ln.sku and ln.sku not in products})
        if unknown:
            raise _permanent(f"Tryton sells no product with code {', '.join(unknown)}", "unknown_sku")
        plan, _ = await in_thread(SYSTEM, lambda: self._plan(order))
        primary = await self._primary(refs, plan)
        created = sale is None
        if sale is None:
            party = int(customer_id)
            address = await self._address(party, order.shipping_address or order.billing_address)
            (sale_id,) = await self.rpc.model(
                "sale.sale", "create", [self._sale_values(order, refs, products, party, address, primary)]
            )
            sale = await self._sale(sale_id)
        sale = await self._processed(sale)
        moves = await self._moves(sale)
        split = False
        if not any(m["state"] in ("assigned", "done") for m in moves):
            split = await self._split(sale, moves, plan, primary)
        moves = await self._assign(sale, reread=split)
        return await self._ack(sale, created=created, moves=moves)

    @one_at_a_time(lambda number, *_: f"sale:{number}")
    async def update_sales_order(
        self, erp_order_id: str, order: Order, idempotency_key: str
    ) -> SalesOrderAck:
        """A channel's edit before release, as a Tryton sale amendment (``sale_amendment``):
        each line's new quantity, the shipping, tax, discount and adjustment lines' new amounts,
        so the sale's total is the edited order's and its revision says it was amended. Tryton
        clears the moves not yet reserved (backorders first, as on the builtin ERP); reserved
        units beyond a line's new quantity are released from the split's own shipments before
        the sale's warehouse. The amendment's description is the idempotency key: a retry finds
        it and finishes what is left."""
        refs = await self.refs()
        if not refs.amendments:
            raise _permanent(
                "Tryton's sale_amendment module is not activated, so a processing sale cannot be "
                "edited: activate it, or apply the edit in Tryton and skip the step",
                "erp_operation_unsupported",
            )
        sale = await self._sale_by_number(erp_order_id)
        amendment = await self._amendment(sale, idempotency_key)
        if amendment is None or amendment["state"] == "draft":
            if amendment is None:
                rows = await self._sale_lines(sale)
                await self._refuse_edit(sale, rows, order)
                (amendment_id,) = await self.rpc.model(
                    "sale.amendment",
                    "create",
                    [
                        {
                            "sale": sale["id"],
                            "description": idempotency_key,
                            "lines": [["create", _amend(sale, rows, order)]],
                        }
                    ],
                )
            else:
                amendment_id = amendment["id"]
            await self.rpc.model("sale.amendment", "validate_amendment", [amendment_id])
        sale = await self._sale(sale["id"])
        # The split's own shipments give up their units before the sale's warehouse, so what
        # is left ships in fewer parcels.
        home = refs.by_id().get(sale["warehouse"])
        await self._balance(sale, first=[w.output for w in refs.warehouses.values() if w is not home])
        moves = await self._assign(sale)
        return await self._ack(sale, created=False, moves=moves)

    async def _amendment(self, sale: dict[str, Any], key: str) -> dict[str, Any] | None:
        found = await self.rpc.search_read(
            "sale.amendment", [("sale", "=", sale["id"]), ("description", "=", key)], ["state"], limit=1
        )
        return dict(found[0]) if found else None

    async def _refuse_edit(self, sale: dict[str, Any], rows: list[dict[str, Any]], order: Order) -> None:
        """What the builtin ERP refuses, Tryton refuses too: a cancelled or shipped sale, new
        lines and increases (a person decides those)."""
        moves = await self._moves(sale)
        if sale["state"] == "cancelled" or any(m["state"] == "cancelled" for m in moves):
            raise _permanent(f"Tryton's sale {sale['number']} is cancelled", "order_cancelled")
        (invoiced,) = await self.rpc.model("sale.sale", "read", [sale["id"]], ["invoices"])
        if invoiced["invoices"] or any(m["state"] == "done" for m in moves):
            raise _permanent(
                f"Tryton's sale {sale['number']} has shipped: it cannot be edited", "already_shipped"
            )
        have = {line: r for r in rows if (line := platform_line(r)) is not None}
        new = sorted({ln.line_id for ln in order.lines} - set(have))
        if new:
            raise _permanent(f"new lines {', '.join(new)}: add them by hand", "edit_not_supported")
        grown = [ln.line_id for ln in order.lines if ln.quantity > have[ln.line_id]["quantity"]]
        if grown:
            raise _permanent(f"quantities increased on {', '.join(grown)}", "edit_not_supported")

    @one_at_a_time(lambda number, *_: f"sale:{number}")
    async def allocate_backorders(self, erp_order_id: str) -> SalesOrderAck:
        sale = await self._sale_by_number(erp_order_id)
        moves = await self._assign(sale, reread=False)
        return await self._ack(sale, created=False, moves=moves)

    @one_at_a_time(lambda number, *_: f"sale:{number}")
    async def invoice_shipment(
        self, erp_order_id: str, shipment: Shipment, amounts: InvoiceAmounts, idempotency_key: str
    ) -> InvoiceAck:
        refs = await self.refs()
        sale = await self._sale_by_number(erp_order_id)
        found = await self.rpc.search_read(
            "account.invoice",
            [("reference", "=", idempotency_key)],
            ["state", "number", "total_amount"],
            limit=1,
        )
        if not found:
            rows = await self._sale_lines(sale)
            if not shipment.digital:
                await self._ship(sale, shipment, refs, sale_line_ids(rows))
            values = await self._invoice_values(sale, amounts, refs, idempotency_key, rows=rows)
            (invoice_id,) = await self.rpc.model("account.invoice", "create", [values])
            inv: dict[str, Any] = {"state": "draft"}
        else:
            invoice_id = found[0]["id"]
            inv = found[0]
        if inv["state"] == "draft":
            await self._post_invoice(invoice_id)
            (inv,) = await self.rpc.model("account.invoice", "read", [invoice_id], ["number", "total_amount"])
        return InvoiceAck(
            invoice_id=inv["number"], total=Money(amount=inv["total_amount"], currency=amounts.total.currency)
        )

    @one_at_a_time(lambda number, *_: f"sale:{number}")
    async def cancel_sales_order(self, erp_order_id: str, reason: str, idempotency_key: str) -> CancelAck:
        """Tryton cannot cancel a sale once processed: the adapter cancels its open customer
        shipments and marks their moves ignored (what Tryton's "Handle Shipment Exception"
        wizard does), so the sale ends done with what shipped, nothing more."""
        sale = await self._sale_by_number(erp_order_id)
        moves = await self._moves(sale)
        open_moves = [m for m in moves if m["state"] in OPEN_MOVE]
        shipped = any(m["state"] == "done" for m in moves)
        if not open_moves:
            if sale["state"] == "cancelled" or any(m["state"] == "cancelled" for m in moves):
                # A retry after the shipments were cancelled: finish what the first attempt may
                # not have (ignore the moves, give the reservations back).
                await self._ignore(sale, [m for m in moves if m["state"] == "cancelled"])
                await self._mirror(sale)
                return CancelAck(erp_order_id=erp_order_id, status="already_cancelled")
            raise _permanent(f"Tryton's sale {sale['number']} has shipped in full", "already_shipped")
        refs = await self.refs()
        released = [
            Allocation(location=loc, line_id=line, sku=sku, quantity=qty)
            for loc, line, sku, qty in self._placed(
                await self._lines(sale), [m for m in open_moves if m["state"] == "assigned"], refs
            )
        ]
        shipments = sorted({m["shipment"] for m in open_moves if m["shipment"]})
        ids = [int(s.split(",")[1]) for s in shipments]
        if ids:
            await self.rpc.model("stock.shipment.out", "cancel", ids)
        cancelled = [m["id"] for m in open_moves]
        await self._ignore(sale, open_moves)
        await self._mirror(sale)
        log.info("tryton sale cancelled", sale=sale["number"], moves=len(cancelled), reason=reason)
        return CancelAck(
            erp_order_id=erp_order_id,
            released=released,
            status="partially_cancelled" if shipped else "cancelled",
        )

    # -- writing Tryton ---------------------------------------------------------------------

    def _plan(self, order: Order) -> tuple[list[Allocation], list[BackorderLine]]:
        """The platform's allocation over the ledger's availability (Tryton's stock mirrored)."""
        from sqlalchemy import select

        demand = [
            (ln.line_id, ln.sku, ln.quantity)
            for ln in order.lines
            if ln.fulfillable and not ln.digital and ln.sku is not None
        ]
        skus = sorted({sku for _, sku, _ in demand})
        with self.store.reading() as s:
            rows = list(s.scalars(select(ErpStock).where(ErpStock.sku.in_(skus))))
        available = {
            (r.sku, r.location): r.available for r in rows if r.location not in self.never_allocate_from
        }
        return plan_allocation(demand, available)

    async def _primary(self, refs: Refs, plan: list[Allocation]) -> Warehouse:
        served: dict[str, int] = defaultdict(int)
        for a in plan:
            served[a.location] += a.quantity
        if served:
            location = min(served, key=lambda loc: (-served[loc], loc))
            return await master.ensure_warehouse(self.rpc, refs, location)
        # Nothing in stock anywhere: the sale waits, backordered, at a platform location (never
        # at a Tryton warehouse the platform does not know, where no one would ship it).
        if self._locations:
            return await master.ensure_warehouse(self.rpc, refs, self._locations[0])
        raise _permanent("Tryton has no warehouse for any platform location", "erp_setup")

    async def _address(self, party: int, address: Address | None) -> int:
        have = await self.rpc.search_read(
            "party.address", [("party", "=", party)], ["street", "postal_code", "city"]
        )
        if address is not None:
            want = _address(address)
            for a in have:
                if (a["street"], a["postal_code"], a["city"]) == (
                    want["street"],
                    want["postal_code"],
                    want["city"],
                ):
                    return int(a["id"])
            (new,) = await self.rpc.model("party.address", "create", [{"party": party, **want}])
            return int(new)
        if have:
            return int(have[0]["id"])
        (new,) = await self.rpc.model("party.address", "create", [{"party": party}])
        return int(new)

    def _sale_values(
        self,
        order: Order,
        refs: Refs,
        products: dict[str, int],
        party: int,
        address: int,
        warehouse: Warehouse,
    ) -> dict[str, Any]:
        lines: list[dict[str, Any]] = []
        for ln in order.lines:
            row: dict[str, Any] = {
                "type": "line",
                "quantity": float(ln.quantity),
                "unit_price": ln.unit_price.amount,
                "description": ln.title,
                "note": f"{LINE_NOTE}{ln.line_id}",
            }
            if ln.sku and ln.fulfillable and not ln.digital:
                row |= {"product": products[ln.sku], "unit": refs.unit}
            lines.append(row)
        for title, amount in _extras(order).items():
            if amount:
                row = {"type": "line", "quantity": 1.0, "unit_price": amount, "description": title}
                if title == SHIPPING_LINE and refs.shipping_product is not None:
                    row |= {"product": refs.shipping_product, "unit": refs.unit}
                lines.append(row)
        return {
            "party": party,
            "reference": order.key,
            "description": order.name or order.key,
            "warehouse": warehouse.id,
            "currency": refs.currency,
            "company": refs.company,
            "invoice_method": "manual",
            "shipment_method": "order",
            "invoice_address": address,
            "shipment_address": address,
            "sale_date": order.placed_at.date(),
            "lines": [["create", lines]],
        }

    async def _split(
        self, sale: dict[str, Any], moves: list[dict[str, Any]], plan: list[Allocation], primary: Warehouse
    ) -> bool:
        """Move what other locations serve out of the primary warehouse's shipment into a
        shipment of each of them; True when the plan has other locations."""
        others = [a for a in plan if a.location != primary.location]
        if not others:
            return False
        refs = await self.refs()
        line_ids = sale_line_ids(await self._sale_lines(sale))
        (template,) = await self.rpc.model(
            "stock.shipment.out",
            "read",
            [int(moves[0]["shipment"].split(",")[1])],
            ["customer", "delivery_address"],
        )
        by_line = {int(m["origin"].split(",")[1]): m for m in moves if m["state"] in OPEN_MOVE}
        taken: dict[int, float] = defaultdict(float)
        per_location: dict[str, list[tuple[dict[str, Any], int]]] = defaultdict(list)
        for a in others:
            m = by_line.get(line_ids.get(a.line_id, -1))
            if m is None:
                continue
            per_location[a.location].append((m, a.quantity))
            taken[m["id"]] += a.quantity
        # The new shipments first: deleting or shrinking a move makes Tryton's sale process
        # again, and it would recreate every unit it finds missing. Each carries a reference,
        # so a retry after a crash here does not split twice.
        for location, parts in sorted(per_location.items()):
            reference = f"split:{sale['id']}:{location}"
            if not await self._shipments_with(sale, reference):
                wh = await master.ensure_warehouse(self.rpc, refs, location)
                await self._new_shipment(
                    template, wh, [(m, qty) for m, qty in parts], refs, reference=reference
                )
        await self._balance(await self._sale(sale["id"]), first=[primary.output])
        return True

    async def _shipments_with(self, sale: dict[str, Any], reference: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.rpc.search_read(
            "stock.shipment.out",
            [("id", "in", sale["shipments"]), ("reference", "=", reference), ("state", "!=", "cancelled")],
            ["state"],
        )
        return found

    async def _balance(
        self, sale: dict[str, Any], *, first: Collection[int], keep: Collection[int] = ()
    ) -> list[int]:
        """Each sale line's open and done moves add up to the line's quantity: the surplus (a
        new shipment took it over, or an edit cut the line) comes off the other open moves,
        those leaving the ``first`` locations (warehouses' outputs) first, then the latest,
        never those of the ``keep`` shipments. Safe to repeat: a balanced sale changes nothing.
        Returns the shipments it touched."""
        rows = await self.rpc.model("sale.line", "read", sale["lines"], ["quantity", "product"])
        want = {r["id"]: abs(r["quantity"]) for r in rows if r["product"]}
        moves = [m for m in await self._moves(sale) if m["state"] != "cancelled"]
        have: dict[int, float] = defaultdict(float)
        for m in moves:
            have[int(m["origin"].split(",")[1])] += m["quantity"]
        keep_refs = {f"stock.shipment.out,{i}" for i in keep}
        candidates = [m for m in moves if m["state"] in OPEN_MOVE and m["shipment"] not in keep_refs]
        candidates.sort(key=lambda m: (m["from_location"] not in first, -m["id"]))
        changes: list[tuple[dict[str, Any], float]] = []
        for m in candidates:
            line = int(m["origin"].split(",")[1])
            surplus = have[line] - want.get(line, have[line])
            if surplus <= 0:
                continue
            take = min(m["quantity"], surplus)
            have[line] -= take
            changes.append((m, m["quantity"] - take))
        touched = sorted({int(m["shipment"].split(",")[1]) for m, _ in changes if m["shipment"]})
        if touched:
            await self.rpc.model("stock.shipment.out", "wait", touched)
        await self._shrink(changes)
        return touched

    async def _shrink(self, changes: list[tuple[dict[str, Any], float]]) -> None:
        """Give each move its new quantity (deleting it at zero), once the units it gives up
        have their own moves."""
        for m, left in changes:
            if left > 0:
                await self.rpc.model("stock.move", "write", [m["id"]], {"quantity": left})
        gone = [m["id"] for m, left in changes if left <= 0]
        if gone:
            await self.rpc.model("stock.move", "delete", gone)

    async def _new_shipment(
        self,
        template: dict[str, Any],
        wh: Warehouse,
        parts: list[tuple[dict[str, Any], int]],
        refs: Refs,
        reference: str | None = None,
    ) -> int:
        moves = [
            {
                "product": m["product"],
                "quantity": float(qty),
                "unit": m["unit"],
                "from_location": wh.output,
                "to_location": refs.customer_location,
                "origin": m["origin"],
                "unit_price": m["unit_price"],
                "currency": m["currency"],
                "company": refs.company,
            }
            for m, qty in parts
        ]
        (shipment,) = await self.rpc.model(
            "stock.shipment.out",
            "create",
            [
                {
                    "customer": template["customer"],
                    "delivery_address": template["delivery_address"],
                    "warehouse": wh.id,
                    "warehouse_storage": wh.storage,
                    "warehouse_output": wh.output,
                    "company": refs.company,
                    "reference": reference,
                    "outgoing_moves": [["create", moves]],
                }
            ],
        )
        await self.rpc.model("stock.shipment.out", "wait", [shipment])
        return int(shipment)

    async def _assign(self, sale: dict[str, Any], *, reread: bool = True) -> list[dict[str, Any]]:
        """Try to reserve the sale's waiting shipments, and mirror its moves (returned).
        ``reread``: the sale's shipments may have changed since ``sale`` was read."""
        if reread:
            sale = await self._sale(sale["id"])
        waiting = await self.rpc.model(
            "stock.shipment.out",
            "search",
            [("id", "in", sale["shipments"]), ("state", "=", "waiting")],
            0,
            None,
            None,
        )
        if waiting:
            await self.rpc.model("stock.shipment.out", "assign_try", waiting)
        return await self._mirror(sale)

    async def _finish(self, shipment_id: int, wh: Warehouse) -> None:
        """Assigned by force (the goods have left), picked where the warehouse picks, packed,
        done: from whatever state an earlier attempt left it in."""
        steps = ["assign_force", *([] if wh.one_step else ["pick"]), "pack", "do"]
        reached = {"assigned": 1, "picked": 2, "packed": len(steps) - 1, "done": len(steps)}
        (row,) = await self.rpc.model("stock.shipment.out", "read", [shipment_id], ["state"])
        if row["state"] == "draft":
            await self.rpc.model("stock.shipment.out", "wait", [shipment_id])
        for button in steps[reached.get(row["state"], 0) :]:
            await self.rpc.model("stock.shipment.out", button, [shipment_id])

    async def _ship(
        self, sale: dict[str, Any], shipment: Shipment, refs: Refs, line_ids: dict[str, int]
    ) -> None:
        """Ship the units in Tryton (assigned by force: the goods have left): a customer
        shipment the platform's shipment takes all of is done as it is; otherwise the shipped
        units move out of the sale's open moves at the shipment's warehouse into one new
        customer shipment, which is done. ``line_ids``: platform line id -> sale line id."""
        wh = refs.warehouses.get(shipment.location)
        if wh is None:
            raise _permanent(f"Tryton has no warehouse {shipment.location}", "erp_setup")
        # An attempt that shipped in Tryton and died before its invoice: the shipment carries
        # the platform's shipment id, and is not shipped twice.
        done = await self.rpc.search_read(
            "stock.shipment.out",
            [
                ("id", "in", sale["shipments"]),
                ("reference", "=", shipment.shipment_id),
                ("state", "!=", "cancelled"),
            ],
            ["state"],
        )
        if done:
            await self._settle(sale, done[0]["id"], wh)
            return
        every = [m for m in await self._moves(sale) if m["state"] != "cancelled"]
        moves = [m for m in every if m["state"] in OPEN_MOVE and m["from_location"] == wh.output]
        need: dict[int, int] = defaultdict(int)
        for sl in shipment.lines:
            sale_line = line_ids.get(sl.line_id)
            if sale_line is not None:
                need[sale_line] += sl.quantity
        parts: list[tuple[dict[str, Any], int]] = []
        for m in moves:
            line = int(m["origin"].split(",")[1])
            take = min(int(m["quantity"]), need.get(line, 0))
            if take > 0:
                need[line] -= take
                parts.append((m, take))
        short = {line: q for line, q in need.items() if q > 0}
        if short:
            raise _permanent(
                f"shipment {shipment.shipment_id} ships more than Tryton's sale {sale['number']} has open at "
                f"{shipment.location}",
                "over_shipment",
            )
        if not parts:
            return
        whole = _whole_shipment(parts, every)
        if whole is not None:
            # A move put in that shipment by hand in Tryton (no sale line origin) would ship too.
            (held,) = await self.rpc.model("stock.shipment.out", "read", [whole], ["outgoing_moves"])
            if set(held["outgoing_moves"]) != {m["id"] for m, _ in parts}:
                whole = None
        if whole is not None:
            # The usual case (one parcel for what one shipment holds): no new shipment, no
            # moves to shrink. The reference first, so a retry finds it (as below).
            await self.rpc.model("stock.shipment.out", "write", [whole], {"reference": shipment.shipment_id})
            await self._settle(sale, whole, wh, balanced=True)
            return
        first = next(m["shipment"] for m, _ in parts if m["shipment"])
        (template,) = await self.rpc.model(
            "stock.shipment.out", "read", [int(first.split(",")[1])], ["customer", "delivery_address"]
        )
        # First (see _split); it carries the platform's shipment id.
        new = await self._new_shipment(template, wh, parts, refs, reference=shipment.shipment_id)
        await self._settle(sale, new, wh)

    async def _settle(self, sale: dict[str, Any], new: int, wh: Warehouse, *, balanced: bool = False) -> None:
        """After the shipped units have their own shipment ``new``: the old moves give them up,
        ``new`` is done, emptied shipments are cancelled and the rest assigned again, and the
        ledger hears of it. Every step is safe to repeat (a retry after a crash anywhere).
        ``balanced``: ``new`` was an existing shipment taken whole, so no other gave units up."""
        if balanced:
            await self._finish(new, wh)
            await self._mirror(sale)
            return
        sale = await self._sale(sale["id"])
        await self._balance(sale, first=[wh.output], keep=[new])
        await self._finish(new, wh)
        rows = await self.rpc.model("stock.shipment.out", "read", sale["shipments"], ["state", "moves"])
        open_rows = [r for r in rows if r["id"] != new and r["state"] not in ("done", "cancelled")]
        empty = [r["id"] for r in open_rows if not r["moves"]]
        if empty:
            await self.rpc.model("stock.shipment.out", "cancel", empty)
        waiting = [r["id"] for r in open_rows if r["moves"] and r["state"] == "waiting"]
        if waiting:
            await self.rpc.model("stock.shipment.out", "assign_try", waiting)
        await self._mirror(sale)


def _whole_shipment(parts: list[tuple[dict[str, Any], int]], moves: list[dict[str, Any]]) -> int | None:
    """The customer shipment ``parts`` (move, units taken) take every unit of, if they take
    from one shipment only; ``moves``: the sale's moves that are not cancelled."""
    shipments = {m["shipment"] for m, _ in parts}
    if len(shipments) != 1 or None in shipments:
        return None
    (shipment,) = shipments
    taken = {m["id"]: qty for m, qty in parts}
    held = [m for m in moves if m["shipment"] == shipment]
    if any(m["state"] not in OPEN_MOVE or taken.get(m["id"]) != m["quantity"] for m in held):
        return None
    return int(shipment.split(",")[1])


_MATCHED_ON: dict[str, Any] = {"email": "email", "phone": "phone", "other": "external_id"}


def _customer_keys(customer: Customer) -> list[tuple[str, str]]:
    """Contact mechanisms in matching order: normalised email, phone, the channel's id."""
    keys: list[tuple[str, str]] = []
    if customer.email:
        keys.append(("email", customer.email.strip().lower()))
    if customer.phone:
        keys.append(("phone", customer.phone))
    if customer.external_id:
        keys.append(("other", f"channel-customer:{customer.external_id}"))
    return keys


def _party_name(customer: Customer) -> str:
    name = " ".join(p for p in (customer.first_name, customer.last_name) if p)
    return name or customer.email or customer.phone or GUEST


def _address(address: Address) -> dict[str, Any]:
    street = "\n".join(p for p in (address.line1, address.line2) if p)
    return {
        "party_name": address.name,
        "street": street,
        "postal_code": address.postal_code,
        "city": address.city,
    }


@register("erp", "tryton")
def _tryton(ctx: AdapterContext) -> TrytonErp:
    s = ctx.settings
    rpc = TrytonRpc(
        s.tryton_url,
        s.tryton_database,
        s.tryton_user,
        s.tryton_password.get_secret_value(),
        timeout=s.tryton_timeout_s,
        max_in_flight=s.tryton_max_concurrency,
    )
    return TrytonErp(rpc, ctx.store, never_allocate_from=s.shopify_store_locations.values())


SHIPPING_LINE = "Shipping"


def _extras(order: Order) -> dict[str, Decimal]:
    """The sale lines beside the order's own: shipping, tax (when prices exclude it), the
    discounts, and whatever rounding leaves so the sale's total is the channel's."""
    t = order.totals
    extra = {SHIPPING_LINE: t.shipping_total.amount}
    if not order.taxes_included:
        extra["Sales tax"] = t.tax_total.amount
    extra["Discounts"] = -t.discount_total.amount
    goods = sum((ln.unit_price.amount * ln.quantity for ln in order.lines), Decimal(0))
    extra["Adjustment"] = t.total.amount - goods - sum(extra.values(), Decimal(0))
    return extra


def _amend(sale: dict[str, Any], rows: list[dict[str, Any]], order: Order) -> list[dict[str, Any]]:
    """One amendment line per sale line whose quantity or price the edit changes (a line
    gone from the order goes to zero)."""
    edited = {ln.line_id: ln for ln in order.lines}
    extras = _extras(order)
    out: list[dict[str, Any]] = []
    for r in rows:
        if (line := platform_line(r)) is not None:
            ln = edited.get(line)
            quantity, price = (float(ln.quantity), ln.unit_price.amount) if ln else (0.0, r["unit_price"])
        elif r["description"] in extras:
            quantity, price = 1.0, extras.pop(r["description"])
        else:
            continue
        if (quantity, price) != (r["quantity"], r["unit_price"]):
            out.append(
                {
                    "action": "line",
                    "line": r["id"],
                    "product": r["product"],
                    "unit": r["unit"],
                    "quantity": quantity,
                    "unit_price": price,
                    "description": r["description"],
                }
            )
    missing = sorted(title for title, amount in extras.items() if amount)
    if missing:
        # An amendment cannot add lines; the sale was made without one it now needs.
        raise _permanent(
            f"Tryton's sale {sale['number']} has no {', '.join(missing)} line to amend",
            "edit_not_supported",
        )
    return out
