"""BigCommerce V2 order (+ products, shipping addresses, coupons) -> canonical Order.

Follows ``shared/contracts/bigcommerce_adobe_commerce.md`` (V2 order skeleton) and, for the
sub-resources the contract only links, BigCommerce's Orders V2 reference
(``orderProducts``, ``orderShippingAddress``, ``orderCoupons_Base``). Decisions stated once:

* **Money** is BigCommerce's 4-decimal strings (``"10.0000"``), exact in the order currency
  (``default_currency_code``, the transactional currency, else ``currency_code``; a different
  display ``currency_code`` is recorded as the presentment currency). Money given as a JSON
  number is refused (coupons' nominal ``amount`` excepted: the reference documents a number).
* **Pricing basis.** ``is_tax_inclusive_pricing`` (absent: false) decides which figures are
  BigCommerce's actual values rather than estimates: the ``*_inc_tax`` ones (canonical
  ``taxes_included``) or the ``*_ex_tax`` ones. Unit prices, shipping and the subtotal are read
  in that basis; they must be exact in minor units (an ex-tax price of ``"20.8333"`` in a
  tax-inclusive store is never used). ``applied_discounts[].amount`` is taken in the same
  basis.
* **Lines.** Product ``type`` ``physical`` requires shipping, ``giftcertificate`` is a gift card
  sold; a blank ``sku`` is a line without one. ``total_<basis>`` must be price x quantity
  (before discounts); ``total_tax`` is the line's tax after discounts.
* **Taxes.** Products and shipping addresses carry tax amounts but not rates: a line's rate is
  derived as ``price_tax / price_ex_tax`` (shipping: ``cost_tax / cost_ex_tax``) to 4 decimals,
  titled "Tax" (``GET /v2/orders/{id}/taxes`` has the real rates; not fetched).
* **Discounts.** Each coupon (``coupons``) is a ``code`` discount (type 1 percentage, 4 free
  shipping = 100% off shipping, others fixed amounts; 3 and 4 target shipping). Line
  ``applied_discounts`` are allocations, matched to coupons by code; the others become a
  ``manual`` ("Manual Discount") or ``automatic`` (promotion) discount of their total.
  BigCommerce spreads order-level discounts across lines with 4 decimals: per discount, the
  total is rounded half-even once and split across lines so the parts add up to it exactly.
  ``discount_amount`` is accepted either as all discounts or as those besides
  ``coupon_discount``.
* **Shipping.** One shipping address (``shipping_addresses``) is the shipping address and
  its ``cost_<basis>`` the shipping line; none (digital orders) means neither. An order
  shipped to several addresses, handling or gift-wrapping costs, and fees are not
  representable and are refused.
* **Totals are recomputed and checked** against ``subtotal_<basis>``,
  ``shipping_cost_<basis>``, ``total_tax``, the discounts and ``total_inc_tax`` (what the buyer
  pays); any disagreement is a :class:`MappingError` naming the BigCommerce field.
* **Payment.** ``gift_certificate_amount`` and ``store_credit_amount`` are tenders already taken
  at BigCommerce (``channel``). The rest of the total goes on one tender named by
  ``payment_method``: ``channel`` when ``payment_status`` says the money is taken (``captured``,
  ``paid``, ``partially refunded``, ``refunded``); ``platform`` when it is not yet
  (``authorized``, ``pending``, ``capture pending``, ``held for review`` or ``""``, an
  offline/manual payment), which authorizes and captures on shipment; refused when it failed
  (``declined``, ``void``, ``void pending``).
* **Customer.** ``customer_id`` 0 is a guest; email, phone and name come from the billing
  address. US and Canadian ``state`` names become their codes (``Texas`` -> ``TX``);
  ``country_iso2`` is the country. ``placed_at`` is ``date_created`` (RFC 2822, UTC).
* **Status** is not the mapper's business: :data:`NOT_PLACED_STATUS_IDS` lists what ingress
  should acknowledge without starting an order (status 0, *Incomplete*: checkout abandoned at
  payment).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from pydantic import ValidationError

from adapters.channels.errors import MappingError
from adapters.channels.payload import Json
from adapters.channels.payload import at as _at
from adapters.channels.payload import build as _build
from adapters.channels.payload import check_total as _check
from adapters.channels.payload import decimal as _decimal
from adapters.channels.payload import flag as _flag
from adapters.channels.payload import ident as _ident
from adapters.channels.payload import obj as _obj
from adapters.channels.payload import required as _required
from adapters.channels.payload import text as _text
from adapters.channels.payload import why as _why
from canonical import (
    Address,
    Customer,
    DiscountAllocation,
    Money,
    Order,
    OrderDiscount,
    OrderLine,
    OrderTotals,
    Payment,
    ShippingLine,
    TaxLine,
    allocate,
)
from canonical.money import minor_units
from canonical.order import DiscountKind, PaymentMethod
from canonical.order import PaymentManager as Manager

NOT_PLACED_STATUS_IDS = frozenset({0})
"""V2 status ids that are not (yet) orders: 0 Incomplete. Ingress acknowledges and waits for a
``store/order/statusUpdated`` to a placed status."""

CHANNEL_PAID = frozenset({"captured", "paid", "partially refunded", "refunded"})
PLATFORM_CAPTURES = frozenset({"authorized", "pending", "capture pending", "held for review", ""})
_RATE_QUANTUM = Decimal("0.0001")
_SHIPPING_COUPON_TYPES = frozenset({3, 4})

# fmt: off
_REGIONS = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA", "colorado": "CO",
    "connecticut": "CT", "delaware": "DE", "district of columbia": "DC", "florida": "FL", "georgia": "GA",
    "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA", "kansas": "KS",
    "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD", "massachusetts": "MA",
    "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO", "montana": "MT",
    "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM",
    "new york": "NY", "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK",
    "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
    "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT",
    "virginia": "VA", "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY",
    "puerto rico": "PR", "guam": "GU", "american samoa": "AS", "northern mariana islands": "MP",
    "virgin islands": "VI", "armed forces americas": "AA", "armed forces europe": "AE",
    "armed forces pacific": "AP",
}
_PROVINCES = {
    "alberta": "AB", "british columbia": "BC", "manitoba": "MB", "new brunswick": "NB",
    "newfoundland and labrador": "NL", "northwest territories": "NT", "nova scotia": "NS",
    "nunavut": "NU", "ontario": "ON", "prince edward island": "PE", "quebec": "QC",
    "saskatchewan": "SK", "yukon": "YT",
}
# fmt: on


# -- reading the payload, with the path of every problem ------------------------------------


def _objects(value: Any, path: str) -> list[Json]:
    if not isinstance(value, list):
        raise MappingError(path, f"expected a list, got {type(value).__name__}")
    return [_obj(item, _at(path, i)) for i, item in enumerate(value)]


def _amount(d: Json, key: str, path: str) -> Decimal:
    """A required non-negative decimal, at whatever precision BigCommerce gives it."""
    value = _decimal(_required(d, key, path), _at(path, key), "a decimal amount")
    if value < 0:
        raise MappingError(_at(path, key), f"negative amount {value}")
    return value


def _money(d: Json, key: str, path: str, currency: str) -> Money:
    amount = _amount(d, key, path)
    try:
        return Money(amount=amount, currency=currency)
    except ValidationError as err:
        raise MappingError(_at(path, key), _why(err)) from None


def _optional_money(d: Json, key: str, path: str, currency: str) -> Money | None:
    return None if d.get(key) is None else _money(d, key, path, currency)


def _rate(tax: Decimal, base: Decimal) -> Decimal:
    return (tax / base).quantize(_RATE_QUANTUM, rounding=ROUND_HALF_EVEN) if base else Decimal(0)


# -- discounts -----------------------------------------------------------------------------

_DiscountKey = tuple[str, str]


def _coupon_discount(raw: Json, path: str) -> tuple[_DiscountKey, OrderDiscount, bool]:
    """``(key, discount, targets shipping)`` for one entry of ``coupons``."""
    kind = _required(raw, "type", path)
    if isinstance(kind, bool) or not isinstance(kind, int) or not 0 <= kind <= 5:
        raise MappingError(_at(path, "type"), f"expected a coupon type 0-5, got {kind!r}")
    code = _text(raw, "code", path)
    if kind == 4:
        value_type: Literal["fixed_amount", "percentage"] = "percentage"
        value = Decimal(100)
    else:
        value_type = "percentage" if kind == 1 else "fixed_amount"
        value = _decimal(_required(raw, "amount", path), _at(path, "amount"), "a coupon amount", numbers=True)
    shipping = kind in _SHIPPING_COUPON_TYPES
    key = ("code", code.lower()) if code else ("coupon", _ident(raw, "id", path))
    discount = _build(
        path,
        OrderDiscount,
        kind="code",
        code=code,
        value_type=value_type,
        value=value,
        target="shipping_line" if shipping else "line_item",
    )
    return key, discount, shipping


def _discounts(
    products: list[Json], coupons: list[Json], currency: str
) -> tuple[list[OrderDiscount], list[list[DiscountAllocation]], bool]:
    """The order's discounts, each product's allocations, and whether a coupon targets shipping."""
    discounts: list[OrderDiscount] = []
    index: dict[_DiscountKey, int] = {}
    shipping_coupon = False
    for k, raw in enumerate(coupons):
        key, discount, shipping = _coupon_discount(raw, _at("coupons", k))
        shipping_coupon |= shipping
        index.setdefault(key, len(discounts))
        discounts.append(discount)

    # (product index, raw amount) per discount, in first-seen order, with its name and code.
    groups: dict[_DiscountKey, list[tuple[int, Decimal]]] = {}
    labels: dict[_DiscountKey, tuple[str | None, str | None]] = {}
    for i, product in enumerate(products):
        p = _at("products", i)
        applied = product.get("applied_discounts")
        for j, raw in enumerate(
            _objects(applied, _at(p, "applied_discounts")) if applied is not None else []
        ):
            q = _at(_at(p, "applied_discounts"), j)
            code = _text(raw, "code", q)
            key = ("code", code.lower()) if code else ("id", _ident(raw, "id", q))
            groups.setdefault(key, []).append((i, _amount(raw, "amount", q)))
            labels.setdefault(key, (_text(raw, "name", q), code))

    allocations: list[list[DiscountAllocation]] = [[] for _ in products]
    for key, entries in groups.items():
        raws = [amount for _, amount in entries]
        total = Money.round(sum(raws, Decimal(0)), currency)
        if key not in index:
            name, code = labels[key]
            kind: DiscountKind = (
                "code" if code else "manual" if key == ("id", "manual-discount") else "automatic"
            )
            index[key] = len(discounts)
            discounts.append(
                OrderDiscount(kind=kind, code=code, title=name, value_type="fixed_amount", value=total.amount)
            )
        for (i, _), part in zip(entries, allocate(total, raws), strict=True):
            if not part.is_zero:
                allocations[i].append(DiscountAllocation(amount=part, discount_index=index[key]))
    return discounts, allocations, shipping_coupon


# -- lines and shipping --------------------------------------------------------------------


def _tax_line(amount: Money, rate: Decimal) -> list[TaxLine]:
    return [] if amount.is_zero else [TaxLine(title="Tax", rate=rate, amount=amount)]


def _line(
    raw: Json, path: str, currency: str, basis: str, allocations: list[DiscountAllocation]
) -> OrderLine:
    title = _text(raw, "name", path) or _text(raw, "name_customer", path)
    if title is None:
        raise MappingError(_at(path, "name"), "missing")
    quantity = _required(raw, "quantity", path)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise MappingError(_at(path, "quantity"), f"expected a positive integer, got {quantity!r}")
    unit = _money(raw, f"price_{basis}", path, currency)
    stated = _money(raw, f"total_{basis}", path, currency)
    if stated != unit.times(quantity):
        raise MappingError(
            _at(path, f"total_{basis}"),
            f"is {stated} but price_{basis} {unit} x quantity {quantity} is {unit.times(quantity)}",
        )
    kind = _text(raw, "type", path) or "physical"
    if kind not in ("physical", "digital", "giftcertificate"):
        raise MappingError(_at(path, "type"), f"expected physical, digital or giftcertificate, got {kind!r}")
    ex_tax, inc_tax = _amount(raw, "price_ex_tax", path), _amount(raw, "price_inc_tax", path)
    return _build(
        path,
        OrderLine,
        line_id=_ident(raw, "id", path),
        sku=_text(raw, "sku", path),
        title=title,
        quantity=quantity,
        unit_price=unit,
        discount_allocations=allocations,
        tax_lines=_tax_line(_money(raw, "total_tax", path, currency), _rate(inc_tax - ex_tax, ex_tax)),
        requires_shipping=kind == "physical",
        gift_card=kind == "giftcertificate",
    )


def _shipping_line(raw: Json, path: str, currency: str, basis: str) -> ShippingLine:
    method = _text(raw, "shipping_method", path) or "Shipping"
    cost_ex_tax, cost_tax = _amount(raw, "cost_ex_tax", path), _amount(raw, "cost_tax", path)
    return _build(
        path,
        ShippingLine,
        code=method,
        title=method,
        price=_money(raw, f"cost_{basis}", path, currency),
        tax_lines=_tax_line(_money(raw, "cost_tax", path, currency), _rate(cost_tax, cost_ex_tax)),
    )


def _refuse_unrepresented(order: Json, shipping: list[Json], currency: str, basis: str) -> None:
    """Several shipping addresses, handling, gift wrapping and fees have no canonical place."""
    if len(shipping) > 1:
        raise MappingError(
            "shipping_addresses",
            f"the order ships to {len(shipping)} addresses; the canonical order has one shipping address",
        )
    for where, d in [("", order), *((_at("shipping_addresses", k), s) for k, s in enumerate(shipping))]:
        key = f"handling_cost_{basis}"
        if d.get(key) is not None and _amount(d, key, where) != 0:
            raise MappingError(_at(where, key), f"{d[key]} {currency}: handling costs are not supported")
    key = f"wrapping_cost_{basis}"
    if order.get(key) is not None and _amount(order, key, "") != 0:
        raise MappingError(key, f"{order[key]} {currency}: gift wrapping is not supported")
    fees = order.get("fees")
    if isinstance(fees, list):  # otherwise a {url, resource} link: the totals check catches a fee
        for k, fee in enumerate(_objects(fees, "fees")):
            p = _at("fees", k)
            cost = fee.get("cost_inc_tax")
            if (
                cost is not None
                and _decimal(cost, _at(p, "cost_inc_tax"), "a decimal amount", numbers=True) != 0
            ):
                name = _text(fee, "display_name_customer", p) or "fee"
                raise MappingError(
                    _at(p, "cost_inc_tax"), f"{name!r} of {cost} {currency}: fees are not supported"
                )


# -- parties -------------------------------------------------------------------------------


def _region(state: str | None, country: str) -> str | None:
    if state is None:
        return None
    if len(state) == 2 and state.isalpha():
        return state.upper()
    table = _REGIONS if country == "US" else _PROVINCES if country == "CA" else {}
    return table.get(state.lower(), state)


def _address(raw: Json, path: str) -> Address:
    country = _text(raw, "country_iso2", path)
    if country is None:
        raise MappingError(_at(path, "country_iso2"), "missing")
    country = country.upper()
    first, last = _text(raw, "first_name", path), _text(raw, "last_name", path)
    return _build(
        path,
        Address,
        name=" ".join(p for p in (first, last) if p) or None,
        company=_text(raw, "company", path),
        line1=_text(raw, "street_1", path) or "",
        line2=_text(raw, "street_2", path),
        city=_text(raw, "city", path) or "",
        region=_region(_text(raw, "state", path), country),
        postal_code=_text(raw, "zip", path),
        country=country,
        phone=_text(raw, "phone", path),
    )


def _customer(order: Json, billing: Json) -> Customer:
    customer_id = _required(order, "customer_id", "")
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id < 0:
        raise MappingError("customer_id", f"expected a customer id (0 for a guest), got {customer_id!r}")
    return _build(
        "billing_address.email",
        Customer,
        external_id=str(customer_id) if customer_id else None,
        email=_text(billing, "email", "billing_address"),
        phone=_text(billing, "phone", "billing_address"),
        first_name=_text(billing, "first_name", "billing_address"),
        last_name=_text(billing, "last_name", "billing_address"),
        guest=customer_id == 0,
    )


# -- payment -------------------------------------------------------------------------------


def _method(name: str) -> PaymentMethod:
    n = name.strip().lower()
    if "gift" in n:
        return "gift_card"
    if "cash on delivery" in n or n == "cod":
        return "cash_on_delivery"
    if "bank" in n or "wire" in n:
        return "bank_transfer"
    if any(w in n for w in ("paypal", "apple pay", "google pay", "amazon pay", "venmo", "wallet")):
        return "wallet"
    if n in ("", "manual", "cash", "check", "cheque", "money order", "pay in store"):
        return "other"
    return "card"


def _payments(order: Json, currency: str, total: Money) -> list[Payment]:
    if total.is_zero:
        return []
    payments: list[Payment] = []
    tenders: tuple[tuple[str, str, PaymentMethod], ...] = (
        ("gift_certificate_amount", "gift_certificate", "gift_card"),
        ("store_credit_amount", "store_credit", "other"),
    )
    for key, gateway, method in tenders:
        amount = _optional_money(order, key, "", currency)
        if amount is not None and not amount.is_zero:
            payments.append(Payment(managed_by="channel", method=method, gateway=gateway, amount=amount))
    rest = total - Money.sum((p.amount for p in payments), currency)
    if rest.amount < 0:
        raise MappingError(
            "gift_certificate_amount", f"gift certificates and store credit exceed the total {total}"
        )
    if rest.is_zero:
        return payments
    status = order.get("payment_status")
    if status is None:
        raise MappingError("payment_status", "missing")
    if not isinstance(status, str):
        raise MappingError("payment_status", f"expected a string, got {type(status).__name__}")
    manager: Manager
    if status in CHANNEL_PAID:
        manager = "channel"
    elif status in PLATFORM_CAPTURES:
        manager = "platform"
    else:
        raise MappingError("payment_status", f"{status!r}: no payment the platform can record or capture")
    gateway = _text(order, "payment_method", "") or "manual"
    reference = order.get("payment_provider_id")
    ref = (
        str(reference).strip() if isinstance(reference, str | int) and not isinstance(reference, bool) else ""
    )
    payments.append(
        _build(
            "payment_method",
            Payment,
            managed_by=manager,
            method=_method(gateway),
            gateway=gateway,
            amount=rest,
            reference=ref or None,
        )
    )
    return payments


def _placed_at(order: Json) -> datetime:
    value = _required(order, "date_created", "")
    if not isinstance(value, str):
        raise MappingError("date_created", f"expected an RFC 2822 date, got {value!r}")
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise MappingError("date_created", f"not an RFC 2822 date: {value!r}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at  # "-0000": UTC, says BigCommerce


def _currency(order: Json) -> tuple[str, str | None]:
    key = "default_currency_code" if _text(order, "default_currency_code", "") else "currency_code"
    currency = _text(order, key, "")
    if currency is None:
        raise MappingError("currency_code", "missing")
    try:
        minor_units(currency)
    except ValueError as err:
        raise MappingError(key, str(err)) from None
    display = _text(order, "currency_code", "")
    return currency, display if display and display != currency else None


# -- the mapper ----------------------------------------------------------------------------


def order_from_bigcommerce(
    order: dict[str, Any],
    products: list[dict[str, Any]],
    shipping_addresses: list[dict[str, Any]],
    coupons: list[dict[str, Any]],
    channel: str = "bigcommerce",
) -> Order:
    """Map a V2 order and its sub-resources (``BigCommerceClient.get_order``) to a canonical Order.

    Raises :class:`MappingError` (a ``ValueError``) with the path of the first problem
    (``total_inc_tax``, ``products[1].price_ex_tax``, ``coupons[0].type``): a missing or
    malformed field, something the canonical order cannot hold, or figures that do not add up.
    """
    try:
        return _map(order, products, shipping_addresses, coupons, channel)
    except ValidationError as err:  # money arithmetic out of range, e.g. a quantity of 10**30
        raise MappingError("", f"an amount is out of range: {_why(err)}") from None


def _map(
    order: dict[str, Any],
    products: list[dict[str, Any]],
    shipping_addresses: list[dict[str, Any]],
    coupons: list[dict[str, Any]],
    channel: str = "bigcommerce",
) -> Order:
    order = _obj(order, "")
    items = _objects(products, "products")
    shipping = _objects(shipping_addresses, "shipping_addresses")
    coupon_list = _objects(coupons, "coupons")
    external_id = _ident(order, "id", "")
    currency, presentment = _currency(order)
    inclusive = _flag(order, "is_tax_inclusive_pricing", "", False)
    basis = "inc_tax" if inclusive else "ex_tax"
    if not items:
        raise MappingError("products", "an order needs at least one product")
    _refuse_unrepresented(order, shipping, currency, basis)

    discounts, allocations, shipping_coupon = _discounts(items, coupon_list, currency)
    lines = [_line(raw, _at("products", i), currency, basis, allocations[i]) for i, raw in enumerate(items)]
    shipping_lines = [
        _shipping_line(s, _at("shipping_addresses", k), currency, basis) for k, s in enumerate(shipping)
    ]

    zero = Money.zero(currency)
    subtotal = Money.sum((ln.subtotal for ln in lines), currency)
    discount_total = Money.sum((ln.discount for ln in lines), currency)
    shipping_total = Money.sum((s.price for s in shipping_lines), currency)
    tax_total = Money.sum((ln.tax for ln in lines), currency) + Money.sum(
        (s.tax for s in shipping_lines), currency
    )
    total = subtotal - discount_total + shipping_total + (zero if inclusive else tax_total)

    _check(
        f"subtotal_{basis}",
        _optional_money(order, f"subtotal_{basis}", "", currency),
        subtotal,
        f"products (price_{basis} x quantity)",
    )
    _check(
        f"shipping_cost_{basis}",
        _optional_money(order, f"shipping_cost_{basis}", "", currency),
        shipping_total,
        f"shipping_addresses (cost_{basis})",
    )
    _check(
        "total_tax",
        _optional_money(order, "total_tax", "", currency),
        tax_total,
        "products and shipping_addresses taxes",
    )
    stated_discount = _optional_money(order, "discount_amount", "", currency)
    coupon_discount = _optional_money(order, "coupon_discount", "", currency) or zero
    if (
        stated_discount is not None
        and discount_total not in (stated_discount, stated_discount + coupon_discount)
        and not shipping_coupon
    ):
        raise MappingError(
            "discount_amount",
            f"is {stated_discount} (coupon_discount {coupon_discount}) but the products' applied_discounts "
            f"add up to {discount_total}",
        )
    tax_part = "tax included" if inclusive else f"tax {tax_total}"
    _check(
        "total_inc_tax",
        _money(order, "total_inc_tax", "", currency),
        total,
        f"subtotal {subtotal} - discounts {discount_total} + shipping {shipping_total} + {tax_part}",
    )

    billing = _obj(_required(order, "billing_address", ""), "billing_address")
    try:
        return Order(
            channel=channel,
            external_id=external_id,
            name=f"#{external_id}",
            placed_at=_placed_at(order),
            currency=currency,
            presentment_currency=presentment,
            taxes_included=inclusive,
            customer=_customer(order, billing),
            billing_address=_address(billing, "billing_address"),
            shipping_address=_address(shipping[0], "shipping_addresses[0]") if shipping else None,
            lines=lines,
            shipping_lines=shipping_lines,
            discounts=discounts,
            payments=_payments(order, currency, total),
            totals=OrderTotals(
                subtotal=subtotal,
                discount_total=discount_total,
                shipping_total=shipping_total,
                tax_total=tax_total,
                total=total,
            ),
            note=_text(order, "customer_message", ""),
        )
    except ValidationError as err:
        raise MappingError("", f"not a valid order: {_why(err)}") from None
