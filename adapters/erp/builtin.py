"""The builtin ERP behind ``ErpPort``: the embedded system of record for orders, stock and
the ledger, kept in the store (SQLite or PostgreSQL).

Every operation is one database transaction run in a worker thread, so an activity's event
loop never blocks on a lock. Stock is never oversold: rows are locked before availability is
read (``SELECT ... FOR UPDATE`` on PostgreSQL, always in (sku, location) order so two
orders cannot deadlock; SQLite's ``BEGIN IMMEDIATE`` serialises writers). Lock order is
always "the sales order row, then stock rows". Every stock change goes through the inventory
journal (``adapters.erp.inventory.move``) in the same transaction, under event ids derived
from the ERP document (``erp:<SO>:create``, ``erp:<SO>:allocate:<n>``, ``erp:<SO>:ship:<INV>``,
``erp:<SO>:cancel``), each written at most once because the operation itself runs once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters import store_calls
from adapters.erp.inventory import move
from adapters.errors import PermanentError, TransientError
from adapters.faults import FaultInjector
from canonical import Address, Customer, InvoiceAmounts, Money, Order, Shipment
from canonical.documents import Allocation, BackorderLine, CancelAck, CustomerRef, InvoiceAck, SalesOrderAck
from store.db import Store
from store.erp import (
    ACCOUNTS_RECEIVABLE,
    REVENUE,
    SALES_TAX_PAYABLE,
    SHIPPING_REVENUE,
    ErpAllocation,
    ErpCustomer,
    ErpCustomerKey,
    ErpGlEntry,
    ErpIdempotency,
    ErpInvoice,
    ErpInvoiceLine,
    ErpItem,
    ErpSalesOrder,
    ErpSalesOrderLine,
    ErpStock,
    find_sales_order,
    get_sales_order,
    gl_entries,
    list_customers,
    list_invoices,
    stock_levels,
    utcnow,
)

__all__ = [
    "BuiltinErp",
    "find_sales_order",
    "get_sales_order",
    "gl_entries",
    "gl_postings",
    "list_customers",
    "list_invoices",
    "plan_allocation",
    "stock_levels",
]

SYSTEM = "erp"
T = TypeVar("T")

# How a customer key kind is reported; the shared walk-in/guest account (a customer with no
# identifier at all) counts as matched on its fixed external id.
CustomerMatch = Literal["external_id", "email", "phone", "new"]
_MATCHED_ON: dict[str, CustomerMatch] = {
    "external_id": "external_id",
    "email": "email",
    "phone": "phone",
    "guest": "external_id",
}
GUEST_KEY = ("guest", "guest")


async def in_thread(fn: Callable[[], T]) -> T:
    return await store_calls.in_thread(SYSTEM, fn)


def permanent(message: str, reason: str) -> PermanentError:
    return PermanentError(message, reason=reason, system=SYSTEM)


def _conflict(exc: IntegrityError) -> TransientError:
    """A constraint hit by a concurrent writer that then rolled back: the retry will settle it."""
    return TransientError(f"erp write conflict, retry: {exc.orig}", system=SYSTEM)


# -- pure rules ---------------------------------------------------------------------------


def _by_availability(left: Mapping[tuple[str, str], int], sku: str, locations: Iterable[str]) -> list[str]:
    return sorted(locations, key=lambda loc: (-left.get((sku, loc), 0), loc))


def plan_allocation(
    demand: Sequence[tuple[str, str, int]], available: Mapping[tuple[str, str], int]
) -> tuple[list[Allocation], list[BackorderLine]]:
    """Available to promise across locations for ``demand`` = [(line_id, sku, quantity)].

    One location that can fill every line gets everything (one parcel): the one with the most
    availability of the order's SKUs, ties by name. Otherwise each line takes from the
    locations with the most of its SKU first, and what none has is backordered.
    """
    need: dict[str, int] = {}
    for _, sku, qty in demand:
        need[sku] = need.get(sku, 0) + qty
    if not need:
        return [], []
    locations = sorted({loc for (_, loc) in available})

    def avail(sku: str, loc: str) -> int:
        return max(0, available.get((sku, loc), 0))

    whole = [loc for loc in locations if all(avail(sku, loc) >= n for sku, n in need.items())]
    if whole:
        best = min(whole, key=lambda loc: (-sum(avail(sku, loc) for sku in need), loc))
        return [
            Allocation(location=best, line_id=ln, sku=sku, quantity=q) for ln, sku, q in demand if q > 0
        ], []

    left = {(sku, loc): avail(sku, loc) for sku in need for loc in locations}
    allocations: list[Allocation] = []
    backorders: list[BackorderLine] = []
    for line_id, sku, qty in demand:
        remaining = qty
        for loc in _by_availability(left, sku, locations):
            take = min(remaining, left[(sku, loc)])
            if take <= 0:
                break
            left[(sku, loc)] -= take
            remaining -= take
            allocations.append(Allocation(location=loc, line_id=line_id, sku=sku, quantity=take))
        if remaining > 0:
            backorders.append(BackorderLine(line_id=line_id, sku=sku, quantity=remaining))
    return allocations, backorders


def gl_postings(amounts: InvoiceAmounts, taxes_included: bool) -> list[tuple[str, Money, Money]]:
    """Double-entry postings (account, debit, credit) for one invoice; debits == credits.

    Debit receivables with what the invoice bills; credit revenue (net of lines), shipping
    revenue and tax payable. Tax-inclusive amounts carry their tax inside the line and
    shipping figures, so it comes out of revenue. Raises ValueError if the amounts do not add
    up (then no balanced posting exists).
    """
    cur = amounts.total.currency
    net = Money.sum((ln.net for ln in amounts.lines), cur)
    line_tax = Money.sum((ln.tax for ln in amounts.lines), cur)
    revenue = net - line_tax if taxes_included else net
    shipping = amounts.shipping - amounts.shipping_tax if taxes_included else amounts.shipping
    credits = revenue + shipping + amounts.tax
    if credits != amounts.total:
        raise ValueError(
            f"invoice amounts do not balance: revenue {revenue} + shipping {shipping} + tax {amounts.tax}"
            f" = {credits}, but the total is {amounts.total}"
        )
    zero = Money.zero(cur)
    signed = [
        (ACCOUNTS_RECEIVABLE, -amounts.total),
        (REVENUE, revenue),
        (SHIPPING_REVENUE, shipping),
        (SALES_TAX_PAYABLE, amounts.tax),
    ]
    # A signed amount is a credit when positive, a debit when negative; zero lines are omitted.
    return [(acct, -m if m < zero else zero, m if m > zero else zero) for acct, m in signed if not m.is_zero]


# -- helpers over the tables ----------------------------------------------------------------


def _customer_keys(customer: Customer) -> list[tuple[str, str]]:
    """Identifiers in matching order: the channel's id, then email, then phone."""
    keys: list[tuple[str, str]] = []
    if customer.external_id:
        keys.append(("external_id", customer.external_id))
    if customer.email:
        keys.append(("email", customer.email))
    if customer.phone:
        keys.append(("phone", customer.phone))
    return keys or [GUEST_KEY]


def _find_order(s: Session, channel: str, external_id: str) -> ErpSalesOrder | None:
    return s.scalar(
        select(ErpSalesOrder).where(
            ErpSalesOrder.channel == channel, ErpSalesOrder.external_id == external_id
        )
    )


def _lock_order(s: Session, erp_order_id: str) -> ErpSalesOrder:
    so = s.scalar(
        select(ErpSalesOrder)
        .where(ErpSalesOrder.erp_order_id == erp_order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if so is None:
        raise permanent(f"no sales order {erp_order_id}", "not_found")
    return so


def _lock_stock(
    s: Session, skus: Iterable[str], location: str | None = None
) -> dict[tuple[str, str], ErpStock]:
    """Lock the stock rows of ``skus`` (optionally at one location) in (sku, location) order."""
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    q = select(ErpStock).where(ErpStock.sku.in_(wanted))
    if location is not None:
        q = q.where(ErpStock.location == location)
    q = (
        q.order_by(ErpStock.sku, ErpStock.location)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {(r.sku, r.location): r for r in s.scalars(q)}


def _sku(line: ErpSalesOrderLine) -> str:
    """The SKU of a stocked line (stocked lines always have one)."""
    assert line.sku is not None, f"stocked line {line.line_id} without a SKU"
    return line.sku


def _status(so: ErpSalesOrder) -> str:
    if so.cancelled_at is not None:
        return so.status
    stocked = [ln for ln in so.lines if ln.stocked]
    shipped = sum(a.shipped for ln in stocked for a in ln.allocations)
    to_ship = sum(ln.quantity - ln.cancelled for ln in stocked)
    if shipped == 0:
        return "backordered" if any(ln.backordered for ln in stocked) else "open"
    return "shipped" if shipped >= to_ship else "partially_shipped"


def _ack(so: ErpSalesOrder, created: bool) -> SalesOrderAck:
    """The order's allocations (every run's, in line order then allocation order) and its
    backorders: the same answer for the first call and every replay. Call after a flush."""
    allocations: list[Allocation] = []
    backordered: list[BackorderLine] = []
    for ln in sorted(so.lines, key=lambda x: x.position):
        if not ln.stocked:
            continue
        for a in sorted(ln.allocations, key=lambda x: x.id):
            if a.quantity > 0:
                allocations.append(
                    Allocation(location=a.location, line_id=ln.line_id, sku=_sku(ln), quantity=a.quantity)
                )
        if ln.backordered > 0:
            backordered.append(BackorderLine(line_id=ln.line_id, sku=_sku(ln), quantity=ln.backordered))
    return SalesOrderAck(
        erp_order_id=so.erp_order_id or "", allocations=allocations, backordered=backordered, created=created
    )


def _allocate(
    lines: Sequence[ErpSalesOrderLine],
    quantities: Mapping[str, int],
    stock: Mapping[tuple[str, str], ErpStock],
) -> list[tuple[ErpAllocation, str]]:
    """Allocate ``quantities`` (by line id) of stocked ``lines`` from the locked ``stock``
    rows; what cannot be allocated stays backordered. Returns the new allocations with their
    SKU: the caller reserves them (:func:`_reserve`) once the order has its id."""
    demand = [
        (ln.line_id, _sku(ln), quantities[ln.line_id]) for ln in lines if quantities.get(ln.line_id, 0) > 0
    ]
    allocations, _ = plan_allocation(demand, {k: r.available for k, r in stock.items()})
    by_id = {ln.line_id: ln for ln in lines}
    made: list[tuple[ErpAllocation, str]] = []
    for a in allocations:
        ln = by_id[a.line_id]
        alloc = ErpAllocation(location=a.location, quantity=a.quantity, shipped=0, released=0)
        ln.allocations.append(alloc)
        ln.backordered -= a.quantity
        made.append((alloc, a.sku))
    return made


def _reserve(
    s: Session,
    made: Sequence[tuple[ErpAllocation, str]],
    stock: Mapping[tuple[str, str], ErpStock],
    event_id: str,
    erp_order_id: str,
) -> None:
    """Reserve new allocations on their locked stock rows, one journal leg each."""
    for leg, (alloc, sku) in enumerate(made):
        move(
            s,
            stock[(sku, alloc.location)],
            kind="reservation",
            event_id=event_id,
            leg=leg,
            quantity=alloc.quantity,
            reserved=alloc.quantity,
            source=SYSTEM,
            reference=erp_order_id,
        )


class BuiltinErp:
    """The embedded ERP: item master, stock, customers, sales orders, invoices and GL."""

    name = "builtin"

    def __init__(self, store: Store, faults: FaultInjector | None = None) -> None:
        self.store = store
        self.faults = faults or FaultInjector(SYSTEM)

    # -- the port ------------------------------------------------------------------------

    async def resolve_customer(self, customer: Customer, address: Address | None) -> CustomerRef:
        """Match on the channel's customer id, then normalised email, then phone; else create.

        Identifiers are unique in the store, so two concurrent calls for a new customer end
        with one customer (the loser of the insert race matches the winner)."""
        await self.faults.before("resolve_customer", email=customer.email, external_id=customer.external_id)
        return await in_thread(lambda: self._resolve_customer(customer, address))

    async def create_sales_order(self, order: Order, customer_id: str, idempotency_key: str) -> SalesOrderAck:
        """Create the order and allocate its stocked lines; a replay (same channel order)
        returns the stored order and allocations with created=False."""
        skus = sorted({ln.sku for ln in order.lines if ln.sku is not None})
        targets: list[str | None] = [*skus] or [None]
        for sku in targets:
            await self.faults.before(
                "create_sales_order", sku=sku, channel=order.channel, order_key=order.key
            )
        return await in_thread(lambda: self._create_sales_order(order, customer_id, idempotency_key))

    async def allocate_backorders(self, erp_order_id: str) -> SalesOrderAck:
        """Retry allocation of backordered units.

        Returns ALL the order's allocations, earlier ones unchanged and this run's added as
        new entries, and what is still backordered: a caller diffs against what it released,
        and a retried call (worker lost after commit) loses nothing."""
        await self.faults.before("allocate_backorders", erp_order_id=erp_order_id)
        return await in_thread(lambda: self._allocate_backorders(erp_order_id))

    async def invoice_shipment(
        self, erp_order_id: str, shipment: Shipment, amounts: InvoiceAmounts, idempotency_key: str
    ) -> InvoiceAck:
        """Ship (stock leaves on hand and reserved at the shipment's location), invoice and
        post to the GL, once per key."""
        for sku in sorted({ln.sku for ln in shipment.lines}):
            await self.faults.before(
                "invoice_shipment", sku=sku, erp_order_id=erp_order_id, location=shipment.location
            )
        return await in_thread(
            lambda: self._invoice_shipment(erp_order_id, shipment, amounts, idempotency_key)
        )

    async def cancel_sales_order(self, erp_order_id: str, reason: str, idempotency_key: str) -> CancelAck:
        """Cancel what has not shipped and release its reservations; once per key."""
        await self.faults.before("cancel_sales_order", erp_order_id=erp_order_id)
        return await in_thread(lambda: self._cancel_sales_order(erp_order_id, reason, idempotency_key))

    # -- customers -------------------------------------------------------------------------

    def _resolve_customer(self, customer: Customer, address: Address | None) -> CustomerRef:
        keys = _customer_keys(customer)
        for _ in range(3):
            try:
                with self.store.session() as s:
                    return self._match_or_create(s, customer, address, keys)
            except IntegrityError:
                continue  # a concurrent call claimed one of the identifiers: match it next round
        raise TransientError("customer identifiers kept changing concurrently", system=SYSTEM)

    def _match_or_create(
        self, s: Session, customer: Customer, address: Address | None, keys: list[tuple[str, str]]
    ) -> CustomerRef:
        for kind, value in keys:
            found = s.get(ErpCustomerKey, (kind, value))
            if found is None:
                continue
            c = found.customer
            for k, v in keys:  # learn identifiers nobody else has (a new phone, another channel's id)
                if s.get(ErpCustomerKey, (k, v)) is None:
                    s.add(ErpCustomerKey(kind=k, value=v, customer_pk=c.id))
            c.first_name = c.first_name or customer.first_name
            c.last_name = c.last_name or customer.last_name
            c.email = c.email or customer.email
            c.phone = c.phone or customer.phone
            s.flush()
            return CustomerRef(
                customer_id=c.customer_id or "",
                created=False,
                matched_on=_MATCHED_ON[kind],
            )
        c = ErpCustomer(
            first_name=customer.first_name,
            last_name=customer.last_name,
            email=customer.email,
            phone=customer.phone,
            address_json=address.model_dump_json() if address is not None else None,
        )
        s.add(c)
        s.flush()
        c.customer_id = f"CUST-{c.id:06d}"
        for k, v in keys:
            s.add(ErpCustomerKey(kind=k, value=v, customer_pk=c.id))
        s.flush()
        return CustomerRef(customer_id=c.customer_id, created=True, matched_on="new")

    # -- sales orders ----------------------------------------------------------------------

    def _create_sales_order(self, order: Order, customer_id: str, key: str) -> SalesOrderAck:
        try:
            with self.store.session() as s:
                return self._create_in(s, order, customer_id, key)
        except IntegrityError as exc:
            # The same channel order was created concurrently; answer with the winner's order.
            with self.store.session() as s:
                so = _find_order(s, order.channel, order.external_id)
                if so is None:
                    raise _conflict(exc) from exc
                return _ack(so, created=False)

    def _create_in(self, s: Session, order: Order, customer_id: str, key: str) -> SalesOrderAck:
        existing = _find_order(s, order.channel, order.external_id)
        if existing is not None:
            return _ack(existing, created=False)
        ids = [ln.line_id for ln in order.lines]
        if len(set(ids)) != len(ids):
            raise permanent(f"order {order.key} repeats a line id", "invalid_order")
        if s.scalar(select(ErpCustomer.id).where(ErpCustomer.customer_id == customer_id)) is None:
            raise permanent(f"no customer {customer_id}", "unknown_customer")

        stocked = [ln for ln in order.lines if ln.fulfillable]
        skus = sorted({ln.sku for ln in stocked if ln.sku is not None})
        items = {i.sku: i for i in s.scalars(select(ErpItem).where(ErpItem.sku.in_(skus)))} if skus else {}
        unknown = [sku for sku in skus if sku not in items]
        if unknown:
            raise permanent(f"SKUs not in the item master: {', '.join(unknown)}", "unknown_sku")
        inactive = [sku for sku in skus if not items[sku].active]
        if inactive:
            raise permanent(f"SKUs no longer sold (inactive): {', '.join(inactive)}", "inactive_sku")
        stock = _lock_stock(s, skus)
        # With the stock locks held, a concurrent create of this same order has either committed
        # (found now) or will fail on the unique (channel, external_id): look once more.
        existing = _find_order(s, order.channel, order.external_id)
        if existing is not None:
            return _ack(existing, created=False)

        so = ErpSalesOrder(
            channel=order.channel,
            external_id=order.external_id,
            order_name=order.name,
            customer_id=customer_id,
            currency=order.currency,
            taxes_included=order.taxes_included,
            status="open",
            idempotency_key=key,
        )
        for pos, ln in enumerate(order.lines):
            so.lines.append(
                ErpSalesOrderLine(
                    position=pos,
                    line_id=ln.line_id,
                    sku=ln.sku,
                    title=ln.title,
                    quantity=ln.quantity,
                    unit_price=ln.unit_price.amount,
                    net=ln.net.amount,
                    tax=ln.tax.amount,
                    currency=ln.unit_price.currency,
                    stocked=ln.fulfillable,
                    backordered=ln.quantity if ln.fulfillable else 0,
                    cancelled=0,
                )
            )
        stocked_rows = [ln for ln in so.lines if ln.stocked]
        made = _allocate(stocked_rows, {ln.line_id: ln.quantity for ln in stocked_rows}, stock)
        so.status = _status(so)
        s.add(so)
        s.flush()
        so.erp_order_id = f"SO-{so.id:06d}"
        s.flush()
        _reserve(s, made, stock, f"erp:{so.erp_order_id}:create", so.erp_order_id)
        s.flush()
        return _ack(so, created=True)

    def _allocate_backorders(self, erp_order_id: str) -> SalesOrderAck:
        with self.store.session() as s:
            so = _lock_order(s, erp_order_id)
            if so.cancelled_at is None:
                waiting = [ln for ln in so.lines if ln.stocked and ln.backordered > 0]
                if waiting:
                    stock = _lock_stock(s, (_sku(ln) for ln in waiting))
                    made = _allocate(waiting, {ln.line_id: ln.backordered for ln in waiting}, stock)
                    so.status = _status(so)
                    s.flush()
                    if made:  # one event per run, named by its first allocation
                        _reserve(s, made, stock, f"erp:{erp_order_id}:allocate:{made[0][0].id}", erp_order_id)
                        s.flush()
            return _ack(so, created=False)

    # -- invoicing ---------------------------------------------------------------------------

    def _invoice_shipment(
        self, erp_order_id: str, shipment: Shipment, amounts: InvoiceAmounts, key: str
    ) -> InvoiceAck:
        try:
            with self.store.session() as s:
                return self._invoice_in(s, erp_order_id, shipment, amounts, key)
        except IntegrityError as exc:
            # The key was used concurrently for another order's invoice.
            with self.store.session() as s:
                inv = s.scalar(select(ErpInvoice).where(ErpInvoice.idempotency_key == key))
                if inv is None:
                    raise _conflict(exc) from exc
                return _invoice_replay(inv, erp_order_id)

    def _invoice_in(
        self, s: Session, erp_order_id: str, shipment: Shipment, amounts: InvoiceAmounts, key: str
    ) -> InvoiceAck:
        so = _lock_order(s, erp_order_id)
        done = s.scalar(select(ErpInvoice).where(ErpInvoice.idempotency_key == key))
        if done is not None:
            return _invoice_replay(done, erp_order_id)
        if shipment.order_key != so.order_key:
            raise permanent(
                f"shipment is for {shipment.order_key}, {erp_order_id} is {so.order_key}", "order_mismatch"
            )
        monies = [amounts.total, amounts.shipping, amounts.shipping_tax, amounts.tax]
        monies += [m for ln in amounts.lines for m in (ln.net, ln.tax)]
        if any(m.currency != so.currency for m in monies):
            raise permanent(
                f"invoice amounts are not all in the order currency {so.currency}", "currency_mismatch"
            )
        try:
            postings = gl_postings(amounts, so.taxes_included)
        except ValueError as exc:
            raise permanent(str(exc), "unbalanced_invoice") from None

        lines = {ln.line_id: ln for ln in so.lines}
        shipped: dict[str, int] = {}
        for sl in shipment.lines:
            ln = lines.get(sl.line_id)
            if ln is None:
                raise permanent(f"{erp_order_id} has no line {sl.line_id}", "unknown_line")
            if ln.sku is not None and sl.sku != ln.sku:
                raise permanent(f"line {sl.line_id} is {ln.sku}, the shipment says {sl.sku}", "sku_mismatch")
            shipped[sl.line_id] = shipped.get(sl.line_id, 0) + sl.quantity
        moves: list[tuple[ErpSalesOrderLine, int]] = []
        for line_id, qty in shipped.items():
            ln = lines[line_id]
            if not ln.stocked:
                continue  # nothing to take from stock
            open_qty = sum(a.open for a in ln.allocations if a.location == shipment.location)
            if qty > open_qty:
                raise permanent(
                    f"{erp_order_id} line {line_id}: shipping {qty} from {shipment.location},"
                    f" where {open_qty} are allocated and unshipped",
                    "not_allocated",
                )
            moves.append((ln, qty))
        stock = _lock_stock(s, (_sku(ln) for ln, _ in moves), shipment.location)
        for ln, qty in moves:
            left = qty
            for a in sorted(ln.allocations, key=lambda x: x.id):  # oldest allocation first
                if a.location == shipment.location and left > 0:
                    take = min(left, a.open)
                    a.shipped += take
                    left -= take

        cur = so.currency
        inv = ErpInvoice(
            order_pk=so.id,
            idempotency_key=key,
            shipment_id=shipment.shipment_id,
            location=shipment.location,
            currency=cur,
            net=Money.sum((ln.net for ln in amounts.lines), cur).amount,
            shipping=amounts.shipping.amount,
            tax=amounts.tax.amount,
            total=amounts.total.amount,
        )
        inv.lines = [
            ErpInvoiceLine(
                line_id=il.line_id, sku=il.sku, quantity=il.quantity, net=il.net.amount, tax=il.tax.amount
            )
            for il in amounts.lines
        ]
        inv.entries = [
            ErpGlEntry(account=acct, debit=dr.amount, credit=cr.amount, currency=cur)
            for acct, dr, cr in postings
        ]
        so.invoices.append(inv)
        s.flush()
        inv.invoice_id = f"INV-{inv.id:06d}"
        so.status = _status(so)
        s.flush()
        for leg, (ln, qty) in enumerate(moves):  # stock leaves on hand and reserved: journalled
            move(
                s,
                stock[(_sku(ln), shipment.location)],
                kind="shipment",
                event_id=f"erp:{erp_order_id}:ship:{inv.invoice_id}",
                leg=leg,
                quantity=qty,
                on_hand=-qty,
                reserved=-qty,
                source=SYSTEM,
                reference=shipment.shipment_id,
            )
        s.flush()
        return InvoiceAck(invoice_id=inv.invoice_id, total=amounts.total)

    # -- cancellation --------------------------------------------------------------------------

    def _cancel_sales_order(self, erp_order_id: str, reason: str, key: str) -> CancelAck:
        try:
            with self.store.session() as s:
                return self._cancel_in(s, erp_order_id, reason, key)
        except IntegrityError as exc:
            with self.store.session() as s:
                done = s.get(ErpIdempotency, key)
                if done is None:
                    raise _conflict(exc) from exc
                return _cancel_replay(done, erp_order_id)

    def _cancel_in(self, s: Session, erp_order_id: str, reason: str, key: str) -> CancelAck:
        so = _lock_order(s, erp_order_id)
        done = s.get(ErpIdempotency, key)
        if done is not None:
            return _cancel_replay(done, erp_order_id)
        if so.cancelled_at is not None:
            ack = CancelAck(erp_order_id=erp_order_id, status="already_cancelled")
        else:
            open_allocs = [(ln, a) for ln in so.lines if ln.stocked for a in ln.allocations if a.open > 0]
            stock = _lock_stock(s, (_sku(ln) for ln, _ in open_allocs))
            released: list[Allocation] = []
            cancelled_units = 0
            for leg, (ln, a) in enumerate(open_allocs):
                qty = a.open
                a.released += qty
                ln.cancelled += qty
                move(
                    s,
                    stock[(_sku(ln), a.location)],
                    kind="release",
                    event_id=f"erp:{erp_order_id}:cancel",
                    leg=leg,
                    quantity=qty,
                    reserved=-qty,
                    source=SYSTEM,
                    reference=erp_order_id,
                )
                released.append(
                    Allocation(location=a.location, line_id=ln.line_id, sku=_sku(ln), quantity=qty)
                )
                cancelled_units += qty
            invoiced = bool(so.invoices)
            for ln in so.lines:
                if ln.stocked and ln.backordered > 0:
                    ln.cancelled += ln.backordered
                    cancelled_units += ln.backordered
                    ln.backordered = 0
                elif not ln.stocked and not invoiced and ln.cancelled < ln.quantity:
                    cancelled_units += ln.quantity - ln.cancelled
                    ln.cancelled = ln.quantity
            shipped = invoiced or any(a.shipped for ln in so.lines for a in ln.allocations)
            if shipped and cancelled_units == 0:
                raise permanent(
                    f"{erp_order_id} has shipped in full: nothing left to cancel", "already_shipped"
                )
            so.cancelled_at = utcnow()
            so.cancel_reason = reason
            so.status = "partially_cancelled" if shipped else "cancelled"
            ack = CancelAck(
                erp_order_id=erp_order_id,
                released=released,
                status="partially_cancelled" if shipped else "cancelled",
            )
        s.add(
            ErpIdempotency(
                idempotency_key=key,
                operation="cancel_sales_order",
                erp_order_id=erp_order_id,
                response=ack.model_dump_json(),
            )
        )
        s.flush()
        return ack


def _invoice_replay(inv: ErpInvoice, erp_order_id: str) -> InvoiceAck:
    if inv.order.erp_order_id != erp_order_id:
        raise permanent(
            f"idempotency key already invoiced {inv.order.erp_order_id}, not {erp_order_id}",
            "idempotency_key_reuse",
        )
    return InvoiceAck(invoice_id=inv.invoice_id or "", total=Money.of(inv.total, inv.currency))


def _cancel_replay(done: ErpIdempotency, erp_order_id: str) -> CancelAck:
    if done.operation != "cancel_sales_order" or done.erp_order_id != erp_order_id:
        raise permanent(
            f"idempotency key already used for {done.operation} of {done.erp_order_id}",
            "idempotency_key_reuse",
        )
    return CancelAck.model_validate_json(done.response)
