"""The canonical order: what every channel maps into and every ERP maps out of.

Totals must add up; an order whose totals do not is refused with the figures that disagree.
All amounts are in the order's currency (the shop currency: what the books are kept in).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal, Self

from pydantic import Field, model_validator

from canonical.base import Canonical
from canonical.money import Money
from canonical.party import Address, Customer


class TaxLine(Canonical):
    title: str
    rate: Decimal = Field(description="e.g. 0.0725 for 7.25%")
    amount: Money
    jurisdiction: str | None = None


class DiscountAllocation(Canonical):
    amount: Money
    discount_index: int | None = Field(default=None, description="index into Order.discounts")


class OrderLine(Canonical):
    line_id: str = Field(description="the channel's line id, stable across edits")
    sku: str | None = Field(default=None, description="None for custom lines (no product)")
    title: str
    quantity: int = Field(gt=0)
    unit_price: Money
    discount_allocations: list[DiscountAllocation] = []
    tax_lines: list[TaxLine] = []
    requires_shipping: bool = True
    taxable: bool = True
    gift_card: bool = Field(default=False, description="a gift card sold: not stock, not shipped")

    @property
    def subtotal(self) -> Money:
        return self.unit_price.times(self.quantity)

    @property
    def discount(self) -> Money:
        return Money.sum((d.amount for d in self.discount_allocations), self.unit_price.currency)

    @property
    def tax(self) -> Money:
        return Money.sum((t.amount for t in self.tax_lines), self.unit_price.currency)

    @property
    def net(self) -> Money:
        """Subtotal after discounts, before (exclusive) tax."""
        return self.subtotal - self.discount

    @property
    def fulfillable(self) -> bool:
        return self.requires_shipping and not self.gift_card and self.sku is not None

    @property
    def digital(self) -> bool:
        """Nothing leaves a warehouse for it (gift cards, e-goods, services): it is delivered,
        and billed, when the order is accepted."""
        return not self.requires_shipping or self.gift_card


class ShippingLine(Canonical):
    code: str
    title: str
    price: Money
    discount_allocations: list[DiscountAllocation] = []
    tax_lines: list[TaxLine] = []

    @property
    def discount(self) -> Money:
        return Money.sum((d.amount for d in self.discount_allocations), self.price.currency)

    @property
    def tax(self) -> Money:
        return Money.sum((t.amount for t in self.tax_lines), self.price.currency)


DiscountKind = Literal["code", "manual", "automatic", "script"]
PaymentMethod = Literal["card", "gift_card", "wallet", "bank_transfer", "cash_on_delivery", "other"]


class OrderDiscount(Canonical):
    """An order-level discount application; its amounts are allocated to lines."""

    kind: DiscountKind
    code: str | None = None
    title: str | None = None
    value_type: Literal["fixed_amount", "percentage"]
    value: Decimal
    target: Literal["line_item", "shipping_line"] = "line_item"


PaymentManager = Literal["channel", "platform"]


class Payment(Canonical):
    """A tender on the order and who manages its money.

    ``channel``: already paid at the channel (e.g. Shopify Payments); the platform records it
    and asks the channel to refund on cancellation. ``platform``: the platform authorizes now
    and captures on shipment through its payment adapter.
    """

    managed_by: PaymentManager
    method: PaymentMethod = "card"
    gateway: str
    amount: Money
    reference: str | None = Field(default=None, description="token, transaction or gift card id")


class OrderTotals(Canonical):
    subtotal: Money = Field(description="sum of line unit price x quantity")
    discount_total: Money = Field(description="line and shipping discounts")
    shipping_total: Money = Field(description="shipping before discounts")
    tax_total: Money
    total: Money


class Order(Canonical):
    channel: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    external_id: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, description="what people call it, e.g. #1001")
    placed_at: datetime
    currency: str
    presentment_currency: str | None = None
    taxes_included: bool = False
    customer: Customer
    billing_address: Address | None = None
    shipping_address: Address | None = None
    lines: list[OrderLine] = Field(min_length=1)
    shipping_lines: list[ShippingLine] = []
    discounts: list[OrderDiscount] = []
    payments: list[Payment] = []
    totals: OrderTotals
    note: str | None = None
    tags: list[str] = []

    @property
    def key(self) -> str:
        return f"{self.channel}-{self.external_id}"

    @property
    def workflow_id(self) -> str:
        return f"order-{self.key}"

    @model_validator(mode="after")
    def _totals_add_up(self) -> Self:
        cur = self.currency
        errors: list[str] = []

        def money_in_currency(path: str, m: Money) -> None:
            if m.currency != cur:
                errors.append(f"{path}: {m.currency} but the order is in {cur}")

        for i, line in enumerate(self.lines):
            money_in_currency(f"lines[{i}].unit_price", line.unit_price)
            for j, d in enumerate(line.discount_allocations):
                money_in_currency(f"lines[{i}].discount_allocations[{j}]", d.amount)
                if d.discount_index is not None and not 0 <= d.discount_index < len(self.discounts):
                    errors.append(f"lines[{i}].discount_allocations[{j}].discount_index: no such discount")
            for j, t in enumerate(line.tax_lines):
                money_in_currency(f"lines[{i}].tax_lines[{j}]", t.amount)
        for i, s in enumerate(self.shipping_lines):
            money_in_currency(f"shipping_lines[{i}].price", s.price)
            for j, d in enumerate(s.discount_allocations):
                money_in_currency(f"shipping_lines[{i}].discount_allocations[{j}]", d.amount)
            for j, t in enumerate(s.tax_lines):
                money_in_currency(f"shipping_lines[{i}].tax_lines[{j}]", t.amount)
        for i, p in enumerate(self.payments):
            money_in_currency(f"payments[{i}].amount", p.amount)
        for name in ("subtotal", "discount_total", "shipping_total", "tax_total", "total"):
            money_in_currency(f"totals.{name}", getattr(self.totals, name))
        if errors:
            raise ValueError("; ".join(errors))

        for i, line in enumerate(self.lines):
            if line.discount > line.subtotal:
                errors.append(f"lines[{i}]: discount {line.discount} exceeds line subtotal {line.subtotal}")
        subtotal = Money.sum((ln.subtotal for ln in self.lines), cur)
        discounts = Money.sum((ln.discount for ln in self.lines), cur) + Money.sum(
            (s.discount for s in self.shipping_lines), cur
        )
        shipping = Money.sum((s.price for s in self.shipping_lines), cur)
        tax = Money.sum((ln.tax for ln in self.lines), cur) + Money.sum(
            (s.tax for s in self.shipping_lines), cur
        )
        total = subtotal - discounts + shipping + (Money.zero(cur) if self.taxes_included else tax)
        for name, computed in (
            ("subtotal", subtotal),
            ("discount_total", discounts),
            ("shipping_total", shipping),
            ("tax_total", tax),
            ("total", total),
        ):
            stated: Money = getattr(self.totals, name)
            if stated != computed:
                errors.append(f"totals.{name} is {stated} but the lines add up to {computed}")
        if self.payments:
            paid = Money.sum((p.amount for p in self.payments), cur)
            if paid != self.totals.total:
                errors.append(f"payments add up to {paid} but the order total is {self.totals.total}")
        if errors:
            raise ValueError("order totals do not add up: " + "; ".join(errors))
        return self

    @property
    def platform_payment(self) -> Money:
        return Money.sum((p.amount for p in self.payments if p.managed_by == "platform"), self.currency)

    @property
    def channel_payment(self) -> Money:
        return Money.sum((p.amount for p in self.payments if p.managed_by == "channel"), self.currency)

    def line(self, line_id: str) -> OrderLine:
        for ln in self.lines:
            if ln.line_id == line_id:
                return ln
        raise KeyError(line_id)
