"""Returns: the request, the warehouse's receipt, and the money a return gives back.

A return credits, for each returned line, its share of the line's net and tax for the units
returned, computed like invoices (``canonical.billing``): cumulative shares rounded per line, so
returning every unit over several returns credits exactly what was billed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, model_validator

from canonical.base import Canonical
from canonical.billing import InvoiceAmounts, InvoiceLine, line_share
from canonical.documents import Capture
from canonical.money import Money
from canonical.order import Order
from canonical.state import Attention, OperatorAction, StepRecord

ReturnStatus = Literal[
    "Requested",
    "Authorized",
    "AwaitingReceipt",
    "Received",
    "Refunding",
    "Refunded",
    "NeedsAttention",
    "Rejected",
    "Expired",
    "Cancelled",
]

# What becomes of a returned unit: back on the shelf, written off, or never sent back
# (a refund without a return, e.g. Shopify's restock_type "no_restock").
Disposition = Literal["restock", "damaged", "not_returned"]

# Where the goods come back: through our warehouse (wait for its receipt), already back at the
# channel's own location (e.g. a Shopify refund with restock_type "return"), or not at all.
Receipt = Literal["warehouse", "at_channel", "none"]

ShippingRefund = Literal["never", "when_fully_returned", "always"]
# "this_return": the source decided (e.g. a Shopify refund with refund_shipping_lines).
ShippingCredit = Literal["never", "when_fully_returned", "always", "this_return"]


class ReturnLine(Canonical):
    line_id: str = Field(description="the order line returned")
    sku: str | None = None
    quantity: int = Field(gt=0)
    reason: str | None = None
    restock: bool | None = Field(
        default=None, description="for goods already back at the channel: restocked or not (None: restocked)"
    )
    net: Money | None = Field(
        default=None, description="the source's own net for these units (a channel refund)"
    )
    tax: Money | None = Field(default=None, description="the source's own tax for these units")


class ChannelRefund(Canonical):
    """Money the channel already gave back (e.g. Shopify ``refunds/create`` transactions).

    Recorded and counted against the return, never refunded a second time."""

    refund_id: str
    amount: Money
    gateway: str | None = None
    processed_at: datetime | None = None


class ReturnRequest(Canonical):
    channel: str
    order_external_id: str = Field(description="the channel's order id (as in Order.external_id)")
    return_id: str = Field(
        min_length=1,
        max_length=120,
        description="the RMA or refund id at the source; with the channel it names the workflow",
    )
    source: Literal["channel", "api", "cli"]
    lines: list[ReturnLine] = Field(min_length=1)
    reason: str = Field(min_length=1)
    requested_at: datetime
    receipt: Receipt = "warehouse"
    location: str | None = Field(
        default=None, description="where the goods go back (default: where they left)"
    )
    channel_refunds: list[ChannelRefund] = []
    refund_shipping: bool | None = Field(
        default=None, description="the source decided whether shipping is refunded; None: the policy decides"
    )
    requested_by: str | None = None

    @model_validator(mode="after")
    def _distinct_lines(self) -> ReturnRequest:
        ids = [ln.line_id for ln in self.lines]
        if len(ids) != len(set(ids)):
            raise ValueError("each order line may appear once in a return (add the quantities)")
        return self

    @property
    def order_key(self) -> str:
        return f"{self.channel}-{self.order_external_id}"

    @property
    def key(self) -> str:
        return f"{self.channel}-{self.return_id}"

    @property
    def workflow_id(self) -> str:
        return return_workflow_id(self.channel, self.return_id)


def return_workflow_id(channel: str, return_id: str) -> str:
    return f"return-{channel}-{return_id}"


class ReceiptLine(Canonical):
    line_id: str
    sku: str
    quantity: int = Field(gt=0)
    condition: Literal["resellable", "damaged"] = "resellable"


class ReturnReceipt(Canonical):
    """What the warehouse found in the parcel (a WMS webhook); dedupe key ``receipt_id``."""

    receipt_id: str
    return_key: str = Field(description="ReturnRequest.key: <channel>-<return id>")
    location: str
    lines: list[ReceiptLine] = Field(min_length=1)
    received_at: datetime


class DispositionLine(Canonical):
    line_id: str
    sku: str | None
    quantity: int = Field(gt=0)
    disposition: Disposition
    location: str | None = None


class ReturnContext(Canonical):
    """What a return needs to know of its order (from the order workflow's query)."""

    order: Order
    status: str
    erp_order_id: str | None
    tax_document: str | None
    captures: list[Capture] = []
    shipped: dict[str, int] = Field(default={}, description="line id -> units shipped")
    ship_locations: dict[str, str] = Field(default={}, description="line id -> location it shipped from")
    delivered_at: datetime | None = Field(description="delivery (or last shipment) time; None: not shipped")


class CaptureBalance(Canonical):
    capture_id: str
    amount: Money
    refunded: Money

    @property
    def refundable(self) -> Money:
        return self.amount - self.refunded


class RefundRecord(Canonical):
    """One refund made for a return: to a capture, through the channel, or already at the channel."""

    kind: Literal["capture", "channel", "channel_managed", "manual"] = Field(
        description="to a capture, through the channel, made by the channel itself, or by hand (skip)"
    )
    reference: str
    amount: Money


def credit_for_return(
    order: Order,
    returned_before: dict[str, int],
    returned_now: dict[str, int],
    shipping: ShippingCredit,
    *,
    given: dict[str, ReturnLine] | None = None,
    shipped: dict[str, int] | None = None,
) -> InvoiceAmounts:
    """The credit memo's amounts for the units returned now (the refund is the same total).

    ``returned_before`` is what earlier returns of the order took; shipping is refunded with
    the first return ("always") or with the one that brings every shipped unit back
    ("when_fully_returned", against ``shipped`` when given), once. A line in ``given`` with its
    own net and tax (what a channel already refunded for it) is credited at those figures."""
    cur = order.currency
    lines: list[InvoiceLine] = []
    for line in order.lines:
        now = returned_now.get(line.line_id, 0)
        if now <= 0:
            continue
        before = returned_before.get(line.line_id, 0)
        if before + now > line.quantity:
            raise ValueError(f"line {line.line_id}: returning {before + now} of {line.quantity}")
        share = line_share(line, before, now)
        own = (given or {}).get(line.line_id)
        if own is not None and own.net is not None and own.tax is not None and own.net.currency == cur:
            share = share.model_copy(update={"net": own.net, "tax": own.tax})
        lines.append(share)
    unknown = set(returned_now) - {ln.line_id for ln in order.lines}
    if unknown:
        raise ValueError(f"not lines of order {order.key}: {', '.join(sorted(unknown))}")
    zero = Money.zero(cur)
    first = not any(q > 0 for q in returned_before.values())
    fulfillable = [ln for ln in order.lines if ln.fulfillable]
    target = {
        ln.line_id: shipped.get(ln.line_id, 0) if shipped is not None else ln.quantity for ln in fulfillable
    }
    complete = all(
        returned_before.get(ln.line_id, 0) + returned_now.get(ln.line_id, 0) >= target[ln.line_id]
        for ln in fulfillable
    )
    with_shipping = (
        shipping == "this_return"
        or (shipping == "always" and first)
        or (shipping == "when_fully_returned" and complete)
    )
    ship = Money.sum((s.price - s.discount for s in order.shipping_lines), cur) if with_shipping else zero
    ship_tax = Money.sum((s.tax for s in order.shipping_lines), cur) if with_shipping else zero
    tax = Money.sum((ln.tax for ln in lines), cur) + ship_tax
    net = Money.sum((ln.net for ln in lines), cur)
    total = net + ship + (zero if order.taxes_included else tax)
    return InvoiceAmounts(lines=lines, shipping=ship, shipping_tax=ship_tax, tax=tax, total=total)


def plan_refunds(due: Money, balances: list[CaptureBalance]) -> tuple[list[tuple[str, Money]], Money]:
    """Split a refund over the order's captures, latest first; the rest goes to the channel.

    Captures took the platform's share of the order after the channel's tenders (gift cards),
    so the platform's captures give back first and the channel's tenders last."""
    plan: list[tuple[str, Money]] = []
    left = due
    for bal in reversed(balances):
        if left.amount <= 0:
            break
        room = bal.refundable
        if room.amount <= 0:
            continue
        take = room if room < left else left
        plan.append((bal.capture_id, take))
        left = left - take
    return plan, left


class ReturnNotice(Canonical):
    """What the channel hears of a return it did not refund itself."""

    return_key: str
    status: Literal["refunded", "expired", "rejected", "cancelled"]
    lines: list[ReturnLine]
    refunded: Money
    restocked: bool = Field(description="whether the units went back into sellable stock")
    note: str | None = None


class ReturnState(Canonical):
    """A return as the platform sees it: what `retail returns show --json` prints."""

    return_key: str
    workflow_id: str
    order_key: str
    channel: str
    return_id: str
    source: str
    reason: str
    status: ReturnStatus
    lines: list[ReturnLine]
    rma_id: str | None = None
    return_tracking: str | None = Field(default=None, description="tracking number of the return label")
    inbound_id: str | None = None
    receipt_id: str | None = None
    dispositions: list[DispositionLine] = []
    credit_memo_id: str | None = None
    currency: str | None = Field(default=None, description="the order's currency, once the order is loaded")
    credited: Money | None = None
    tax_reversed: Money | None = None
    refunded: Money | None = None
    refunds: list[RefundRecord] = []
    rejection: str | None = None
    requested_at: datetime
    refunded_at: datetime | None = None
    cycle_time_s: float | None = Field(default=None, description="request to refund, seconds")
    attention: Attention | None = None
    actions: list[OperatorAction] = []
    steps: list[StepRecord] = []
    waiting_for: str | None = None


def check_return(req: ReturnRequest, ctx: ReturnContext, window_days: float) -> str | None:
    """Why the return cannot be accepted, or None. Checked when it is requested (the API answers
    422) and again by the workflow; the ERP then checks what earlier returns already took."""
    lines = {ln.line_id: ln for ln in ctx.order.lines}
    problems: list[str] = []
    for want in req.lines:
        line = lines.get(want.line_id)
        if line is None:
            problems.append(f"line {want.line_id} is not on order {ctx.order.key}")
            continue
        if want.sku is not None and line.sku is not None and want.sku != line.sku:
            problems.append(f"line {want.line_id} is {line.sku}, not {want.sku}")
        shipped = ctx.shipped.get(want.line_id, 0)
        if want.quantity > shipped:
            what = line.sku or line.title
            problems.append(f"line {want.line_id} ({what}): {want.quantity} to return, {shipped} shipped")
    if problems:
        return "; ".join(problems)
    if req.channel_refunds:
        return None  # the channel already paid it back: the books must follow, whatever the window
    if ctx.delivered_at is None:
        return "nothing of the order has shipped yet: cancel the order instead"
    deadline = ctx.delivered_at + timedelta(days=window_days)
    if req.requested_at > deadline:
        return (
            f"outside the {window_days:g}-day return window: delivered "
            f"{ctx.delivered_at:%Y-%m-%d}, requested {req.requested_at:%Y-%m-%d}"
        )
    return None


def lines_by_sku(order: Order, wanted: dict[str, int]) -> list[ReturnLine]:
    """Return lines for ``{sku or line id: quantity}``; ValueError naming what is not on the order."""
    lines: list[ReturnLine] = []
    for ref, qty in wanted.items():
        match = next((ln for ln in order.lines if ln.line_id == ref), None) or next(
            (ln for ln in order.lines if ln.sku == ref), None
        )
        if match is None:
            raise ValueError(f"{ref} is neither a SKU nor a line id of order {order.key}")
        lines.append(ReturnLine(line_id=match.line_id, sku=match.sku, quantity=qty))
    return lines
