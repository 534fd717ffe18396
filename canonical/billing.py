"""What each shipment bills: the order's money split by what shipped, exactly.

Each line bills its quantity shipped pro rata, rounded per line; the shipment that ships a
line's last unit bills that line's remainder, so when everything has shipped the invoices and
captures add up to the order total to the minor unit.

Digital lines (gift cards, e-goods, services) are delivered when the order is accepted and bill
then, in an invoice of their own (``invoice_for_digital``). Shipping, and custom lines without a
SKU that need shipping, bill with the first shipment from a warehouse; a digital-only order
bills its shipping (if any) with its digital lines.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from canonical.base import Canonical
from canonical.money import Money
from canonical.order import Order, OrderLine


class InvoiceLine(Canonical):
    line_id: str
    sku: str | None
    quantity: int
    net: Money = Field(description="after discounts; tax-inclusive when the order is")
    tax: Money


class InvoiceAmounts(Canonical):
    lines: list[InvoiceLine]
    shipping: Money = Field(description="shipping after its discounts, before its tax")
    shipping_tax: Money
    tax: Money = Field(description="all tax in this invoice (informational when taxes_included)")
    total: Money = Field(description="what this shipment bills and captures")


def _share(full: Money, qty_before: int, qty_now: int, qty_total: int) -> Money:
    """Line amount for units (qty_before, qty_before + qty_now]: difference of cumulative shares."""
    cur = full.currency

    def cumulative(q: int) -> Money:
        if q >= qty_total:
            return full
        return Money.round(full.amount * Decimal(q) / Decimal(qty_total), cur)

    return cumulative(qty_before + qty_now) - cumulative(qty_before)


def line_share(line: OrderLine, before: int, now: int) -> InvoiceLine:
    """Net and tax of units (before, before + now] of a line, as cumulative shares."""
    return InvoiceLine(
        line_id=line.line_id,
        sku=line.sku,
        quantity=now,
        net=_share(line.net, before, now, line.quantity),
        tax=_share(line.tax, before, now, line.quantity),
    )


def invoice_for_shipment(
    order: Order, shipped_before: dict[str, int], shipped_now: dict[str, int], first: bool
) -> InvoiceAmounts:
    lines: list[InvoiceLine] = []
    for line in order.lines:
        before = shipped_before.get(line.line_id, 0)
        now = shipped_now.get(line.line_id, 0)
        if not line.fulfillable:
            if first and before == 0:  # not billed already as a digital delivery
                lines.append(line_share(line, 0, line.quantity))
            continue
        if now <= 0:
            continue
        if before + now > line.quantity:
            raise ValueError(f"line {line.line_id}: shipping {before + now} of {line.quantity}")
        lines.append(line_share(line, before, now))
    return _amounts(order, lines, with_shipping=first)


def invoice_for_digital(order: Order, line_ids: list[str]) -> InvoiceAmounts:
    """The invoice of an order's digital delivery: each of ``line_ids`` whole, and the shipping
    too when nothing of the order ships from a warehouse."""
    wanted = set(line_ids)
    lines = [line_share(ln, 0, ln.quantity) for ln in order.lines if ln.line_id in wanted]
    return _amounts(order, lines, with_shipping=not any(ln.fulfillable for ln in order.lines))


def _amounts(order: Order, lines: list[InvoiceLine], *, with_shipping: bool) -> InvoiceAmounts:
    cur = order.currency
    zero = Money.zero(cur)
    shipping = Money.sum((s.price - s.discount for s in order.shipping_lines), cur) if with_shipping else zero
    shipping_tax = Money.sum((s.tax for s in order.shipping_lines), cur) if with_shipping else zero
    tax = Money.sum((ln.tax for ln in lines), cur) + shipping_tax
    net = Money.sum((ln.net for ln in lines), cur)
    total = net + shipping + (zero if order.taxes_included else tax)
    return InvoiceAmounts(lines=lines, shipping=shipping, shipping_tax=shipping_tax, tax=tax, total=total)
