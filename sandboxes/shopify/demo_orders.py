"""Realistic Shopify ``orders/create`` payloads for the demo, the simulators and the tests.

The payloads are shaped exactly like the contract's Order skeleton (integer ids, money as
decimal strings with ``*_set`` MoneyBags, tax rates as JSON floats) so the same webhook path
handles a demo order and a real one. They are deterministic for a given seed and always add
up, so every one maps with :func:`order_from_shopify` to a valid canonical Order.

What the demo exercises: US addresses in CA, NY and WA with tax per line at 7.25%, 8.875% and
6.5% (rounded half-even to cents; NY and WA also tax shipping), discount codes allocated to
lines, free and paid shipping, mostly ``authorized`` orders (the platform captures on
shipment) and some ``paid`` (channel-managed), guests, and repeat buyers whose email and
phone are written differently each time (customer matching must normalise them). The stock
from :func:`demo_stock` is short at one location for a few SKUs, so some orders need a split
across ``WH-EAST`` and ``WH-WEST``.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from canonical.money import Money, allocate

CURRENCY = "USD"
SHOP_TZ = timezone(timedelta(hours=-5))  # the demo shop's time zone (New York, winter)
LOCATIONS = ("WH-EAST", "WH-WEST")

# sku, title, variant, price, grams
_CATALOG: tuple[tuple[str, str, str | None, str, int], ...] = (
    ("TSHIRT-BLK-M", "Classic T-Shirt", "Black / M", "25.00", 200),
    ("TSHIRT-WHT-L", "Classic T-Shirt", "White / L", "25.00", 210),
    ("HOODIE-GRY-M", "Heavyweight Hoodie", "Grey / M", "59.00", 650),
    ("JACKET-RAIN-M", "Rain Jacket", "M", "120.00", 900),
    ("SOCKS-3PK", "Wool Socks", "3-pack", "12.00", 150),
    ("BEANIE-NVY", "Knit Beanie", "Navy", "19.50", 120),
    ("MUG-WHT", "Enamel Mug", "White", "15.00", 350),
    ("BOTTLE-STEEL", "Insulated Bottle", "750 ml", "29.95", 400),
    ("LAMP-DESK", "LED Desk Lamp", None, "64.99", 1200),
    ("HEADPHONES-BT", "Wireless Headphones", "Black", "99.00", 300),
    ("CABLE-USBC", "USB-C Cable", "1 m", "12.50", 60),
    ("NOTEBOOK-A5", "Dotted Notebook", "A5", "8.75", 250),
)

# on hand at (WH-EAST, WH-WEST); the short ones force split shipments or backorders.
_STOCK: dict[str, tuple[int, int]] = {
    "MUG-WHT": (2, 30),
    "LAMP-DESK": (4, 8),
    "HEADPHONES-BT": (0, 12),
    "JACKET-RAIN-M": (6, 8),
    "BEANIE-NVY": (6, 5),
}
_DEFAULT_STOCK = (40, 25)


@dataclass(frozen=True)
class _State:
    code: str
    name: str
    rate: Decimal
    tax_title: str
    taxes_shipping: bool
    area_code: str
    addresses: tuple[tuple[str, str, str], ...]  # address1, city, zip


_STATES: tuple[_State, ...] = (
    _State(
        code="CA", name="California", rate=Decimal("0.0725"), tax_title="CA State Tax", taxes_shipping=False,
        area_code="415",
        addresses=(
            ("1 Market St", "San Francisco", "94105"),
            ("2000 Broadway", "Oakland", "94612"),
            ("350 S Grand Ave", "Los Angeles", "90071"),
        ),
    ),
    _State(
        code="NY", name="New York", rate=Decimal("0.08875"), tax_title="NY State Tax", taxes_shipping=True,
        area_code="212",
        addresses=(
            ("350 5th Ave", "New York", "10118"),
            ("200 Park Ave", "New York", "10166"),
            ("1 Pierrepont Plaza", "Brooklyn", "11201"),
        ),
    ),
    _State(
        code="WA", name="Washington", rate=Decimal("0.065"), tax_title="WA State Tax", taxes_shipping=True,
        area_code="206",
        addresses=(
            ("400 Broad St", "Seattle", "98109"),
            ("1301 2nd Ave", "Seattle", "98101"),
            ("500 Bellevue Way NE", "Bellevue", "98004"),
        ),
    ),
)  # fmt: skip

_FIRST = (
    "Ada", "Alan", "Grace", "Katherine", "Linus", "Margaret", "Dennis", "Barbara",
    "Edsger", "Frances", "Ken", "Radia", "Tim", "Hedy", "John", "Sophie",
)  # fmt: skip
_LAST = (
    "Lovelace", "Turing", "Hopper", "Johnson", "Torvalds", "Hamilton", "Ritchie", "Liskov",
    "Dijkstra", "Allen", "Thompson", "Perlman", "Berners-Lee", "Lamarr", "McCarthy", "Wilson",
)  # fmt: skip

# code, value_type, value (percent or USD)
_CODES: tuple[tuple[str, str, Decimal], ...] = (
    ("WELCOME10", "percentage", Decimal("10")),
    ("SAVE5", "fixed_amount", Decimal("5.00")),
)
_SHIPPING: tuple[tuple[str, str, str], ...] = (
    ("Standard Shipping", "STANDARD", "5.99"),
    ("Express Shipping", "EXPRESS", "14.99"),
)
_FREE_SHIPPING_FROM = Money.of("150.00", CURRENCY)


def demo_catalog() -> list[dict[str, Any]]:
    """About a dozen products the demo sells, as the ERP product import reads them.

    Rows are JSON-ready: ``sku``, ``title``, ``price`` (a decimal string, e.g. ``"29.95"``),
    ``currency`` and ``weight_grams``. ``generate_orders`` wants ``(sku, Decimal(price))``.
    """
    return [
        {
            "sku": sku,
            "title": f"{title} - {variant}" if variant else title,
            "price": price,
            "currency": CURRENCY,
            "weight_grams": grams,
        }
        for sku, title, variant, price, grams in _CATALOG
    ]


def demo_stock() -> list[dict[str, Any]]:
    """On-hand stock per SKU at WH-EAST and WH-WEST; a few SKUs are short at one location."""
    rows: list[dict[str, Any]] = []
    for sku, *_ in _CATALOG:
        for location, on_hand in zip(LOCATIONS, _STOCK.get(sku, _DEFAULT_STOCK), strict=True):
            rows.append({"sku": sku, "location": location, "on_hand": on_hand})
    return rows


# -- building blocks of a payload -----------------------------------------------------------


def _s(m: Money) -> str:
    return str(m.amount)


def _bag(m: Money) -> dict[str, Any]:
    money = {"amount": _s(m), "currency_code": m.currency}
    return {"shop_money": money, "presentment_money": dict(money)}


def _priced(key: str, m: Money) -> dict[str, Any]:
    return {key: _s(m), f"{key}_set": _bag(m)}


def _tax_line(title: str, rate: Decimal, amount: Money) -> dict[str, Any]:
    # Shopify sends the rate as a JSON float; the mapper reads it back via Decimal(str(rate)).
    return {"title": title, **_priced("price", amount), "rate": float(rate), "channel_liable": False}


def _stable_id(base: int, text: str) -> int:
    return base + zlib.crc32(text.encode("utf-8")) % 1_000_000


@dataclass
class _Person:
    first: str
    last: str
    email: str
    phone: str  # E.164
    state: _State
    address: tuple[str, str, str]
    customer_id: int | None


def _new_person(rng: random.Random, index: int, registered: bool) -> _Person:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    state = rng.choice(_STATES)
    local = f"555{rng.randint(0, 9999):04d}"
    return _Person(
        first=first,
        last=last,
        email=f"{first}.{last}{index}@example.com".lower(),
        phone=f"+1{state.area_code}{local}",
        state=state,
        address=rng.choice(state.addresses),
        customer_id=6_100_000_000_000 + index if registered else None,
    )


def _email_variant(rng: random.Random, email: str) -> str:
    """The same address typed again: different case, stray spaces."""
    local, _, domain = email.partition("@")
    styled = local.title() if rng.random() < 0.5 else local.upper()
    return f"{' ' if rng.random() < 0.5 else ''}{styled}@{domain.capitalize()} "


def _phone_variant(rng: random.Random, e164: str) -> str:
    """The same number in another format that still normalises to the E.164 form."""
    digits = e164[2:]
    a, b, c = digits[:3], digits[3:6], digits[6:]
    return rng.choice((f"+1 ({a}) {b}-{c}", f"+1 {a}-{b}-{c}", f"+1.{a}.{b}.{c}"))


def _address(p: _Person) -> dict[str, Any]:
    address1, city, zip_code = p.address
    return {
        "first_name": p.first,
        "last_name": p.last,
        "name": f"{p.first} {p.last}",
        "company": None,
        "address1": address1,
        "address2": "",
        "city": city,
        "province": p.state.name,
        "province_code": p.state.code,
        "country": "United States",
        "country_code": "US",
        "zip": zip_code,
        "phone": p.phone,
        "latitude": None,
        "longitude": None,
    }


def _discounts(
    rng: random.Random, subtotals: list[Money]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Money]]:
    """Maybe a discount code: (discount_applications, discount_codes, allocation per line)."""
    zero = [Money.zero(CURRENCY) for _ in subtotals]
    if rng.random() >= 0.3:
        return [], [], zero
    code, value_type, value = rng.choice(_CODES)
    subtotal = Money.sum(subtotals, CURRENCY)
    if value_type == "percentage":
        # Shopify applies a percentage to each line, rounded per line.
        shares = [Money.round(s.amount * value / 100, CURRENCY) for s in subtotals]
    else:
        amount = Money.of(value, CURRENCY)
        if amount > subtotal:
            return [], [], zero
        shares = allocate(amount, [s.amount for s in subtotals])
    application = {
        "type": "discount_code",
        "code": code,
        "value": f"{value:.1f}",
        "value_type": value_type,
        "allocation_method": "across",
        "target_selection": "all",
        "target_type": "line_item",
    }
    used = {"code": code, "amount": _s(Money.sum(shares, CURRENCY)), "type": value_type}
    return [application], [used], shares


def _one_order(
    rng: random.Random,
    number: int,
    order_id: int,
    placed: datetime,
    person: _Person,
    registered: bool,
    typed_email: str,
    typed_phone: str | None,
    skus: list[tuple[str, Decimal]],
    titles: dict[str, tuple[str, str | None, int]],
) -> dict[str, Any]:
    state = person.state
    picks = rng.sample(skus, k=min(len(skus), rng.choice((1, 1, 2, 2, 3))))
    quantities = [rng.choice((1, 1, 1, 2, 3)) for _ in picks]
    prices = [Money.of(price, CURRENCY) for _, price in picks]
    subtotals = [p.times(q) for p, q in zip(prices, quantities, strict=True)]
    applications, codes, allocations = _discounts(rng, subtotals)

    line_items: list[dict[str, Any]] = []
    taxes: list[Money] = []
    for j, ((sku, _), qty, price, sub, disc) in enumerate(
        zip(picks, quantities, prices, subtotals, allocations, strict=True)
    ):
        tax = Money.round((sub - disc).amount * state.rate, CURRENCY)
        taxes.append(tax)
        title, variant, grams = titles.get(sku, (sku, None, 300))
        line_id = 13_000_000_000_000 + (order_id % 1_000_000_000_000) * 10 + j + 1
        line_items.append(
            {
                "id": line_id,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
                "product_id": _stable_id(8_100_000_000_000, title),
                "variant_id": _stable_id(45_100_000_000_000, sku),
                "sku": sku,
                "title": title,
                "variant_title": variant or "",
                "name": f"{title} - {variant}" if variant else title,
                "vendor": "Retail Connect Demo",
                "quantity": qty,
                "current_quantity": qty,
                "fulfillable_quantity": qty,
                "fulfillment_status": None,
                "fulfillment_service": "manual",
                "requires_shipping": True,
                "taxable": True,
                "gift_card": False,
                "grams": grams,
                **_priced("price", price),
                **_priced("total_discount", Money.zero(CURRENCY)),
                "properties": [],
                "tax_lines": [_tax_line(state.tax_title, state.rate, tax)],
                "discount_allocations": (
                    [{**_priced("amount", disc), "discount_application_index": 0}] if applications else []
                ),
                "duties": [],
            }
        )

    line_total = Money.sum(subtotals, CURRENCY)
    discount_total = Money.sum(allocations, CURRENCY)
    after_discounts = line_total - discount_total
    if after_discounts >= _FREE_SHIPPING_FROM:
        ship_title, ship_code, ship_price = "Free Shipping", "FREE", Money.zero(CURRENCY)
    else:
        ship_title, ship_code, price_text = _SHIPPING[0] if rng.random() < 0.8 else _SHIPPING[1]
        ship_price = Money.of(price_text, CURRENCY)
    ship_tax = (
        Money.round(ship_price.amount * state.rate, CURRENCY)
        if state.taxes_shipping and not ship_price.is_zero
        else Money.zero(CURRENCY)
    )
    shipping_line = {
        "id": 4_100_000_000_000 + order_id % 1_000_000_000_000,
        "title": ship_title,
        "code": ship_code,
        "source": "shopify",
        **_priced("price", ship_price),
        **_priced("discounted_price", ship_price),
        "carrier_identifier": None,
        "is_removed": False,
        "tax_lines": [_tax_line(state.tax_title, state.rate, ship_tax)] if not ship_tax.is_zero else [],
        "discount_allocations": [],
    }
    tax_total = Money.sum(taxes, CURRENCY) + ship_tax
    total = after_discounts + ship_price + tax_total
    paid = rng.random() < 0.2
    at = placed.astimezone(SHOP_TZ).isoformat()

    customer: dict[str, Any] | None = None
    if registered and person.customer_id is not None:
        customer = {
            "id": person.customer_id,
            "email": person.email,
            "first_name": person.first,
            "last_name": person.last,
            "phone": person.phone,
            "tax_exempt": False,
            "currency": CURRENCY,
            "default_address": {
                "id": person.customer_id + 500_000,
                "address1": person.address[0],
                "city": person.address[1],
                "province_code": person.state.code,
                "country_code": "US",
                "zip": person.address[2],
            },
        }
    address = _address(person)
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{number}",
        "order_number": number,
        "number": number - 1000 if number > 1000 else number,
        "email": typed_email,
        "phone": typed_phone,
        "created_at": at,
        "updated_at": at,
        "processed_at": at,
        "cancelled_at": None,
        "cancel_reason": None,
        "closed_at": None,
        "test": False,
        "confirmed": True,
        "source_name": "web",
        "currency": CURRENCY,
        "presentment_currency": CURRENCY,
        "taxes_included": False,
        "tax_exempt": False,
        "financial_status": "paid" if paid else "authorized",
        "fulfillment_status": None,
        "tags": "demo",
        "note": None,
        "note_attributes": [],
        **_priced("subtotal_price", after_discounts),
        **_priced("total_line_items_price", line_total),
        **_priced("total_discounts", discount_total),
        **_priced("total_tax", tax_total),
        **_priced("total_price", total),
        "total_outstanding": _s(Money.zero(CURRENCY) if paid else total),
        "total_shipping_price_set": _bag(ship_price),
        "current_subtotal_price": _s(after_discounts),
        "current_total_discounts": _s(discount_total),
        "current_total_tax": _s(tax_total),
        "current_total_price": _s(total),
        "discount_codes": codes,
        "discount_applications": applications,
        "tax_lines": [_tax_line(state.tax_title, state.rate, tax_total)],
        "customer": customer,
        "billing_address": address,
        "shipping_address": dict(address),
        "line_items": line_items,
        "shipping_lines": [shipping_line],
        "fulfillments": [],
        "refunds": [],
        "payment_gateway_names": ["shopify_payments"],
        "location_id": None,
    }


def generate_orders(
    n: int, seed: int, skus: list[tuple[str, Decimal]], start_number: int = 1001
) -> list[dict[str, Any]]:
    """``n`` Shopify ``orders/create`` payloads, numbered from ``start_number``, deterministic per seed.

    ``skus`` are (sku, USD price) pairs, e.g. from :func:`demo_catalog`. Order ids depend on
    the seed and the number, so two demo runs with different seeds do not collide.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if not skus:
        raise ValueError("at least one sku is needed")
    for sku, price in skus:
        Money.of(price, CURRENCY)  # refuses sub-cent prices
        if price <= 0:
            raise ValueError(f"{sku}: price must be positive")
    rng = random.Random(seed)
    titles = {sku: (title, variant, grams) for sku, title, variant, _, grams in _CATALOG}
    people: list[_Person] = []
    orders: list[dict[str, Any]] = []
    placed = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    for i in range(n):
        number = start_number + i
        order_id = 5_100_000_000_000 + (seed % 10_000) * 10_000_000 + number
        placed += timedelta(minutes=rng.randint(3, 47), seconds=rng.randint(0, 59))
        roll = rng.random()
        phone: str | None
        if people and roll < 0.2:
            # A repeat buyer, typing their email and phone differently this time.
            person = rng.choice(people)
            registered = person.customer_id is not None
            email, phone = _email_variant(rng, person.email), _phone_variant(rng, person.phone)
        else:
            registered = roll >= 0.35  # about one order in seven is a new buyer checking out as a guest
            person = _new_person(rng, len(people) + 1, registered)
            people.append(person)
            email, phone = person.email, (person.phone if rng.random() < 0.5 else None)
        orders.append(
            _one_order(rng, number, order_id, placed, person, registered, email, phone, list(skus), titles)
        )
    return orders
