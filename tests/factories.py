"""Canonical orders for tests, built so their totals add up."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from canonical import (
    Address,
    Customer,
    DiscountAllocation,
    Money,
    Order,
    OrderLine,
    OrderTotals,
    Payment,
    ShippingLine,
    TaxLine,
)


def make_order(
    external_id: str = "1001",
    *,
    channel: str = "shopify",
    currency: str = "USD",
    lines: list[tuple[str, int, str]] | None = None,
    shipping: str = "5.00",
    tax_rate: str = "0.0725",
    discount: str | None = None,
    managed_by: str = "platform",
    reference: str | None = "tok_visa",
    email: str = "ada@example.com",
) -> Order:
    """``lines`` are (sku, quantity, unit price); tax is computed per line at ``tax_rate``."""
    specs = lines or [("SKU-1", 1, "20.00")]
    rate = Decimal(tax_rate)
    order_lines: list[OrderLine] = []
    for i, (sku, qty, price) in enumerate(specs):
        unit = Money.of(price, currency)
        allocs: list[DiscountAllocation] = []
        if discount and i == 0:
            allocs = [DiscountAllocation(amount=Money.of(discount, currency), discount_index=None)]
        net = unit.times(qty) - Money.sum((a.amount for a in allocs), currency)
        tax = Money.round(net.amount * rate, currency)
        order_lines.append(
            OrderLine(
                line_id=f"L{i + 1}",
                sku=sku,
                title=f"Product {sku}",
                quantity=qty,
                unit_price=unit,
                discount_allocations=allocs,
                tax_lines=[TaxLine(title="Sales tax", rate=rate, amount=tax)] if rate else [],
            )
        )
    ship = [ShippingLine(code="std", title="Standard", price=Money.of(shipping, currency))]
    subtotal = Money.sum((ln.subtotal for ln in order_lines), currency)
    disc = Money.sum((ln.discount for ln in order_lines), currency)
    tax_total = Money.sum((ln.tax for ln in order_lines), currency)
    ship_total = Money.sum((s.price for s in ship), currency)
    total = subtotal - disc + ship_total + tax_total
    return Order(
        channel=channel,
        external_id=external_id,
        name=f"#{external_id}",
        placed_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        currency=currency,
        customer=Customer(external_id="c1", email=email, first_name="Ada", last_name="Lovelace"),
        shipping_address=Address(
            name="Ada Lovelace",
            line1="1 Main St",
            city="San Francisco",
            region="CA",
            postal_code="94105",
            country="US",
        ),
        lines=order_lines,
        shipping_lines=ship,
        payments=[Payment(managed_by=managed_by, gateway="builtin", amount=total, reference=reference)],  # type: ignore[arg-type]
        totals=OrderTotals(
            subtotal=subtotal,
            discount_total=disc,
            shipping_total=ship_total,
            tax_total=tax_total,
            total=total,
        ),
    )
