"""Settlement facts: what the payment provider moved and what the ERP billed, per order and
shipment, for one window.

The builtin payment provider knows an order only through the idempotency keys the order's
workflow used (``order-<channel>-<id>:capture:<shipment>``, ``...:authorize``), exactly as a
real provider knows it through the metadata or the key the platform sent; the ERP knows the
order and the shipment of each invoice. Facts are read in a few queries per page of orders
(index range scans on the keys, ``IN`` lists on the ERP's unique order key), never one query
per record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, or_, select, tuple_

from backoffice.erp import ErpInvoice, ErpSalesOrder
from backoffice.payment import PaymentIdempotencyKey
from store.db import Store

# Keys of the order workflow's payment steps; ':rN' marks an operator's retry of the step.
_STEP = re.compile(r"^(?P<wf>order-.+?):(?P<step>capture|refund|authorize)(?::(?P<sid>.+?))?(?::r\d+)?$")
PAGE = 400


@dataclass(frozen=True)
class OrderRef:
    channel: str
    external_id: str

    @property
    def workflow_id(self) -> str:
        return f"order-{self.channel}-{self.external_id}"


@dataclass(frozen=True)
class Movement:
    """A capture or refund the payment provider reports, tied to an order step."""

    kind: str  # capture | refund
    record_id: str
    workflow_id: str
    shipment_id: str | None
    amount: Decimal
    currency: str
    at: datetime


@dataclass(frozen=True)
class InvoiceFact:
    invoice_id: str
    shipment_id: str
    total: Decimal
    currency: str
    at: datetime


@dataclass
class OrderSettlement:
    """Everything known about one order's money, on both sides."""

    order: OrderRef
    erp_order_id: str
    invoices: list[InvoiceFact] = field(default_factory=list)
    captures: list[Movement] = field(default_factory=list)
    refunds: list[Movement] = field(default_factory=list)
    authorized: Decimal | None = None  # None: nothing authorized through the platform


def parse_step(key: str) -> tuple[str, str, str | None] | None:
    """(workflow id, step, shipment id) of an order step's idempotency key."""
    m = _STEP.match(key)
    return (m["wf"], m["step"], m["sid"]) if m else None


def _movement(row: PaymentIdempotencyKey) -> Movement | None:
    step = parse_step(row.idempotency_key)
    if step is None or row.response is None or step[1] not in ("capture", "refund"):
        return None
    body = json.loads(row.response)
    money = body.get("amount") or {}
    record_id = body.get("capture_id") if step[1] == "capture" else body.get("refund_id")
    return Movement(
        kind=step[1],
        record_id=str(record_id),
        workflow_id=step[0],
        shipment_id=step[2],
        amount=Decimal(str(money.get("amount", "0"))),
        currency=str(money.get("currency", "")),
        at=row.created_at,
    )


def _known_channels(store: Store) -> list[str]:
    with store.reading() as s:
        return sorted(s.scalars(select(ErpSalesOrder.channel).distinct()), key=len, reverse=True)


def split_workflow_id(workflow_id: str, channels: Sequence[str]) -> OrderRef | None:
    """``order-<channel>-<id>`` to its parts: a channel the ERP has orders of when one fits (a
    channel name may hold a dash), else the first dash ends the channel."""
    for ch in channels:
        prefix = f"order-{ch}-"
        if workflow_id.startswith(prefix) and len(workflow_id) > len(prefix):
            return OrderRef(ch, workflow_id[len(prefix) :])
    ch, dash, ext = workflow_id.removeprefix("order-").partition("-")
    return OrderRef(ch, ext) if workflow_id.startswith("order-") and dash and ch and ext else None


def orders_in_window(store: Store, since: datetime, until: datetime) -> list[OrderRef]:
    """Orders with an invoice, a capture or a refund in the window."""
    channels = _known_channels(store)
    refs: set[OrderRef] = set()
    k = PaymentIdempotencyKey
    with store.reading() as s:
        q = select(k.idempotency_key).where(
            k.operation.in_(("capture", "refund")),
            k.created_at >= since,
            k.created_at < until,
            k.idempotency_key.like("order-%"),
        )
        for key in s.scalars(q):
            step = parse_step(key)
            ref = split_workflow_id(step[0], channels) if step else None
            if ref is not None:
                refs.add(ref)
        q2 = (
            select(ErpSalesOrder.channel, ErpSalesOrder.external_id)
            .join(ErpInvoice, ErpInvoice.order_pk == ErpSalesOrder.id)
            .where(ErpInvoice.created_at >= since, ErpInvoice.created_at < until)
            .distinct()
        )
        refs.update(OrderRef(ch, ext) for ch, ext in s.execute(q2))
    return sorted(refs, key=lambda r: (r.channel, r.external_id))


def settlements(store: Store, orders: Iterable[OrderRef]) -> list[OrderSettlement]:
    """Both sides of each order's money (every invoice, capture, refund and the authorization)."""
    wanted = list(orders)
    out: list[OrderSettlement] = []
    for n in range(0, len(wanted), PAGE):
        out.extend(_page(store, wanted[n : n + PAGE]))
    return out


def _page(store: Store, refs: list[OrderRef]) -> list[OrderSettlement]:
    so, inv, k = ErpSalesOrder, ErpInvoice, PaymentIdempotencyKey
    by_wf = {r.workflow_id: OrderSettlement(r, "") for r in refs}
    with store.reading() as s:
        q = (
            select(so.channel, so.external_id, so.erp_order_id, inv)
            .outerjoin(inv, inv.order_pk == so.id)
            .where(tuple_(so.channel, so.external_id).in_([(r.channel, r.external_id) for r in refs]))
        )
        for ch, ext, erp_id, invoice in s.execute(q):
            st = by_wf[OrderRef(ch, ext).workflow_id]
            st.erp_order_id = erp_id or ""
            if invoice is not None:
                st.invoices.append(
                    InvoiceFact(
                        invoice.invoice_id or "",
                        invoice.shipment_id,
                        Decimal(str(invoice.total)),
                        invoice.currency,
                        invoice.created_at,
                    )
                )
        # Every key of an order's steps sorts between "<wf>:" and "<wf>;" (';' follows ':').
        ranges = [and_(k.idempotency_key >= f"{wf}:", k.idempotency_key < f"{wf};") for wf in by_wf]
        q2 = select(k).where(or_(*ranges), k.response.is_not(None))
        for row in s.scalars(q2):
            step = parse_step(row.idempotency_key)
            if step is None or step[0] not in by_wf:
                continue
            st = by_wf[step[0]]
            if step[1] == "authorize":
                body = json.loads(row.response or "{}")
                amount = Decimal(str((body.get("amount") or {}).get("amount", "0")))
                st.authorized = (st.authorized or Decimal(0)) + amount
                continue
            m = _movement(row)
            if m is not None:
                (st.captures if m.kind == "capture" else st.refunds).append(m)
    return list(by_wf.values())


# -- the rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettlementDifference:
    kind: str  # capture_without_invoice | invoice_without_payment | settlement_amount_mismatch
    order: OrderRef
    shipment_id: str | None
    reference: str  # the capture or invoice at issue
    expected: Decimal | None
    actual: Decimal | None
    currency: str
    detail: str


def compare(st: OrderSettlement, since: datetime, until: datetime) -> list[SettlementDifference]:
    """Differences in one order's money whose record falls in the window.

    * a capture whose shipment has no ERP invoice: money taken for nothing billed;
    * a capture larger than its shipment's invoice: more taken than billed;
    * an invoice of an order paid through the platform (it has an authorization covering what
      is billed so far) with no capture for its shipment: billed, never collected.

    Orders paid at the channel have no authorization and are left to the channel's payouts.
    Credit memos against refunds come with returns: refunds are collected but not compared yet.
    """
    out: list[SettlementDifference] = []
    invoices = {i.shipment_id: i for i in st.invoices}
    captured: dict[str | None, Decimal] = {}
    for c in st.captures:
        captured[c.shipment_id] = captured.get(c.shipment_id, Decimal(0)) + c.amount
    invoiced_total = sum((i.total for i in st.invoices), Decimal(0))

    def in_window(at: datetime) -> bool:
        at = at if at.tzinfo is not None else at.replace(tzinfo=since.tzinfo)
        return since <= at < until

    for c in st.captures:
        if not in_window(c.at):
            continue
        inv = invoices.get(c.shipment_id or "")
        if inv is None:
            out.append(
                SettlementDifference(
                    "capture_without_invoice",
                    st.order,
                    c.shipment_id,
                    c.record_id,
                    None,
                    c.amount,
                    c.currency,
                    f"capture {c.record_id} of {c.amount} {c.currency} for shipment {c.shipment_id}:"
                    f" the ERP has no invoice for it (order {st.erp_order_id or 'unknown to the ERP'})",
                )
            )
        elif captured[c.shipment_id] > inv.total:
            out.append(
                SettlementDifference(
                    "settlement_amount_mismatch",
                    st.order,
                    c.shipment_id,
                    inv.invoice_id,
                    inv.total,
                    captured[c.shipment_id],
                    c.currency,
                    f"captured {captured[c.shipment_id]} {c.currency} for shipment {c.shipment_id},"
                    f" invoice {inv.invoice_id} bills {inv.total}",
                )
            )
    if st.authorized is not None and st.authorized >= invoiced_total:
        for inv in st.invoices:
            if in_window(inv.at) and inv.total > 0 and inv.shipment_id not in captured:
                out.append(
                    SettlementDifference(
                        "invoice_without_payment",
                        st.order,
                        inv.shipment_id,
                        inv.invoice_id,
                        inv.total,
                        Decimal(0),
                        inv.currency,
                        f"invoice {inv.invoice_id} bills {inv.total} {inv.currency} for shipment"
                        f" {inv.shipment_id}; nothing was captured for it",
                    )
                )
    return out
