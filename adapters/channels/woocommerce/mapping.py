"""WooCommerce Order (REST v3, also the ``order.*`` webhook body) -> canonical Order.

Follows ``shared/contracts/woocommerce.md`` section 3. Decisions stated once here:

* **Money** is read from WooCommerce's decimal strings in the order ``currency``; money given
  as a JSON number is refused. ``line_items[].price`` (a JSON number, WooCommerce's unrounded
  ``subtotal / quantity``) is never used.
* **Lines.** WooCommerce keeps line ``subtotal`` (before discounts) and ``total`` (after) *excluding*
  tax, with ``subtotal_tax``/``total_tax`` beside them, whatever ``prices_include_tax`` says.
  With ``prices_include_tax: false`` the canonical unit price is ``subtotal / quantity``; with
  ``true`` (``taxes_included``) it is ``(subtotal + subtotal_tax) / quantity``, the price the
  buyer saw. Either must come out in whole minor units, or the line is refused (the canonical
  line has a unit price, not a line total). A line's discount is what separates its
  subtotal from its total (tax-inclusive when prices include tax).
* **Taxes.** A line's (and a shipping line's) ``taxes[]`` name rate ids; title, rate and code
  come from the order's ``tax_lines[]`` (``label``, ``rate_percent``, ``rate_code`` as the
  jurisdiction). WooCommerce may keep per-rate amounts unrounded (``"0.6875"``): they are
  split across rates so that they add up to the line's stated ``total_tax`` exactly, and
  refused when their sum is more than half a minor unit away from it.
* **Shipping** lines are priced ``total`` (plus ``total_tax`` when prices include tax);
  WooCommerce coupons do not discount shipping lines (free-shipping coupons zero the rate).
* **Coupons** become ``code`` discounts; their type and nominal amount come from the
  ``coupon_info`` meta WooCommerce stores on the coupon line (8.7+) when present, else the
  discount is stated as the fixed amount taken off. With one coupon the line discounts point
  at it; with several, WooCommerce does not say which coupon took what off which line, so
  the allocations carry no index.
* **Fees** (``fee_lines``) have no place in the canonical order: a non-zero fee is refused.
  ``refunds[]`` are not part of the order as placed and are left to the refund flow.
* **Totals are recomputed and checked** against ``discount_total``, the coupon lines,
  ``shipping_total``, ``shipping_tax``, ``cart_tax``, ``total_tax`` and ``total``; any
  disagreement is a :class:`MappingError` naming the WooCommerce field.
* **Payment** (one tender for the whole total; none when the total is zero):

  1. ``payment_method`` ``cod``: ``platform``, method ``cash_on_delivery``. WooCommerce marks
     COD orders paid (``date_paid``) when they reach *processing*, but the cash is only
     collected on delivery, i.e. when the platform captures.
  2. Paid at WooCommerce: ``set_paid: true`` (present when the payload is an API create
     request), a ``date_paid_gmt``, or a paid status (``processing``, ``completed``,
     ``refunded``): ``channel``, recorded, refunded through the channel on cancellation.
  3. Not paid yet (``pending``, ``on-hold``: awaiting payment or an authorization only):
     ``platform``, which authorizes and captures on shipment (``transaction_id`` as the
     reference).
  4. Anything else (``failed``, ``cancelled``, ``checkout-draft``, ``trash``, unknown plugin
     statuses) has nothing paid or to capture and is refused.

* **Customer.** ``customer_id`` 0 is a guest; email, phone and name come from ``billing``
  (phone and name fall back to ``shipping``). An address whose fields are all blank is
  absent (virtual orders have an empty ``shipping``). ``placed_at`` is ``date_created_gmt``
  (UTC; the site-local ``date_created`` has no offset and is never used).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError

from adapters.channels.errors import MappingError
from adapters.channels.payload import Json
from adapters.channels.payload import at as _at
from adapters.channels.payload import build as _build
from adapters.channels.payload import check_total as _check
from adapters.channels.payload import decimal as _decimal
from adapters.channels.payload import ident as _ident
from adapters.channels.payload import obj as _obj
from adapters.channels.payload import objects as _list
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
from canonical.money import minor_units, quantum
from canonical.order import PaymentManager as Manager
from canonical.order import PaymentMethod

PAID_STATUSES = frozenset({"processing", "completed", "refunded"})
"""WooCommerce's paid statuses (``wc_get_is_paid_statuses()``), plus refunded (paid, then refunded)."""
AWAITING_PAYMENT_STATUSES = frozenset({"pending", "on-hold"})

# -- reading the payload, with the path of every problem ------------------------------------


def _money(d: Json, key: str, path: str, currency: str) -> Money:
    """A required, non-negative amount; an empty string (WooCommerce's "not set") is zero."""
    raw = _required(d, key, path)
    where = _at(path, key)
    if isinstance(raw, float):
        raise MappingError(where, f"money must be a decimal string, got the JSON number {raw!r}")
    amount = Decimal(0) if raw == "" else _decimal(raw, where, "a decimal amount")
    if amount < 0:
        raise MappingError(where, f"negative amount {amount} {currency}")
    try:
        return Money(amount=amount, currency=currency)
    except ValidationError as err:
        raise MappingError(where, _why(err)) from None


def _optional_money(d: Json, key: str, path: str, currency: str) -> Money | None:
    return None if d.get(key) is None else _money(d, key, path, currency)


# -- taxes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rate:
    title: str
    rate: Decimal
    code: str | None


def _rates(payload: Json) -> dict[str, _Rate]:
    """The order's ``tax_lines[]`` by ``rate_id``: what a line's ``taxes[].id`` refers to."""
    rates: dict[str, _Rate] = {}
    for k, raw in enumerate(_list(payload, "tax_lines", "")):
        p = _at("tax_lines", k)
        percent = _decimal(_required(raw, "rate_percent", p), _at(p, "rate_percent"), "a rate", numbers=True)
        if percent < 0:
            raise MappingError(_at(p, "rate_percent"), f"negative tax rate {percent}")
        code = _text(raw, "rate_code", p)
        rates[_ident(raw, "rate_id", p)] = _Rate(
            title=_text(raw, "label", p) or code or "Tax", rate=percent / 100, code=code
        )
    return rates


def _tax_lines(item: Json, path: str, currency: str, rates: dict[str, _Rate], stated: Money) -> list[TaxLine]:
    """One TaxLine per rate in ``taxes[]``, adding up exactly to the item's ``total_tax``."""
    entries = _list(item, "taxes", path)
    raw_totals: list[Decimal] = []
    line_rates: list[_Rate] = []
    for j, tax in enumerate(entries):
        p = _at(_at(path, "taxes"), j)
        rate_id = _ident(tax, "id", p)
        if rate_id not in rates:
            raise MappingError(_at(p, "id"), f"tax rate {rate_id} has no entry in tax_lines")
        value = _required(tax, "total", p)
        amount = Decimal(0) if value == "" else _decimal(value, _at(p, "total"), "a decimal amount")
        if amount < 0:
            raise MappingError(_at(p, "total"), f"negative tax {amount}")
        raw_totals.append(amount)
        line_rates.append(rates[rate_id])
    raw_sum = sum(raw_totals, Decimal(0))
    if abs(raw_sum - stated.amount) > quantum(currency) / 2:
        raise MappingError(_at(path, "total_tax"), f"is {stated} but taxes[] add up to {raw_sum} {currency}")
    amounts = allocate(stated, raw_totals)
    return [
        _build(_at(_at(path, "taxes"), j), TaxLine, title=r.title, rate=r.rate, amount=a, jurisdiction=r.code)
        for j, (r, a) in enumerate(zip(line_rates, amounts, strict=True))
    ]


# -- lines, shipping, coupons ----------------------------------------------------------------


def _unit_price(gross: Money, quantity: int, path: str, what: str) -> Money:
    unit = gross.amount / quantity
    if unit != unit.quantize(quantum(gross.currency)):
        raise MappingError(
            path, f"{what} {gross} is not a whole number of minor units per unit for quantity {quantity}"
        )
    return Money(amount=unit, currency=gross.currency)


def _line(
    raw: Json, path: str, currency: str, rates: dict[str, _Rate], inclusive: bool, coupon_index: int | None
) -> tuple[OrderLine, Money]:
    """The canonical line and its ex-tax discount (for the ``discount_total`` check)."""
    title = _text(raw, "name", path)
    if title is None:
        raise MappingError(_at(path, "name"), "missing")
    quantity = _required(raw, "quantity", path)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise MappingError(_at(path, "quantity"), f"expected a positive integer, got {quantity!r}")
    subtotal = _money(raw, "subtotal", path, currency)
    total = _money(raw, "total", path, currency)
    total_tax = _money(raw, "total_tax", path, currency)
    if total > subtotal:
        raise MappingError(_at(path, "total"), f"is {total}, more than the line subtotal {subtotal}")
    if inclusive:
        subtotal_tax = _money(raw, "subtotal_tax", path, currency)
        before, after = subtotal + subtotal_tax, total + total_tax
        unit = _unit_price(before, quantity, _at(path, "subtotal"), "subtotal + subtotal_tax")
    else:
        before, after = subtotal, total
        unit = _unit_price(before, quantity, _at(path, "subtotal"), "subtotal")
    if after > before:
        raise MappingError(
            _at(path, "total_tax"), f"the line costs {after} after discounts but {before} before"
        )
    discount = before - after
    allocations = (
        [] if discount.is_zero else [DiscountAllocation(amount=discount, discount_index=coupon_index)]
    )
    line = _build(
        path,
        OrderLine,
        line_id=_ident(raw, "id", path),
        sku=_text(raw, "sku", path),  # blank: a product without a SKU, or a deleted product
        title=title,
        quantity=quantity,
        unit_price=unit,
        discount_allocations=allocations,
        tax_lines=_tax_lines(raw, path, currency, rates, total_tax),
    )
    return line, subtotal - total


def _shipping_line(
    raw: Json, path: str, currency: str, rates: dict[str, _Rate], inclusive: bool
) -> ShippingLine:
    method = _text(raw, "method_id", path)
    title = _text(raw, "method_title", path)
    total = _money(raw, "total", path, currency)
    total_tax = _money(raw, "total_tax", path, currency)
    return _build(
        path,
        ShippingLine,
        code=method or title or "shipping",
        title=title or method or "Shipping",
        price=total + total_tax if inclusive else total,
        tax_lines=_tax_lines(raw, path, currency, rates, total_tax),
    )


def _coupon_info(raw: Json, path: str) -> tuple[str | None, Decimal | None]:
    """``(type, nominal amount)`` from the ``coupon_info`` meta: ``[id, code, type|null, amount, ...]``."""
    for k, meta in enumerate(_list(raw, "meta_data", path)):
        if meta.get("key") != "coupon_info":
            continue
        p = _at(_at(_at(path, "meta_data"), k), "value")
        value = meta.get("value")
        try:
            info = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            raise MappingError(p, "coupon_info is not JSON") from None
        if not isinstance(info, list) or len(info) < 2:
            raise MappingError(p, f"expected [id, code, type, amount], got {value!r}")
        kind = info[2] if len(info) > 2 and info[2] is not None else "fixed_cart"
        if not isinstance(kind, str):
            raise MappingError(p, f"coupon type {kind!r} is not a string")
        amount = _decimal(info[3], p, "a coupon amount", numbers=True) if len(info) > 3 else Decimal(0)
        return kind, amount
    return None, None


def _coupon(raw: Json, path: str, currency: str, inclusive: bool) -> tuple[OrderDiscount, Money]:
    """The canonical discount and the ex-tax amount it took off (for the checks)."""
    code = _text(raw, "code", path)
    if code is None:
        raise MappingError(_at(path, "code"), "missing")
    discount = _money(raw, "discount", path, currency)
    taken = discount + _money(raw, "discount_tax", path, currency) if inclusive else discount
    kind, nominal = _coupon_info(raw, path)
    if kind == "percent" and nominal is not None:
        value_type: Literal["fixed_amount", "percentage"] = "percentage"
        value = nominal
    elif kind in ("fixed_cart", "fixed_product") and nominal is not None:
        value_type, value = "fixed_amount", nominal
    else:  # no coupon_info, or a plugin's coupon type: state what it took off
        value_type, value = "fixed_amount", taken.amount
    return _build(path, OrderDiscount, kind="code", code=code, value_type=value_type, value=value), discount


def _refuse_fees(payload: Json, currency: str) -> None:
    for i, fee in enumerate(_list(payload, "fee_lines", "")):
        p = _at("fee_lines", i)
        for key in ("total", "total_tax"):
            # Fees may be negative (a discount given as a fee): read the sign before refusing.
            value = _required(fee, key, p)
            amount = Decimal(0) if value == "" else _decimal(value, _at(p, key), "a decimal amount")
            if amount != 0:
                name = _text(fee, "name", p) or "fee"
                raise MappingError(
                    _at(p, key),
                    f"{name!r} of {amount} {currency}: fees are not supported by the canonical order",
                )


# -- parties -------------------------------------------------------------------------------

_ADDRESS_FIELDS = ("first_name", "last_name", "company", "address_1", "address_2", "city", "postcode")


def _address(payload: Json, key: str) -> Address | None:
    raw = payload.get(key)
    if raw is None:
        return None
    d = _obj(raw, key)
    if all(_text(d, f, key) is None for f in _ADDRESS_FIELDS):
        return None  # WooCommerce sends every field blank when there is no such address
    country = _text(d, "country", key)
    if country is None:
        raise MappingError(_at(key, "country"), "missing")
    first, last = _text(d, "first_name", key), _text(d, "last_name", key)
    return _build(
        key,
        Address,
        name=" ".join(p for p in (first, last) if p) or None,
        company=_text(d, "company", key),
        line1=_text(d, "address_1", key) or "",
        line2=_text(d, "address_2", key),
        city=_text(d, "city", key) or "",
        region=_text(d, "state", key),
        postal_code=_text(d, "postcode", key),
        country=country.upper(),
        phone=_text(d, "phone", key),
    )


def _customer(payload: Json) -> Customer:
    customer_id = _required(payload, "customer_id", "")
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id < 0:
        raise MappingError("customer_id", f"expected a customer id (0 for a guest), got {customer_id!r}")
    billing = _obj(payload.get("billing") or {}, "billing")
    shipping = _obj(payload.get("shipping") or {}, "shipping")
    first, last = _text(billing, "first_name", "billing"), _text(billing, "last_name", "billing")
    if first is None and last is None:
        first, last = _text(shipping, "first_name", "shipping"), _text(shipping, "last_name", "shipping")
    return _build(
        "billing.email",  # the only field the canonical Customer can refuse
        Customer,
        external_id=str(customer_id) if customer_id else None,
        email=_text(billing, "email", "billing"),
        phone=_text(billing, "phone", "billing") or _text(shipping, "phone", "shipping"),
        first_name=first,
        last_name=last,
        guest=customer_id == 0,
    )


# -- payment -------------------------------------------------------------------------------


def _method(gateway: str) -> PaymentMethod:
    g = gateway.strip().lower()
    if g == "cod":
        return "cash_on_delivery"
    if g == "bacs":
        return "bank_transfer"
    if g in ("cheque", "manual", "other", ""):
        return "other"
    if "paypal" in g or g.startswith("ppcp"):
        return "wallet"
    return "card"


def _payments(payload: Json, total: Money) -> list[Payment]:
    """One tender for the whole total, managed per the rule in the module docstring."""
    if total.is_zero:
        return []
    gateway = _text(payload, "payment_method", "") or "manual"
    status = _text(payload, "status", "")
    paid = payload.get("set_paid") is True or bool(payload.get("date_paid_gmt")) or status in PAID_STATUSES
    manager: Manager
    if gateway == "cod":
        manager = "platform"
    elif paid:
        manager = "channel"
    elif status in AWAITING_PAYMENT_STATUSES:
        manager = "platform"
    elif status is None:
        raise MappingError("status", "missing")
    else:
        raise MappingError(
            "status",
            f"{status!r}: nothing paid and nothing to capture "
            "(expected pending, on-hold, processing, completed or a date_paid_gmt)",
        )
    return [
        _build(
            "payment_method",
            Payment,
            managed_by=manager,
            method=_method(gateway),
            gateway=gateway,
            amount=total,
            reference=_text(payload, "transaction_id", ""),
        )
    ]


def _placed_at(payload: Json) -> datetime:
    value = _required(payload, "date_created_gmt", "")
    if not isinstance(value, str):
        raise MappingError("date_created_gmt", f"expected an ISO-8601 timestamp, got {value!r}")
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MappingError("date_created_gmt", f"not an ISO-8601 timestamp: {value!r}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at  # *_gmt is UTC without a suffix


# -- the mapper ----------------------------------------------------------------------------


def order_from_woocommerce(payload: dict[str, Any], channel: str = "woocommerce") -> Order:
    """Map a WooCommerce order (``order.created``/``order.updated`` body or REST v3) to an Order.

    Raises :class:`MappingError` (a ``ValueError``) with the WooCommerce field path of the
    first problem: a missing or malformed field, a fee, or figures that do not add up.
    """
    try:
        return _map(payload, channel)
    except ValidationError as err:  # money arithmetic out of range, e.g. a quantity of 10**30
        raise MappingError("", f"an amount is out of range: {_why(err)}") from None


def _map(payload: dict[str, Any], channel: str = "woocommerce") -> Order:
    payload = _obj(payload, "")
    external_id = _ident(payload, "id", "")
    currency = _required(payload, "currency", "")
    if not isinstance(currency, str):
        raise MappingError("currency", f"expected an ISO 4217 code, got {currency!r}")
    try:
        minor_units(currency)
    except ValueError as err:
        raise MappingError("currency", str(err)) from None
    inclusive = payload.get("prices_include_tax")
    if not isinstance(inclusive, bool):
        raise MappingError(
            "prices_include_tax",
            "missing" if inclusive is None else f"expected true or false, got {inclusive!r}",
        )

    rates = _rates(payload)
    coupons = [
        _coupon(raw, _at("coupon_lines", i), currency, inclusive)
        for i, raw in enumerate(_list(payload, "coupon_lines", ""))
    ]
    coupon_index = 0 if len(coupons) == 1 else None
    raw_lines = _list(payload, "line_items", "")
    if not raw_lines:
        raise MappingError("line_items", "an order needs at least one line item")
    mapped = [
        _line(raw, _at("line_items", i), currency, rates, inclusive, coupon_index)
        for i, raw in enumerate(raw_lines)
    ]
    lines = [line for line, _ in mapped]
    shipping_lines = [
        _shipping_line(raw, _at("shipping_lines", i), currency, rates, inclusive)
        for i, raw in enumerate(_list(payload, "shipping_lines", ""))
    ]
    _refuse_fees(payload, currency)

    zero = Money.zero(currency)
    subtotal = Money.sum((ln.subtotal for ln in lines), currency)
    discount_total = Money.sum((ln.discount for ln in lines), currency)
    shipping_total = Money.sum((s.price for s in shipping_lines), currency)
    line_tax = Money.sum((ln.tax for ln in lines), currency)
    shipping_tax = Money.sum((s.tax for s in shipping_lines), currency)
    tax_total = line_tax + shipping_tax
    total = subtotal - discount_total + shipping_total + (zero if inclusive else tax_total)

    ex_tax_discounts = Money.sum((d for _, d in mapped), currency)
    stated_discount = _optional_money(payload, "discount_total", "", currency)
    _check("discount_total", stated_discount, ex_tax_discounts, "line_items (subtotal - total)")
    coupon_discounts = Money.sum((d for _, d in coupons), currency)
    if coupons and coupon_discounts != ex_tax_discounts:
        raise MappingError(
            "coupon_lines",
            f"the coupon discounts add up to {coupon_discounts} but the line items were discounted "
            f"by {ex_tax_discounts} (subtotal - total)",
        )
    shipping_ex_tax = shipping_total - shipping_tax if inclusive else shipping_total
    _check(
        "shipping_total",
        _optional_money(payload, "shipping_total", "", currency),
        shipping_ex_tax,
        "shipping_lines",
    )
    _check(
        "shipping_tax",
        _optional_money(payload, "shipping_tax", "", currency),
        shipping_tax,
        "shipping_lines taxes",
    )
    _check("cart_tax", _optional_money(payload, "cart_tax", "", currency), line_tax, "line_items taxes")
    _check(
        "total_tax", _optional_money(payload, "total_tax", "", currency), tax_total, "line and shipping taxes"
    )
    tax_part = "tax included" if inclusive else f"tax {tax_total}"
    _check(
        "total",
        _money(payload, "total", "", currency),
        total,
        f"subtotal {subtotal} - discounts {discount_total} + shipping {shipping_total} + {tax_part}",
    )

    number = _text(payload, "number", "")
    try:
        return Order(
            channel=channel,
            external_id=external_id,
            name=f"#{number}" if number else None,
            placed_at=_placed_at(payload),
            currency=currency,
            taxes_included=inclusive,
            customer=_customer(payload),
            billing_address=_address(payload, "billing"),
            shipping_address=_address(payload, "shipping"),
            lines=lines,
            shipping_lines=shipping_lines,
            discounts=[d for d, _ in coupons],
            payments=_payments(payload, total),
            totals=OrderTotals(
                subtotal=subtotal,
                discount_total=discount_total,
                shipping_total=shipping_total,
                tax_total=tax_total,
                total=total,
            ),
            note=_text(payload, "customer_note", ""),
        )
    except ValidationError as err:
        raise MappingError("", f"not a valid order: {_why(err)}") from None


def updated_at(payload: dict[str, Any]) -> datetime:
    """``date_modified_gmt`` (UTC without a suffix): what orders the edits of one order."""
    value = payload.get("date_modified_gmt")
    try:
        at = datetime.fromisoformat(value.strip()) if isinstance(value, str) and value.strip() else None
    except ValueError:
        at = None
    if at is None:
        raise MappingError("date_modified_gmt", f"expected an ISO-8601 timestamp, got {value!r}")
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at
