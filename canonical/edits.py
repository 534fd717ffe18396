"""Order edits from the channel (Shopify ``orders/updated``, WooCommerce ``order.updated``).

An :class:`OrderEdit` is what the channel says the order is now: its ship-to address and each
line's quantity and price, stamped with the channel's ``updated_at``. The workflow compares it
with what it has applied (:func:`diff_edit`) and applies what it can before release:

* a changed shipping address;
* quantity reductions and removed lines (:func:`reduce_order`). The reduced lines keep their
  unit price; their discounts and tax are the cumulative pro-rata share of the original line's,
  rounded half-even per line (the rule invoices use), so totals stay exact. The platform-managed
  payment shrinks first, then the channel's (which the channel refunds itself).

Anything else (a new line, a quantity increase, a changed price or SKU, changed shipping, every
line removed) is reported as unsupported: a person decides.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator

from canonical.base import Canonical
from canonical.billing import _share
from canonical.money import Money
from canonical.order import DiscountAllocation, Order, OrderLine, OrderTotals, Payment, TaxLine
from canonical.party import Address


class EditedLine(Canonical):
    line_id: str
    sku: str | None = None
    quantity: int = Field(ge=0, description="0: the line was removed")
    unit_price: Money


class OrderEdit(Canonical):
    channel: str
    external_id: str
    updated_at: datetime = Field(description="the channel's updated_at: newer edits win, older are stale")
    shipping_address: Address | None = None
    lines: list[EditedLine]
    shipping_total: Money | None = Field(default=None, description="shipping before discounts, if known")

    @property
    def workflow_id(self) -> str:
        return f"order-{self.channel}-{self.external_id}"

    @field_validator("updated_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:  # naive and aware times cannot be compared: refuse at the door
            raise ValueError("updated_at needs a UTC offset")
        return v


class ChannelOrderUpdate(Canonical):
    """An update from a channel whose updates may also be the order's first delivery (WooCommerce
    starts orders on ``order.updated`` once paid): start the order, or edit the running one."""

    order: Order
    edit: OrderEdit


class EditDiff(Canonical):
    """What an edit changes against the order as applied."""

    address: Address | None = Field(default=None, description="the new ship-to, when it changed")
    quantities: dict[str, tuple[int, int]] = Field(
        default_factory=dict, description="line id -> (quantity now, quantity edited), reductions only"
    )
    unsupported: list[str] = []

    @property
    def empty(self) -> bool:
        return self.address is None and not self.quantities and not self.unsupported

    def describe(self) -> str:
        parts: list[str] = []
        if self.address is not None:
            a = self.address
            parts.append(
                f"ship-to -> {a.line1}, {a.city} {a.postal_code or ''} {a.country}".replace("  ", " ")
            )
        parts += [f"line {line} {old} -> {new}" for line, (old, new) in sorted(self.quantities.items())]
        parts += self.unsupported
        return "; ".join(parts)


def edit_from_order(order: Order, updated_at: datetime) -> OrderEdit:
    """The edit a channel's full order payload stands for (channels that send the new figures)."""
    return OrderEdit(
        channel=order.channel,
        external_id=order.external_id,
        updated_at=updated_at,
        shipping_address=order.shipping_address,
        lines=[
            EditedLine(line_id=ln.line_id, sku=ln.sku, quantity=ln.quantity, unit_price=ln.unit_price)
            for ln in order.lines
        ],
        shipping_total=Money.sum((s.price for s in order.shipping_lines), order.currency),
    )


def diff_edit(order: Order, ship_to: Address | None, edit: OrderEdit) -> EditDiff:
    address = edit.shipping_address if edit.shipping_address not in (None, ship_to) else None
    quantities: dict[str, tuple[int, int]] = {}
    unsupported: list[str] = []
    edited = {ln.line_id: ln for ln in edit.lines}
    for ln in order.lines:
        e = edited.get(ln.line_id)
        new = e.quantity if e is not None else 0  # a line the channel no longer lists was removed
        if e is not None and e.sku != ln.sku:
            unsupported.append(f"line {ln.line_id}: SKU {ln.sku} -> {e.sku}")
        elif e is not None and e.unit_price != ln.unit_price:
            unsupported.append(f"line {ln.line_id}: price {ln.unit_price} -> {e.unit_price}")
        elif new > ln.quantity:
            unsupported.append(f"line {ln.line_id}: quantity increased {ln.quantity} -> {new}")
        elif new < ln.quantity:
            quantities[ln.line_id] = (ln.quantity, new)
    known = {ln.line_id for ln in order.lines}
    for e in edit.lines:
        if e.line_id not in known and e.quantity > 0:
            unsupported.append(f"new line {e.line_id} ({e.quantity} x {e.sku or 'custom'})")
    if quantities and all(quantities.get(ln.line_id, (0, ln.quantity))[1] == 0 for ln in order.lines):
        unsupported.append("every line removed (cancel the order instead)")
        quantities = {}
    shipping = Money.sum((s.price for s in order.shipping_lines), order.currency)
    if edit.shipping_total is not None and edit.shipping_total != shipping:
        unsupported.append(f"shipping {shipping} -> {edit.shipping_total}")
    return EditDiff(address=address, quantities=quantities, unsupported=unsupported)


def _reduced_line(ln: OrderLine, qty: int) -> OrderLine:
    q = ln.quantity
    return ln.model_copy(
        update={
            "quantity": qty,
            "discount_allocations": [
                DiscountAllocation(amount=_share(d.amount, 0, qty, q), discount_index=d.discount_index)
                for d in ln.discount_allocations
            ],
            "tax_lines": [
                TaxLine(
                    title=t.title,
                    rate=t.rate,
                    amount=_share(t.amount, 0, qty, q),
                    jurisdiction=t.jurisdiction,
                )
                for t in ln.tax_lines
            ],
        }
    )


def _shrink_payments(payments: list[Payment], by: Money) -> list[Payment]:
    """Take ``by`` off the payments: platform-managed first (we release the authorization),
    then the channel's (the channel refunds its own), each from the last tender back."""
    left = by
    order = [p for p in payments if p.managed_by == "platform"] + [
        p for p in payments if p.managed_by == "channel"
    ]
    new_amounts = {id(p): p.amount for p in payments}
    for p in reversed(order):
        if left.is_zero:
            break
        take = p.amount if p.amount < left else left
        new_amounts[id(p)] = p.amount - take
        left = left - take
    return [
        p.model_copy(update={"amount": new_amounts[id(p)]})
        for p in payments
        if not new_amounts[id(p)].is_zero
    ]


def reduce_order(order: Order, quantities: dict[str, int], ship_to: Address | None) -> Order:
    """The order with the lines' new quantities (0 removes a line) and ship-to; exact totals."""
    cur = order.currency
    lines = [
        ln if ln.line_id not in quantities else _reduced_line(ln, quantities[ln.line_id])
        for ln in order.lines
        if quantities.get(ln.line_id, ln.quantity) > 0
    ]
    subtotal = Money.sum((ln.subtotal for ln in lines), cur)
    discounts = Money.sum((ln.discount for ln in lines), cur) + Money.sum(
        (s.discount for s in order.shipping_lines), cur
    )
    shipping = Money.sum((s.price for s in order.shipping_lines), cur)
    tax = Money.sum((ln.tax for ln in lines), cur) + Money.sum((s.tax for s in order.shipping_lines), cur)
    total = subtotal - discounts + shipping + (Money.zero(cur) if order.taxes_included else tax)
    payments = order.payments
    if payments and total != order.totals.total:
        payments = _shrink_payments(payments, order.totals.total - total)
    return Order.model_validate(
        {
            **order.model_dump(),
            "shipping_address": ship_to.model_dump() if ship_to is not None else None,
            "lines": [ln.model_dump() for ln in lines],
            "payments": [p.model_dump() for p in payments],
            "totals": OrderTotals(
                subtotal=subtotal,
                discount_total=discounts,
                shipping_total=shipping,
                tax_total=tax,
                total=total,
            ).model_dump(),
        }
    )
