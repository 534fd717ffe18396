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

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Literal, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters import store_calls
from adapters.erp.inventory import move
from adapters.errors import PermanentError, TransientError
from adapters.faults import FaultInjector
from adapters.registry import AdapterContext, register
from backoffice.erp import (
    ACCOUNTS_RECEIVABLE,
    INVENTORY,
    INVENTORY_WRITE_OFF,
    REVENUE,
    SALES_TAX_PAYABLE,
    SHIPPING_REVENUE,
    ErpAllocation,
    ErpCreditMemo,
    ErpCustomer,
    ErpCustomerKey,
    ErpGlEntry,
    ErpIdempotency,
    ErpInvoice,
    ErpInvoiceLine,
    ErpItem,
    ErpItemCost,
    ErpReturnGlEntry,
    ErpRma,
    ErpRmaLine,
    ErpSalesOrder,
    ErpSalesOrderLine,
    ErpStock,
    find_sales_order,
    get_rma,
    get_sales_order,
    gl_entries,
    list_customers,
    list_invoices,
    list_rmas,
    return_gl_entries,
    set_item_cost,
    stock_levels,
    utcnow,
)
from canonical import Address, Customer, InvoiceAmounts, Money, Order, Shipment
from canonical.documents import (
    Allocation,
    BackorderLine,
    CancelAck,
    CreditMemoAck,
    CustomerRef,
    InvoiceAck,
    ReturnReceiptAck,
    RmaAck,
    RmaLine,
    SalesOrderAck,
)
from canonical.returns import DispositionLine
from store.db import Store

__all__ = [
    "BuiltinErp",
    "find_sales_order",
    "get_rma",
    "get_sales_order",
    "gl_entries",
    "gl_postings",
    "list_customers",
    "list_invoices",
    "list_rmas",
    "plan_allocation",
    "return_gl_entries",
    "set_item_cost",
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
            # Units an edit released are no longer promised (cancellation releases are moot:
            # nothing asks for allocations after it).
            promised = a.quantity - a.released if so.cancelled_at is None else a.quantity
            if promised > 0:
                allocations.append(
                    Allocation(location=a.location, line_id=ln.line_id, sku=_sku(ln), quantity=promised)
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
    never_from: Collection[str] = (),
) -> list[tuple[ErpAllocation, str]]:
    """Allocate ``quantities`` (by line id) of stocked ``lines`` from the locked ``stock``
    rows, never from the ``never_from`` locations; what cannot be allocated stays backordered.
    Returns the new allocations with their SKU: the caller reserves them (:func:`_reserve`)
    once the order has its id."""
    demand = [
        (ln.line_id, _sku(ln), quantities[ln.line_id]) for ln in lines if quantities.get(ln.line_id, 0) > 0
    ]
    available = {k: r.available for k, r in stock.items() if k[1] not in never_from}
    allocations, _ = plan_allocation(demand, available)
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

    def __init__(
        self, store: Store, faults: FaultInjector | None = None, never_allocate_from: Collection[str] = ()
    ) -> None:
        self.store = store
        self.faults = faults or FaultInjector(SYSTEM)
        # Stores whose stock a channel's POS sells (RETAIL_SHOPIFY_STORE_LOCATIONS): a web order
        # allocated there would be counted twice, once by the POS count and once by the order.
        self.never_allocate_from = frozenset(never_allocate_from)

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

    async def update_sales_order(
        self, erp_order_id: str, order: Order, idempotency_key: str
    ) -> SalesOrderAck:
        await self.faults.before("update_sales_order", erp_order_id=erp_order_id)
        result = await in_thread(lambda: self._update_sales_order(erp_order_id, order, idempotency_key))
        await self.faults.after("update_sales_order")
        return result

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

    async def authorize_return(
        self, erp_order_id: str, return_key: str, lines: list[RmaLine], idempotency_key: str
    ) -> RmaAck:
        """Authorize an RMA for what was shipped (invoiced) and is not on another live RMA.

        The order row is locked while the returnable quantities are computed and the RMA is
        written, so two concurrent returns of the same order cannot both take the last unit."""
        for sku in sorted({ln.sku or "" for ln in lines}) or [""]:
            await self.faults.before(
                "authorize_return", erp_order_id=erp_order_id, return_key=return_key, sku=sku or None
            )
        ack = await in_thread(
            lambda: self._authorize_return(erp_order_id, return_key, lines, idempotency_key)
        )
        await self.faults.after("authorize_return")
        return ack

    async def receive_return(
        self, rma_id: str, lines: list[DispositionLine], idempotency_key: str
    ) -> ReturnReceiptAck:
        """Restock (a ``return_restock`` journal movement, event ``erp:<SO>:return:<RMA>``) and
        write off damaged units at cost, once per RMA; a replay of the key answers the same."""
        for sku in sorted({ln.sku or "" for ln in lines}) or [""]:
            await self.faults.before("receive_return", rma_id=rma_id, sku=sku or None)
        ack = await in_thread(lambda: self._receive_return(rma_id, lines, idempotency_key))
        await self.faults.after("receive_return")
        return ack

    async def post_credit_memo(
        self, rma_id: str, amounts: InvoiceAmounts, idempotency_key: str
    ) -> CreditMemoAck:
        """Post the RMA's one credit memo with its reversing GL entries."""
        await self.faults.before("post_credit_memo", rma_id=rma_id, currency=amounts.total.currency)
        ack = await in_thread(lambda: self._post_credit_memo(rma_id, amounts, idempotency_key))
        await self.faults.after("post_credit_memo")
        return ack

    async def close_return(self, rma_id: str, reason: str, idempotency_key: str) -> RmaAck:
        """Close an RMA nothing was received or credited for; closing it again is a no-op."""
        await self.faults.before("close_return", rma_id=rma_id)
        ack = await in_thread(lambda: self._close_return(rma_id, reason, idempotency_key))
        await self.faults.after("close_return")
        return ack

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
        made = _allocate(
            stocked_rows, {ln.line_id: ln.quantity for ln in stocked_rows}, stock, self.never_allocate_from
        )
        so.status = _status(so)
        s.add(so)
        s.flush()
        so.erp_order_id = f"SO-{so.id:06d}"
        s.flush()
        _reserve(s, made, stock, f"erp:{so.erp_order_id}:create", so.erp_order_id)
        s.flush()
        return _ack(so, created=True)

    def _update_sales_order(self, erp_order_id: str, order: Order, key: str) -> SalesOrderAck:
        try:
            with self.store.session() as s:
                return self._update_in(s, erp_order_id, order, key)
        except IntegrityError as exc:
            with self.store.session() as s:
                if s.get(ErpIdempotency, key) is None:
                    raise _conflict(exc) from exc
                return _ack(_lock_order(s, erp_order_id), created=False)

    def _update_in(self, s: Session, erp_order_id: str, order: Order, key: str) -> SalesOrderAck:
        so = _lock_order(s, erp_order_id)
        if s.get(ErpIdempotency, key) is not None:
            return _ack(so, created=False)
        if so.cancelled_at is not None:
            raise permanent(f"{erp_order_id} is cancelled", "order_cancelled")
        if so.invoices or any(a.shipped for ln in so.lines for a in ln.allocations):
            raise permanent(f"{erp_order_id} has shipped: it cannot be edited", "already_shipped")
        edited = {ln.line_id: ln for ln in order.lines}
        rows = {ln.line_id: ln for ln in so.lines}
        new_lines = sorted(set(edited) - set(rows))
        if new_lines:
            raise permanent(f"new lines {', '.join(new_lines)}: add them by hand", "edit_not_supported")
        grown = [lid for lid, ln in edited.items() if ln.quantity > rows[lid].quantity]
        if grown:
            raise permanent(f"quantities increased on {', '.join(grown)}", "edit_not_supported")
        stocked = [ln for ln in so.lines if ln.stocked]
        stock = _lock_stock(s, (_sku(ln) for ln in stocked))
        event_id = f"erp:{erp_order_id}:edit:{key}"[:200]
        leg = 0
        for ln in so.lines:
            new = edited.get(ln.line_id)
            qty = new.quantity if new is not None else 0
            drop = ln.quantity - qty
            if ln.stocked and drop > 0:
                from_backorder = min(drop, ln.backordered)
                ln.backordered -= from_backorder
                left = drop - from_backorder
                for a in sorted(ln.allocations, key=lambda x: x.id, reverse=True):
                    take = min(left, a.open)
                    if take <= 0:
                        continue
                    a.released += take
                    left -= take
                    move(
                        s,
                        stock[(_sku(ln), a.location)],
                        kind="release",
                        event_id=event_id,
                        leg=leg,
                        quantity=take,
                        reserved=-take,
                        source=SYSTEM,
                        reference=erp_order_id,
                    )
                    leg += 1
            ln.quantity = qty
            ln.net = new.net.amount if new is not None else Decimal(0)
            ln.tax = new.tax.amount if new is not None else Decimal(0)
        so.status = _status(so)
        s.add(
            ErpIdempotency(
                idempotency_key=key, operation="update_sales_order", erp_order_id=erp_order_id, response="{}"
            )
        )
        s.flush()
        return _ack(so, created=False)

    def _allocate_backorders(self, erp_order_id: str) -> SalesOrderAck:
        with self.store.session() as s:
            so = _lock_order(s, erp_order_id)
            if so.cancelled_at is None:
                waiting = [ln for ln in so.lines if ln.stocked and ln.backordered > 0]
                if waiting:
                    stock = _lock_stock(s, (_sku(ln) for ln in waiting))
                    wanted = {ln.line_id: ln.backordered for ln in waiting}
                    made = _allocate(waiting, wanted, stock, self.never_allocate_from)
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

    # -- returns ---------------------------------------------------------------------------------

    def _authorize_return(self, erp_order_id: str, return_key: str, lines: list[RmaLine], key: str) -> RmaAck:
        try:
            with self.store.session() as s:
                return self._authorize_in(s, erp_order_id, return_key, lines, key)
        except IntegrityError as exc:
            with self.store.session() as s:
                done = s.scalar(select(ErpRma).where(ErpRma.idempotency_key == key))
                if done is None:
                    raise _conflict(exc) from exc
                return _rma_replay(done, erp_order_id)

    def _authorize_in(
        self, s: Session, erp_order_id: str, return_key: str, lines: list[RmaLine], key: str
    ) -> RmaAck:
        so = _lock_order(s, erp_order_id)
        done = s.scalar(select(ErpRma).where(ErpRma.idempotency_key == key))
        if done is not None:
            return _rma_replay(done, erp_order_id)
        if not lines:
            raise permanent(f"return {return_key} has no lines", "invalid_return")
        ids = [ln.line_id for ln in lines]
        if len(set(ids)) != len(ids):
            raise permanent(f"return {return_key} repeats an order line", "invalid_return")
        order_lines = {ln.line_id: ln for ln in so.lines}
        for rl in lines:
            ol = order_lines.get(rl.line_id)
            if ol is None:
                raise permanent(f"{erp_order_id} has no line {rl.line_id}", "unknown_line")
            if rl.sku is not None and ol.sku is not None and rl.sku != ol.sku:
                raise permanent(f"line {rl.line_id} is {ol.sku}, the return says {rl.sku}", "sku_mismatch")
        invoiced = _invoiced(so)
        taken = _on_live_rmas(s, erp_order_id)
        refused = []
        for rl in lines:
            shipped, already = invoiced.get(rl.line_id, 0), taken.get(rl.line_id, 0)
            if rl.quantity > shipped - already:
                refused.append(
                    f"line {rl.line_id}: returning {rl.quantity}, shipped {shipped}, on other returns"
                    f" {already}, returnable {max(0, shipped - already)}"
                )
        if refused:
            raise permanent(f"{erp_order_id}: not returnable: {'; '.join(refused)}", "not_returnable")
        rma = ErpRma(
            erp_order_id=erp_order_id,
            return_key=return_key,
            idempotency_key=key,
            status="authorized",
            currency=so.currency,
            returned_before={k: v for k, v in sorted(taken.items()) if v > 0},
            restocked=0,
            written_off=Decimal(0),
        )
        rma.lines = [
            ErpRmaLine(
                position=i,
                line_id=rl.line_id,
                sku=rl.sku if rl.sku is not None else order_lines[rl.line_id].sku,
                quantity=rl.quantity,
                restocked=0,
                damaged=0,
            )
            for i, rl in enumerate(lines)
        ]
        s.add(rma)
        s.flush()
        rma.rma_id = f"RMA-{rma.id:06d}"
        s.flush()
        return _rma_ack(rma, created=True)

    def _locked_rma(self, s: Session, rma_id: str) -> tuple[ErpSalesOrder, ErpRma]:
        """The RMA's sales order and the RMA, locked in the usual order (order row first)."""
        erp_order_id = s.scalar(select(ErpRma.erp_order_id).where(ErpRma.rma_id == rma_id))
        if erp_order_id is None:
            raise permanent(f"no RMA {rma_id}", "not_found")
        so = _lock_order(s, erp_order_id)
        rma = s.scalar(
            select(ErpRma)
            .where(ErpRma.rma_id == rma_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert rma is not None  # RMAs are never deleted
        return so, rma

    def _receive_return(self, rma_id: str, lines: list[DispositionLine], key: str) -> ReturnReceiptAck:
        try:
            with self.store.session() as s:
                return self._receive_in(s, rma_id, lines, key)
        except IntegrityError as exc:  # a concurrent first stock row at a location: retry settles it
            raise _conflict(exc) from exc

    def _receive_in(
        self, s: Session, rma_id: str, lines: list[DispositionLine], key: str
    ) -> ReturnReceiptAck:
        so, rma = self._locked_rma(s, rma_id)
        if rma.receipt_key == key:
            return _receipt_ack(rma)
        if rma.receipt_key is not None:
            raise permanent(f"{rma_id} was already received (another receipt)", "rma_received")
        if rma.status == "closed":
            raise permanent(f"{rma_id} is closed: {rma.close_reason}", "rma_closed")
        by_line = {ln.line_id: ln for ln in rma.lines}
        counted: dict[str, int] = {}
        for dl in lines:
            rl = by_line.get(dl.line_id)
            if rl is None:
                raise permanent(f"{rma_id} does not return line {dl.line_id}", "unknown_line")
            if dl.sku is not None and rl.sku is not None and dl.sku != rl.sku:
                raise permanent(f"line {dl.line_id} is {rl.sku}, the receipt says {dl.sku}", "sku_mismatch")
            counted[dl.line_id] = counted.get(dl.line_id, 0) + dl.quantity
        over = [
            f"line {lid}: {n} of {by_line[lid].quantity}"
            for lid, n in counted.items()
            if n > by_line[lid].quantity
        ]
        if over:
            raise permanent(
                f"{rma_id}: receipt exceeds the authorization: {'; '.join(over)}", "receipt_exceeds_rma"
            )

        cur = rma.currency
        restocks: list[tuple[ErpRmaLine, str, str, int]] = []  # (line, sku, location, quantity)
        damaged: list[tuple[ErpRmaLine, int]] = []
        for dl in lines:
            rl = by_line[dl.line_id]
            if dl.disposition == "not_returned":
                continue
            sku = rl.sku or dl.sku
            if dl.disposition == "damaged":
                damaged.append((rl, dl.quantity))
            elif sku is None:
                raise permanent(f"line {dl.line_id} has no SKU to restock", "not_stocked")
            else:
                restocks.append((rl, sku, dl.location or _ship_location(so, dl.line_id, rma_id), dl.quantity))

        stock = _lock_stock(s, (sku for _, sku, _, _ in restocks))
        for _, sku, loc, _ in restocks:
            if (sku, loc) not in stock:
                if s.get(ErpItem, sku) is None:
                    raise permanent(f"SKU {sku} is not in the item master", "unknown_sku")
                row = ErpStock(sku=sku, location=loc, on_hand=0, reserved=0)
                s.add(row)
                stock[(sku, loc)] = row
        for leg, (rl, sku, loc, qty) in enumerate(restocks):
            move(
                s,
                stock[(sku, loc)],
                kind="return_restock",
                event_id=f"erp:{rma.erp_order_id}:return:{rma_id}",
                leg=leg,
                quantity=qty,
                on_hand=qty,
                source=SYSTEM,
                reference=rma_id,
            )
            rl.restocked += qty

        written_off = Money.zero(cur)
        for rl, qty in damaged:
            rl.damaged += qty
            written_off = written_off + _unit_cost(s, so, rl).times(qty)
        if not written_off.is_zero:
            nothing = Decimal(0)
            for acct, dr, cr in (
                (INVENTORY_WRITE_OFF, written_off.amount, nothing),
                (INVENTORY, nothing, written_off.amount),
            ):
                rma.entries.append(
                    ErpReturnGlEntry(
                        document=rma_id, kind="write_off", account=acct, debit=dr, credit=cr, currency=cur
                    )
                )
        rma.receipt_key = key
        rma.received_at = utcnow()
        rma.restocked = sum(q for _, _, _, q in restocks)
        rma.written_off = written_off.amount
        if rma.status == "authorized":
            rma.status = "received"
        s.flush()
        return _receipt_ack(rma)

    def _post_credit_memo(self, rma_id: str, amounts: InvoiceAmounts, key: str) -> CreditMemoAck:
        try:
            with self.store.session() as s:
                return self._credit_in(s, rma_id, amounts, key)
        except IntegrityError as exc:
            with self.store.session() as s:
                done = s.scalar(select(ErpCreditMemo).where(ErpCreditMemo.idempotency_key == key))
                if done is None:
                    raise _conflict(exc) from exc
                return _credit_replay(done, rma_id, amounts)

    def _credit_in(self, s: Session, rma_id: str, amounts: InvoiceAmounts, key: str) -> CreditMemoAck:
        so, rma = self._locked_rma(s, rma_id)
        done = s.scalar(select(ErpCreditMemo).where(ErpCreditMemo.idempotency_key == key))
        if done is not None:
            return _credit_replay(done, rma_id, amounts)
        if rma.credit_memo is not None:  # one per RMA, whatever key asks again
            return _credit_replay(rma.credit_memo, rma_id, amounts)
        if rma.status == "closed":
            raise permanent(f"{rma_id} is closed: {rma.close_reason}", "rma_closed")
        monies = [amounts.total, amounts.shipping, amounts.shipping_tax, amounts.tax]
        monies += [m for ln in amounts.lines for m in (ln.net, ln.tax)]
        if any(m.currency != so.currency for m in monies):
            raise permanent(
                f"credit memo amounts are not all in the order currency {so.currency}", "currency_mismatch"
            )
        authorized = {ln.line_id: ln.quantity for ln in rma.lines}
        for cl in amounts.lines:
            if cl.line_id not in authorized:
                raise permanent(f"{rma_id} does not return line {cl.line_id}", "unknown_line")
            if cl.quantity > authorized[cl.line_id]:
                raise permanent(
                    f"{rma_id} line {cl.line_id}: crediting {cl.quantity} of {authorized[cl.line_id]}"
                    " authorized",
                    "credit_exceeds_rma",
                )
        try:
            postings = gl_postings(amounts, so.taxes_included)
        except ValueError as exc:
            raise permanent(str(exc).replace("invoice", "credit memo"), "unbalanced_credit_memo") from None
        cur = so.currency
        invoiced = Money.sum((Money.of(inv.total, cur) for inv in so.invoices), cur)
        credited = Money.sum(
            (
                Money.of(cm.total, cur)
                for cm in s.scalars(
                    select(ErpCreditMemo)
                    .join(ErpRma, ErpCreditMemo.rma_pk == ErpRma.id)
                    .where(ErpRma.erp_order_id == so.erp_order_id)
                )
            ),
            cur,
        )
        if credited + amounts.total > invoiced:
            raise permanent(
                f"{so.erp_order_id}: crediting {amounts.total} after {credited}"
                f" exceeds the {invoiced} invoiced",
                "credit_exceeds_invoiced",
            )
        cm = ErpCreditMemo(
            rma_pk=rma.id,
            idempotency_key=key,
            currency=cur,
            net=Money.sum((ln.net for ln in amounts.lines), cur).amount,
            shipping=amounts.shipping.amount,
            tax=amounts.tax.amount,
            total=amounts.total.amount,
        )
        s.add(cm)
        s.flush()
        cm.credit_memo_id = f"CM-{cm.id:06d}"
        # The invoice's posting mirrored: receivable credited, revenue, shipping and tax debited.
        for acct, dr, cr in postings:
            rma.entries.append(
                ErpReturnGlEntry(
                    document=cm.credit_memo_id,
                    kind="credit_memo",
                    account=acct,
                    debit=cr.amount,
                    credit=dr.amount,
                    currency=cur,
                )
            )
        rma.status = "credited"
        s.flush()
        return CreditMemoAck(credit_memo_id=cm.credit_memo_id, rma_id=rma_id, total=amounts.total)

    def _close_return(self, rma_id: str, reason: str, key: str) -> RmaAck:
        with self.store.session() as s:
            _, rma = self._locked_rma(s, rma_id)
            if rma.status == "closed":
                return _rma_ack(rma, created=False)
            if rma.receipt_key is not None:
                raise permanent(f"{rma_id} was received: it cannot be closed", "rma_received")
            if rma.credit_memo is not None:
                raise permanent(f"{rma_id} was credited: it cannot be closed", "rma_credited")
            rma.status = "closed"
            rma.close_key = key
            rma.close_reason = reason[:2000]
            rma.closed_at = utcnow()
            s.flush()
            return _rma_ack(rma, created=False)


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


# -- returns: helpers ---------------------------------------------------------------------------

RmaStatus = Literal["authorized", "received", "credited", "closed"]


def _invoiced(so: ErpSalesOrder) -> dict[str, int]:
    """Units of each line invoiced (shipped, or billed for unstocked lines) so far."""
    out: dict[str, int] = {}
    for inv in so.invoices:
        for il in inv.lines:
            out[il.line_id] = out.get(il.line_id, 0) + il.quantity
    return out


def _on_live_rmas(s: Session, erp_order_id: str) -> dict[str, int]:
    """Units of each line on the order's RMAs that are not closed (authorized, received, credited)."""
    q = (
        select(ErpRmaLine.line_id, ErpRmaLine.quantity)
        .join(ErpRma, ErpRmaLine.rma_pk == ErpRma.id)
        .where(ErpRma.erp_order_id == erp_order_id, ErpRma.status != "closed")
    )
    out: dict[str, int] = {}
    for line_id, qty in s.execute(q):
        out[line_id] = out.get(line_id, 0) + qty
    return out


def _ship_location(so: ErpSalesOrder, line_id: str, rma_id: str) -> str:
    """Where the line last shipped from: a restock without a location goes back there."""
    for inv in reversed(so.invoices):
        if any(il.line_id == line_id for il in inv.lines):
            return inv.location
    raise permanent(f"{rma_id} line {line_id}: no location to restock to", "no_location")


def _unit_cost(s: Session, so: ErpSalesOrder, rl: ErpRmaLine) -> Money:
    """The SKU's standard cost (``erp_item_costs``); without one, the unit's net sale value
    before tax, for want of a better figure (the item master keeps no cost)."""
    cur = so.currency
    if rl.sku is not None:
        cost = s.get(ErpItemCost, rl.sku)
        if cost is not None and cost.currency == cur:
            return Money.round(cost.unit_cost, cur)
    ol = next(ln for ln in so.lines if ln.line_id == rl.line_id)
    net = ol.net - ol.tax if so.taxes_included else ol.net
    return Money.round(net / ol.quantity, cur) if ol.quantity else Money.zero(cur)


def _rma_ack(rma: ErpRma, created: bool) -> RmaAck:
    return RmaAck(
        rma_id=rma.rma_id or "",
        erp_order_id=rma.erp_order_id,
        lines=[RmaLine(line_id=ln.line_id, sku=ln.sku, quantity=ln.quantity) for ln in rma.lines],
        returned_before=dict(rma.returned_before),
        status=cast(RmaStatus, rma.status),
        created=created,
    )


def _rma_replay(rma: ErpRma, erp_order_id: str) -> RmaAck:
    if rma.erp_order_id != erp_order_id:
        raise permanent(
            f"idempotency key already authorized {rma.rma_id} on {rma.erp_order_id}, not {erp_order_id}",
            "idempotency_key_reuse",
        )
    return _rma_ack(rma, created=False)


def _receipt_ack(rma: ErpRma) -> ReturnReceiptAck:
    return ReturnReceiptAck(
        rma_id=rma.rma_id or "", restocked=rma.restocked, written_off=Money.of(rma.written_off, rma.currency)
    )


def _credit_replay(cm: ErpCreditMemo, rma_id: str, amounts: InvoiceAmounts) -> CreditMemoAck:
    if cm.rma.rma_id != rma_id:
        raise permanent(
            f"idempotency key already credited {cm.rma.rma_id}, not {rma_id}", "idempotency_key_reuse"
        )
    total = Money.of(cm.total, cm.currency)
    if total != amounts.total:
        raise permanent(
            f"{rma_id} already has credit memo {cm.credit_memo_id} for {total}, not {amounts.total}",
            "credit_memo_exists",
        )
    return CreditMemoAck(credit_memo_id=cm.credit_memo_id or "", rma_id=rma_id, total=total)


@register("erp", "builtin")
def _builtin(ctx: AdapterContext) -> BuiltinErp:
    return BuiltinErp(
        ctx.store,
        FaultInjector("erp", ctx.settings.faults.erp),
        never_allocate_from=ctx.settings.shopify_store_locations.values(),
    )
