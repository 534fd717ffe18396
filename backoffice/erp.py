"""The builtin ERP's ledger: item master, stock per location, customers, sales orders,
invoices and GL postings.

Tables hold facts only; the rules (matching, allocation, invoicing) live in
``adapters/erp/builtin.py``. The read helpers at the end return plain views so CLIs and
tests never hold ORM objects outside a transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from canonical.money import Money
from store.db import Base, Store

# General ledger accounts the builtin ERP posts to (double entry, one currency per invoice).
ACCOUNTS_RECEIVABLE = "Accounts Receivable"
REVENUE = "Revenue"
SHIPPING_REVENUE = "Shipping Revenue"
SALES_TAX_PAYABLE = "Sales Tax Payable"
# Returns: damaged units written off at cost (the expense) against the stock they were.
INVENTORY = "Inventory"
INVENTORY_WRITE_OFF = "Inventory Write-off"

RMA_STATUSES = ("authorized", "received", "credited", "closed")


def utcnow() -> datetime:
    return datetime.now(UTC)


class ErpItem(Base):
    """The item master: a SKU the ERP sells (unknown SKUs are refused on orders)."""

    __tablename__ = "erp_items"

    sku: Mapped[str] = mapped_column(String(100), primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    price: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    weight_grams: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ErpStock(Base):
    """Stock of one SKU at one location; available to promise is on_hand - reserved."""

    __tablename__ = "erp_stock"

    sku: Mapped[str] = mapped_column(
        String(100), ForeignKey("erp_items.sku", name="fk_erp_stock_sku"), primary_key=True
    )
    location: Mapped[str] = mapped_column(String(100), primary_key=True)
    on_hand: Mapped[int] = mapped_column(default=0)
    reserved: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    # When the newest cycle count applied here was taken (UTC): an older count that arrives
    # late changes nothing (adapters/erp/inventory.py). None until the first count.
    counted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    @property
    def available(self) -> int:
        """Never negative: a stock count below the reservations promises nothing."""
        return max(0, self.on_hand - self.reserved)


class ErpCustomer(Base):
    """A customer of record; identifiers that match it live in ErpCustomerKey."""

    __tablename__ = "erp_customers"
    __table_args__ = (UniqueConstraint("customer_id", name="uq_erp_customers_customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(20))  # CUST-000001, set after insert
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    address_json: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    keys: Mapped[list[ErpCustomerKey]] = relationship(back_populates="customer")


class ErpCustomerKey(Base):
    """One identifier (external id, normalised email or phone) -> one customer.

    The primary key makes a duplicate customer for the same identifier impossible, even
    across processes: a concurrent second insert fails and the loser matches the winner.
    """

    __tablename__ = "erp_customer_keys"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(String(320), primary_key=True)
    customer_pk: Mapped[int] = mapped_column(
        ForeignKey("erp_customers.id", name="fk_erp_customer_keys_customer"), index=True
    )

    customer: Mapped[ErpCustomer] = relationship(back_populates="keys")


class ErpSalesOrder(Base):
    """A sales order, unique per channel order: the ERP side of idempotent order creation."""

    __tablename__ = "erp_sales_orders"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_erp_sales_orders_channel_external_id"),
        UniqueConstraint("erp_order_id", name="uq_erp_sales_orders_erp_order_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    erp_order_id: Mapped[str | None] = mapped_column(String(20))  # SO-000123, set after insert
    channel: Mapped[str] = mapped_column(String(50))
    external_id: Mapped[str] = mapped_column(String(200))
    order_name: Mapped[str | None] = mapped_column(String(200))
    customer_id: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    taxes_included: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(30))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    lines: Mapped[list[ErpSalesOrderLine]] = relationship(
        back_populates="order", order_by="ErpSalesOrderLine.position", cascade="all, delete-orphan"
    )
    invoices: Mapped[list[ErpInvoice]] = relationship(back_populates="order", order_by="ErpInvoice.id")

    @property
    def order_key(self) -> str:
        return f"{self.channel}-{self.external_id}"


class ErpSalesOrderLine(Base):
    """One order line. ``stocked`` lines are allocated from stock; the others (custom lines,
    gift cards, digital goods) are only billed.

    Invariant for stocked lines: quantity = backordered + sum(allocation.quantity)
    + (cancelled - sum(allocation.released)).
    """

    __tablename__ = "erp_sales_order_lines"
    __table_args__ = (UniqueConstraint("order_pk", "line_id", name="uq_erp_sales_order_lines_order_line"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_pk: Mapped[int] = mapped_column(
        ForeignKey("erp_sales_orders.id", name="fk_erp_sales_order_lines_order"), index=True
    )
    position: Mapped[int]
    line_id: Mapped[str] = mapped_column(String(100))
    sku: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal]
    net: Mapped[Decimal]
    tax: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    stocked: Mapped[bool]
    backordered: Mapped[int] = mapped_column(default=0)
    cancelled: Mapped[int] = mapped_column(default=0)

    order: Mapped[ErpSalesOrder] = relationship(back_populates="lines")
    allocations: Mapped[list[ErpAllocation]] = relationship(
        back_populates="line", order_by="ErpAllocation.id", cascade="all, delete-orphan"
    )


class ErpAllocation(Base):
    """Units of one line promised from one location by one allocation run (the order's
    creation or a backorder retry); open (still reserved) = quantity - shipped - released.

    One row per run, never merged: callers diff the allocations they already released
    against the order's full list, so an earlier allocation must keep its exact shape.
    """

    __tablename__ = "erp_allocations"

    id: Mapped[int] = mapped_column(primary_key=True)
    line_pk: Mapped[int] = mapped_column(
        ForeignKey("erp_sales_order_lines.id", name="fk_erp_allocations_line"), index=True
    )
    location: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int]
    shipped: Mapped[int] = mapped_column(default=0)
    released: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    line: Mapped[ErpSalesOrderLine] = relationship(back_populates="allocations")

    @property
    def open(self) -> int:
        return self.quantity - self.shipped - self.released


class ErpInvoice(Base):
    """An invoice for one shipment; unique on the caller's idempotency key."""

    __tablename__ = "erp_invoices"
    __table_args__ = (
        UniqueConstraint("invoice_id", name="uq_erp_invoices_invoice_id"),
        UniqueConstraint("idempotency_key", name="uq_erp_invoices_idempotency_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[str | None] = mapped_column(String(20))  # INV-000045, set after insert
    order_pk: Mapped[int] = mapped_column(
        ForeignKey("erp_sales_orders.id", name="fk_erp_invoices_order"), index=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(255))
    shipment_id: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    net: Mapped[Decimal]
    shipping: Mapped[Decimal]
    tax: Mapped[Decimal]
    total: Mapped[Decimal]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    order: Mapped[ErpSalesOrder] = relationship(back_populates="invoices")
    lines: Mapped[list[ErpInvoiceLine]] = relationship(
        order_by="ErpInvoiceLine.id", cascade="all, delete-orphan"
    )
    entries: Mapped[list[ErpGlEntry]] = relationship(order_by="ErpGlEntry.id", cascade="all, delete-orphan")


class ErpInvoiceLine(Base):
    __tablename__ = "erp_invoice_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_pk: Mapped[int] = mapped_column(
        ForeignKey("erp_invoices.id", name="fk_erp_invoice_lines_invoice"), index=True
    )
    line_id: Mapped[str] = mapped_column(String(100))
    sku: Mapped[str | None] = mapped_column(String(100))
    quantity: Mapped[int]
    net: Mapped[Decimal]
    tax: Mapped[Decimal]


class ErpGlEntry(Base):
    """One side of a double-entry posting; an invoice's debits equal its credits."""

    __tablename__ = "erp_gl_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_pk: Mapped[int] = mapped_column(
        ForeignKey("erp_invoices.id", name="fk_erp_gl_entries_invoice"), index=True
    )
    account: Mapped[str] = mapped_column(String(100))
    debit: Mapped[Decimal]
    credit: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ErpIdempotency(Base):
    """Stored responses of keyed ERP calls that have no natural key (cancellation)."""

    __tablename__ = "erp_idempotency"

    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation: Mapped[str] = mapped_column(String(50))
    erp_order_id: Mapped[str] = mapped_column(String(20))
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- returns (migration 0008_returns) ---------------------------------------------------------
# These tables sit on their own migration branch: no foreign keys to the ledger branch's tables
# (the sales order is named by its erp_order_id, as the inventory journal names SKUs).


class ErpItemCost(Base):
    """The standard cost of a SKU, used to write off damaged returns (the item master has no cost)."""

    __tablename__ = "erp_item_costs"

    sku: Mapped[str] = mapped_column(String(100), primary_key=True)
    unit_cost: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ErpRma(Base):
    """A return authorization against a sales order; unique on the caller's idempotency key.

    Status: authorized -> received (goods back) and/or credited (credit memo posted), or closed
    (never received: its quantities are returnable again). ``returned_before`` is the snapshot
    taken when it was authorized, so a replay answers exactly as the first call did.
    """

    __tablename__ = "erp_rmas"
    __table_args__ = (
        UniqueConstraint("rma_id", name="uq_erp_rmas_rma_id"),
        UniqueConstraint("idempotency_key", name="uq_erp_rmas_idempotency_key"),
        Index("ix_erp_rmas_erp_order_id", "erp_order_id"),
        Index("ix_erp_rmas_return_key", "return_key"),
        CheckConstraint(
            "status IN ('authorized', 'received', 'credited', 'closed')", name="ck_erp_rmas_status"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_id: Mapped[str | None] = mapped_column(String(20))  # RMA-000001, set after insert
    erp_order_id: Mapped[str] = mapped_column(String(20))
    return_key: Mapped[str] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    returned_before: Mapped[dict[str, int]] = mapped_column(JSON)
    receipt_key: Mapped[str | None] = mapped_column(String(255))
    restocked: Mapped[int] = mapped_column(Integer, default=0)
    written_off: Mapped[Decimal] = mapped_column(default=Decimal(0))
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    close_key: Mapped[str | None] = mapped_column(String(255))
    close_reason: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    lines: Mapped[list[ErpRmaLine]] = relationship(
        back_populates="rma", order_by="ErpRmaLine.position", cascade="all, delete-orphan"
    )
    credit_memo: Mapped[ErpCreditMemo | None] = relationship(back_populates="rma")
    entries: Mapped[list[ErpReturnGlEntry]] = relationship(
        order_by="ErpReturnGlEntry.id", cascade="all, delete-orphan"
    )


class ErpRmaLine(Base):
    """Units of one order line authorized for return, and what became of them on receipt."""

    __tablename__ = "erp_rma_lines"
    __table_args__ = (UniqueConstraint("rma_pk", "line_id", name="uq_erp_rma_lines_rma_line"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_pk: Mapped[int] = mapped_column(ForeignKey("erp_rmas.id", name="fk_erp_rma_lines_rma"), index=True)
    position: Mapped[int]
    line_id: Mapped[str] = mapped_column(String(100))
    sku: Mapped[str | None] = mapped_column(String(100))
    quantity: Mapped[int]
    restocked: Mapped[int] = mapped_column(default=0)
    damaged: Mapped[int] = mapped_column(default=0)

    rma: Mapped[ErpRma] = relationship(back_populates="lines")


class ErpCreditMemo(Base):
    """The credit memo of one RMA (at most one), unique on the caller's idempotency key."""

    __tablename__ = "erp_credit_memos"
    __table_args__ = (
        UniqueConstraint("credit_memo_id", name="uq_erp_credit_memos_credit_memo_id"),
        UniqueConstraint("idempotency_key", name="uq_erp_credit_memos_idempotency_key"),
        UniqueConstraint("rma_pk", name="uq_erp_credit_memos_rma"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    credit_memo_id: Mapped[str | None] = mapped_column(String(20))  # CM-000001, set after insert
    rma_pk: Mapped[int] = mapped_column(ForeignKey("erp_rmas.id", name="fk_erp_credit_memos_rma"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3))
    net: Mapped[Decimal]
    shipping: Mapped[Decimal]
    tax: Mapped[Decimal]
    total: Mapped[Decimal]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    rma: Mapped[ErpRma] = relationship(back_populates="credit_memo")


class ErpReturnGlEntry(Base):
    """One side of a return's posting: its credit memo (document CM-...) or the write-off of
    damaged units (document RMA-...); each document's debits equal its credits."""

    __tablename__ = "erp_return_gl_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_pk: Mapped[int] = mapped_column(
        ForeignKey("erp_rmas.id", name="fk_erp_return_gl_entries_rma"), index=True
    )
    document: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(16))  # credit_memo | write_off
    account: Mapped[str] = mapped_column(String(100))
    debit: Mapped[Decimal]
    credit: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- read helpers (CLIs, tests) -------------------------------------------------------------


@dataclass(frozen=True)
class StockLevel:
    sku: str
    location: str
    on_hand: int
    reserved: int
    available: int


@dataclass(frozen=True)
class AllocationView:
    location: str
    quantity: int
    shipped: int
    released: int
    open: int


@dataclass(frozen=True)
class SalesOrderLineView:
    line_id: str
    sku: str | None
    quantity: int
    stocked: bool
    backordered: int
    cancelled: int
    allocations: list[AllocationView] = field(default_factory=list)

    @property
    def allocated(self) -> int:
        return sum(a.quantity for a in self.allocations)

    @property
    def shipped(self) -> int:
        return sum(a.shipped for a in self.allocations)


@dataclass(frozen=True)
class SalesOrderView:
    erp_order_id: str
    channel: str
    external_id: str
    customer_id: str
    status: str
    currency: str
    taxes_included: bool
    cancel_reason: str | None
    lines: list[SalesOrderLineView]
    invoice_ids: list[str]


@dataclass(frozen=True)
class InvoiceView:
    invoice_id: str
    erp_order_id: str
    shipment_id: str
    location: str
    net: Money
    shipping: Money
    tax: Money
    total: Money
    created_at: datetime


@dataclass(frozen=True)
class GlEntryView:
    invoice_id: str
    erp_order_id: str
    account: str
    debit: Money
    credit: Money


@dataclass(frozen=True)
class CustomerView:
    customer_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    keys: list[tuple[str, str]]


def stock_levels(store: Store, sku: str | None = None, location: str | None = None) -> list[StockLevel]:
    """Stock per (sku, location), ordered by sku then location."""
    q = select(ErpStock).order_by(ErpStock.sku, ErpStock.location)
    if sku is not None:
        q = q.where(ErpStock.sku == sku)
    if location is not None:
        q = q.where(ErpStock.location == location)
    with store.session() as s:
        return [StockLevel(r.sku, r.location, r.on_hand, r.reserved, r.available) for r in s.scalars(q)]


def sales_order_view(so: ErpSalesOrder) -> SalesOrderView:
    """A view of a loaded order (call inside the session that loaded it)."""
    return SalesOrderView(
        erp_order_id=so.erp_order_id or "",
        channel=so.channel,
        external_id=so.external_id,
        customer_id=so.customer_id,
        status=so.status,
        currency=so.currency,
        taxes_included=so.taxes_included,
        cancel_reason=so.cancel_reason,
        lines=[
            SalesOrderLineView(
                line_id=ln.line_id,
                sku=ln.sku,
                quantity=ln.quantity,
                stocked=ln.stocked,
                backordered=ln.backordered,
                cancelled=ln.cancelled,
                allocations=[
                    AllocationView(a.location, a.quantity, a.shipped, a.released, a.open)
                    for a in ln.allocations
                ],
            )
            for ln in so.lines
        ],
        invoice_ids=[inv.invoice_id or "" for inv in so.invoices],
    )


def get_sales_order(store: Store, erp_order_id: str) -> SalesOrderView | None:
    with store.session() as s:
        so = s.scalar(select(ErpSalesOrder).where(ErpSalesOrder.erp_order_id == erp_order_id))
        return sales_order_view(so) if so is not None else None


def find_sales_order(store: Store, channel: str, external_id: str) -> SalesOrderView | None:
    with store.session() as s:
        so = s.scalar(
            select(ErpSalesOrder).where(
                ErpSalesOrder.channel == channel, ErpSalesOrder.external_id == external_id
            )
        )
        return sales_order_view(so) if so is not None else None


def list_invoices(store: Store, erp_order_id: str | None = None) -> list[InvoiceView]:
    q = select(ErpInvoice, ErpSalesOrder.erp_order_id).join(ErpSalesOrder).order_by(ErpInvoice.id)
    if erp_order_id is not None:
        q = q.where(ErpSalesOrder.erp_order_id == erp_order_id)
    with store.session() as s:
        out: list[InvoiceView] = []
        for inv, so_id in s.execute(q):
            cur = inv.currency
            out.append(
                InvoiceView(
                    invoice_id=inv.invoice_id or "",
                    erp_order_id=so_id or "",
                    shipment_id=inv.shipment_id,
                    location=inv.location,
                    net=Money.of(inv.net, cur),
                    shipping=Money.of(inv.shipping, cur),
                    tax=Money.of(inv.tax, cur),
                    total=Money.of(inv.total, cur),
                    created_at=inv.created_at,
                )
            )
        return out


def gl_entries(
    store: Store, erp_order_id: str | None = None, invoice_id: str | None = None
) -> list[GlEntryView]:
    """GL postings in posting order, optionally for one order or one invoice."""
    q = (
        select(ErpGlEntry, ErpInvoice.invoice_id, ErpSalesOrder.erp_order_id)
        .join(ErpInvoice, ErpGlEntry.invoice_pk == ErpInvoice.id)
        .join(ErpSalesOrder, ErpInvoice.order_pk == ErpSalesOrder.id)
        .order_by(ErpGlEntry.id)
    )
    if erp_order_id is not None:
        q = q.where(ErpSalesOrder.erp_order_id == erp_order_id)
    if invoice_id is not None:
        q = q.where(ErpInvoice.invoice_id == invoice_id)
    with store.session() as s:
        return [
            GlEntryView(
                invoice_id=inv_id or "",
                erp_order_id=so_id or "",
                account=e.account,
                debit=Money.of(e.debit, e.currency),
                credit=Money.of(e.credit, e.currency),
            )
            for e, inv_id, so_id in s.execute(q)
        ]


def list_customers(store: Store) -> list[CustomerView]:
    with store.session() as s:
        return [
            CustomerView(
                customer_id=c.customer_id or "",
                first_name=c.first_name,
                last_name=c.last_name,
                email=c.email,
                phone=c.phone,
                keys=sorted((k.kind, k.value) for k in c.keys),
            )
            for c in s.scalars(select(ErpCustomer).order_by(ErpCustomer.id))
        ]


# -- returns: read helpers -------------------------------------------------------------------


@dataclass(frozen=True)
class RmaLineView:
    line_id: str
    sku: str | None
    quantity: int
    restocked: int
    damaged: int


@dataclass(frozen=True)
class RmaView:
    rma_id: str
    erp_order_id: str
    return_key: str
    status: str
    lines: list[RmaLineView]
    returned_before: dict[str, int]
    restocked: int
    written_off: Money
    credit_memo_id: str | None
    credit_total: Money | None
    close_reason: str | None


@dataclass(frozen=True)
class ReturnGlEntryView:
    document: str
    kind: str
    rma_id: str
    erp_order_id: str
    account: str
    debit: Money
    credit: Money


def rma_view(r: ErpRma) -> RmaView:
    cm = r.credit_memo
    return RmaView(
        rma_id=r.rma_id or "",
        erp_order_id=r.erp_order_id,
        return_key=r.return_key,
        status=r.status,
        lines=[RmaLineView(ln.line_id, ln.sku, ln.quantity, ln.restocked, ln.damaged) for ln in r.lines],
        returned_before=dict(r.returned_before),
        restocked=r.restocked,
        written_off=Money.of(r.written_off, r.currency),
        credit_memo_id=cm.credit_memo_id if cm is not None else None,
        credit_total=Money.of(cm.total, cm.currency) if cm is not None else None,
        close_reason=r.close_reason,
    )


def list_rmas(store: Store, erp_order_id: str | None = None) -> list[RmaView]:
    q = select(ErpRma).order_by(ErpRma.id)
    if erp_order_id is not None:
        q = q.where(ErpRma.erp_order_id == erp_order_id)
    with store.session() as s:
        return [rma_view(r) for r in s.scalars(q)]


def get_rma(store: Store, rma_id: str) -> RmaView | None:
    with store.session() as s:
        r = s.scalar(select(ErpRma).where(ErpRma.rma_id == rma_id))
        return rma_view(r) if r is not None else None


def return_gl_entries(
    store: Store, erp_order_id: str | None = None, document: str | None = None
) -> list[ReturnGlEntryView]:
    """Return postings (credit memos, write-offs) in posting order; ``gl_entries`` has the invoices'."""
    q = select(ErpReturnGlEntry, ErpRma).join(ErpRma, ErpReturnGlEntry.rma_pk == ErpRma.id)
    if erp_order_id is not None:
        q = q.where(ErpRma.erp_order_id == erp_order_id)
    if document is not None:
        q = q.where(ErpReturnGlEntry.document == document)
    with store.session() as s:
        return [
            ReturnGlEntryView(
                document=e.document,
                kind=e.kind,
                rma_id=r.rma_id or "",
                erp_order_id=r.erp_order_id,
                account=e.account,
                debit=Money.of(e.debit, e.currency),
                credit=Money.of(e.credit, e.currency),
            )
            for e, r in s.execute(q.order_by(ErpReturnGlEntry.id))
        ]


def set_item_cost(store: Store, sku: str, unit_cost: Money) -> None:
    """Set the standard cost damaged returns of ``sku`` are written off at."""
    with store.session() as s:
        row = s.get(ErpItemCost, sku, with_for_update=True)
        if row is None:
            s.add(ErpItemCost(sku=sku, unit_cost=unit_cost.amount, currency=unit_cost.currency))
        else:
            row.unit_cost, row.currency = unit_cost.amount, unit_cost.currency
