"""Shopify `orders/create` payloads shaped as the contract documents them (money as strings,
MoneyBags, float tax rates), with totals that add up."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any


def _bag(amount: Decimal, currency: str) -> dict[str, Any]:
    m = {"amount": str(amount), "currency_code": currency}
    return {"shop_money": m, "presentment_money": dict(m)}


def shopify_order(
    order_id: int,
    lines: list[tuple[str, int, str]],
    *,
    currency: str = "USD",
    tax_rate: str = "0.0725",
    shipping: str = "5.00",
    financial_status: str = "authorized",
    email: str = "ada@example.com",
    province: str = "CA",
) -> dict[str, Any]:
    q = Decimal(1) if currency in ("JPY",) else Decimal("0.001") if currency in ("KWD",) else Decimal("0.01")
    rate = Decimal(tax_rate)
    items = []
    subtotal = Decimal(0)
    tax_total = Decimal(0)
    for i, (sku, qty, price) in enumerate(lines):
        p = Decimal(price)
        line_total = p * qty
        tax = (line_total * rate).quantize(q, rounding=ROUND_HALF_EVEN)
        subtotal += line_total
        tax_total += tax
        items.append(
            {
                "id": order_id * 10 + i,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{order_id * 10 + i}",
                "product_id": 1000 + i,
                "variant_id": 2000 + i,
                "sku": sku,
                "title": f"Product {sku}",
                "variant_title": "",
                "name": f"Product {sku}",
                "vendor": None,
                "quantity": qty,
                "current_quantity": qty,
                "fulfillable_quantity": qty,
                "fulfillment_status": None,
                "fulfillment_service": "manual",
                "requires_shipping": True,
                "taxable": True,
                "gift_card": False,
                "grams": 500,
                "price": str(p),
                "price_set": _bag(p, currency),
                "total_discount": "0.00",
                "total_discount_set": _bag(Decimal(0).quantize(q), currency),
                "properties": [],
                "tax_lines": [
                    {
                        "title": "State Tax",
                        "price": str(tax),
                        "rate": float(rate),
                        "price_set": _bag(tax, currency),
                        "channel_liable": False,
                    }
                ]
                if rate
                else [],
                "discount_allocations": [],
                "duties": [],
            }
        )
    ship = Decimal(shipping)
    total = subtotal + ship + tax_total
    address = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "name": "Ada Lovelace",
        "company": None,
        "address1": "1 Main St",
        "address2": "",
        "city": "San Francisco",
        "province": "California",
        "province_code": province,
        "country": "United States",
        "country_code": "US",
        "zip": "94105",
        "phone": "+1 415 555 0100",
        "latitude": 0.0,
        "longitude": 0.0,
    }
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{order_id}",
        "order_number": order_id,
        "number": order_id - 1000,
        "email": email,
        "phone": None,
        "created_at": "2026-11-20T10:00:00-05:00",
        "updated_at": "2026-11-20T10:00:00-05:00",
        "processed_at": "2026-11-20T10:00:00-05:00",
        "cancelled_at": None,
        "cancel_reason": None,
        "closed_at": None,
        "test": False,
        "confirmed": True,
        "source_name": "web",
        "currency": currency,
        "presentment_currency": currency,
        "taxes_included": False,
        "tax_exempt": False,
        "financial_status": financial_status,
        "fulfillment_status": None,
        "tags": "",
        "note": None,
        "note_attributes": [],
        "subtotal_price": str(subtotal),
        "subtotal_price_set": _bag(subtotal, currency),
        "total_line_items_price": str(subtotal),
        "total_line_items_price_set": _bag(subtotal, currency),
        "total_discounts": str(Decimal(0).quantize(q)),
        "total_discounts_set": _bag(Decimal(0).quantize(q), currency),
        "total_tax": str(tax_total),
        "total_tax_set": _bag(tax_total, currency),
        "total_price": str(total),
        "total_price_set": _bag(total, currency),
        "total_outstanding": str(total),
        "total_shipping_price_set": _bag(ship, currency),
        "current_subtotal_price": str(subtotal),
        "current_total_discounts": "0.00",
        "current_total_tax": str(tax_total),
        "current_total_price": str(total),
        "discount_codes": [],
        "discount_applications": [],
        "tax_lines": [
            {
                "title": "State Tax",
                "price": str(tax_total),
                "rate": float(rate),
                "price_set": _bag(tax_total, currency),
                "channel_liable": False,
            }
        ]
        if rate
        else [],
        "customer": {
            "id": 555,
            "email": email,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "phone": None,
            "tax_exempt": False,
            "currency": currency,
            "default_address": {
                "id": 1,
                "address1": "1 Main St",
                "city": "San Francisco",
                "province_code": province,
                "country_code": "US",
                "zip": "94105",
            },
        },
        "billing_address": address,
        "shipping_address": dict(address),
        "line_items": items,
        "shipping_lines": [
            {
                "id": order_id * 100,
                "title": "Standard",
                "code": "STANDARD",
                "source": "shopify",
                "price": str(ship),
                "price_set": _bag(ship, currency),
                "discounted_price": str(ship),
                "discounted_price_set": _bag(ship, currency),
                "carrier_identifier": None,
                "is_removed": False,
                "tax_lines": [],
                "discount_allocations": [],
            }
        ],
        "fulfillments": [],
        "refunds": [],
        "payment_gateway_names": ["bogus"],
        "location_id": None,
    }
