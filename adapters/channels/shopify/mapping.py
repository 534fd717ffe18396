"""Shopify Order (REST/webhook JSON) -> canonical Order.

Follows ``shared/contracts/shopify.md``. Decisions stated once here:

* **Shop money.** The order is booked in the shop ``currency``; every amount is read from its
  ``*_set.shop_money`` MoneyBag when present, else from the scalar decimal string (which
  Shopify also gives in the shop currency). ``presentment_currency`` (what the buyer saw) is
  recorded, never used for amounts. Money given as a JSON float is refused.
* **Totals are recomputed and checked.** ``subtotal`` is the sum of price x quantity (Shopify's
  ``subtotal_price`` is *after* line discounts); discounts are the line and shipping-line
  allocations; shipping is the shipping lines before discounts; tax is the line and
  shipping-line tax lines. Each is compared with the figure Shopify states
  (``total_line_items_price``, ``subtotal_price``, ``total_discounts``,
  ``total_shipping_price_set``, ``total_tax``, ``total_price``) and any disagreement is a
  :class:`MappingError` naming the Shopify field, before the canonical model checks again.
  Tips, duties and additional fees have no place in the canonical order and are refused.
* **Payments.** With ``transactions`` in the payload (the order webhook has none: ingress may
  attach those of ``GET /orders/{id}/transactions.json``), each successful or pending
  ``authorization``/``sale`` is a tender: a ``sale``, or an authorization already captured,
  was paid at Shopify (``managed_by="channel"``); an uncaptured authorization is captured by
  the platform on shipment (``"platform"``); they must add up to the total. Without
  transactions (or with transactions in the presentment currency) the amount per tender cannot
  be known, so the whole total goes on one payment: the first gateway in
  ``payment_gateway_names`` that is not ``gift_card`` (else the first), managed by the channel
  when ``financial_status`` is ``paid``/``partially_paid`` (or later refunded) and by the
  platform when it is ``authorized``/``pending``. A zero total has no payments.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError

from adapters.channels.errors import MappingError
from adapters.channels.payload import Json
from adapters.channels.payload import at as _at
from adapters.channels.payload import build as _build
from adapters.channels.payload import check_total as _check
from adapters.channels.payload import decimal as _payload_decimal
from adapters.channels.payload import flag as _flag
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
)
from canonical.edits import EditedLine, OrderEdit
from canonical.money import minor_units
from canonical.order import PaymentManager as Manager
from canonical.order import PaymentMethod

_DISCOUNT_KINDS: dict[str, Literal["code", "manual", "automatic", "script"]] = {
    "discount_code": "code",
    "manual": "manual",
    "automatic": "automatic",
    "script": "script",
}
_CHANNEL_PAID = frozenset({"paid", "partially_paid", "partially_refunded", "refunded"})
_PLATFORM_CAPTURES = frozenset({"authorized", "pending"})


# -- reading the payload, with the path of every problem ------------------------------------


def _decimal(value: Any, path: str, what: str) -> Decimal:
    """Shopify sends rates and discount values as JSON numbers: accepted (money is refused in _amount)."""
    return _payload_decimal(value, path, what, numbers=True)


def _amount(value: Any, path: str, currency: str) -> Money:
    if isinstance(value, float):
        raise MappingError(path, f"money must be a decimal string, got the JSON number {value!r}")
    amount = _decimal(value, path, "a decimal amount")
    try:
        return Money(amount=amount, currency=currency)
    except ValidationError as err:
        raise MappingError(path, _why(err)) from None


def _money(d: Json, key: str, path: str, currency: str, *, signed: bool = False) -> Money:
    """``key_set.shop_money`` when Shopify gives it, else the scalar ``key`` string."""
    bag = d.get(f"{key}_set")
    if isinstance(bag, dict):
        shop = bag.get("shop_money")
        if isinstance(shop, dict) and shop.get("amount") is not None:
            where = _at(_at(path, f"{key}_set"), "shop_money")
            code = shop.get("currency_code")
            if code is not None and code != currency:
                raise MappingError(_at(where, "currency_code"), f"{code} but the shop currency is {currency}")
            money = _amount(shop["amount"], _at(where, "amount"), currency)
            if not signed and money.amount < 0:
                raise MappingError(_at(where, "amount"), f"negative amount {money}")
            return money
    money = _amount(_required(d, key, path), _at(path, key), currency)
    if not signed and money.amount < 0:
        raise MappingError(_at(path, key), f"negative amount {money}")
    return money


def _optional_money(d: Json, key: str, path: str, currency: str) -> Money | None:
    """Like :func:`_money` for totals Shopify may omit (trimmed payloads, older versions)."""
    bag = d.get(f"{key}_set")
    has_bag = isinstance(bag, dict) and isinstance(bag.get("shop_money"), dict) and bag["shop_money"]
    if not has_bag and d.get(key) is None:
        return None
    return _money(d, key, path, currency)


# -- parts of the order ------------------------------------------------------------------


def _tax_lines(d: Json, path: str, currency: str) -> list[TaxLine]:
    result: list[TaxLine] = []
    for j, raw in enumerate(_list(d, "tax_lines", path)):
        p = _at(_at(path, "tax_lines"), j)
        rate = _decimal(_required(raw, "rate", p), _at(p, "rate"), "a tax rate")
        if rate < 0:
            raise MappingError(_at(p, "rate"), f"negative tax rate {rate}")
        result.append(
            _build(
                p,
                TaxLine,
                title=_text(raw, "title", p) or "Tax",
                rate=rate,
                amount=_money(raw, "price", p, currency),
            )
        )
    return result


def _allocations(d: Json, path: str, currency: str, n_discounts: int) -> list[DiscountAllocation]:
    result: list[DiscountAllocation] = []
    for j, raw in enumerate(_list(d, "discount_allocations", path)):
        p = _at(_at(path, "discount_allocations"), j)
        index = raw.get("discount_application_index")
        if index is not None and (
            isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_discounts
        ):
            raise MappingError(
                _at(p, "discount_application_index"),
                f"{index!r} is not an index into discount_applications ({n_discounts} given)",
            )
        result.append(
            _build(p, DiscountAllocation, amount=_money(raw, "amount", p, currency), discount_index=index)
        )
    return result


def _line(raw: Json, path: str, currency: str, n_discounts: int) -> OrderLine:
    sku = _text(raw, "sku", path)  # blank or null: a custom line, no product behind it
    title = _text(raw, "name", path) or _text(raw, "title", path)
    if title is None:
        raise MappingError(_at(path, "title"), "missing")
    quantity = _required(raw, "quantity", path)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise MappingError(_at(path, "quantity"), f"expected a positive integer, got {quantity!r}")
    return _build(
        path,
        OrderLine,
        line_id=_ident(raw, "id", path),
        sku=sku,
        title=title,
        quantity=quantity,
        unit_price=_money(raw, "price", path, currency),
        discount_allocations=_allocations(raw, path, currency, n_discounts),
        tax_lines=_tax_lines(raw, path, currency),
        requires_shipping=_flag(raw, "requires_shipping", path, True),
        taxable=_flag(raw, "taxable", path, True),
        gift_card=_flag(raw, "gift_card", path, False),
    )


def _shipping_line(raw: Json, path: str, currency: str, n_discounts: int) -> ShippingLine:
    title = _text(raw, "title", path)
    code = _text(raw, "code", path) or title or "shipping"
    return _build(
        path,
        ShippingLine,
        code=code,
        title=title or code,
        price=_money(raw, "price", path, currency),
        discount_allocations=_allocations(raw, path, currency, n_discounts),
        tax_lines=_tax_lines(raw, path, currency),
    )


def _discount(raw: Json, path: str) -> OrderDiscount:
    kind_raw = _required(raw, "type", path)
    kind = _DISCOUNT_KINDS.get(kind_raw) if isinstance(kind_raw, str) else None
    if kind is None:
        raise MappingError(_at(path, "type"), f"unknown discount application type {kind_raw!r}")
    value_type = _required(raw, "value_type", path)
    if value_type not in ("fixed_amount", "percentage"):
        raise MappingError(
            _at(path, "value_type"), f"expected fixed_amount or percentage, got {value_type!r}"
        )
    target = raw.get("target_type") or "line_item"
    if target not in ("line_item", "shipping_line"):
        raise MappingError(_at(path, "target_type"), f"expected line_item or shipping_line, got {target!r}")
    return _build(
        path,
        OrderDiscount,
        kind=kind,
        code=_text(raw, "code", path),
        title=_text(raw, "title", path) or _text(raw, "description", path),
        value_type=value_type,
        value=_decimal(_required(raw, "value", path), _at(path, "value"), "a decimal value"),
        target=target,
    )


def _address(payload: Json, key: str) -> Address | None:
    raw = payload.get(key)
    if raw is None or raw == {}:
        return None
    d = _obj(raw, key)
    country = _text(d, "country_code", key)
    if country is None:
        raise MappingError(_at(key, "country_code"), "missing")
    first, last = _text(d, "first_name", key), _text(d, "last_name", key)
    name = _text(d, "name", key) or " ".join(p for p in (first, last) if p) or None
    return _build(
        key,
        Address,
        name=name,
        company=_text(d, "company", key),
        line1=_text(d, "address1", key) or "",
        line2=_text(d, "address2", key),
        city=_text(d, "city", key) or "",
        region=_text(d, "province_code", key),
        postal_code=_text(d, "zip", key),
        country=country.upper(),
        phone=_text(d, "phone", key),
    )


def _customer(payload: Json) -> Customer:
    """The buyer; a guest when the order has no customer object.

    The order's own ``email``/``phone`` (what the buyer typed at checkout) win over the
    customer record's; canonical normalisation makes them comparable for matching.
    """
    raw = payload.get("customer")
    cust = _obj(raw, "customer") if raw else {}
    email, email_path = None, "email"
    for source, key, where in (
        (payload, "email", ""),
        (payload, "contact_email", ""),
        (cust, "email", "customer"),
    ):
        email = _text(source, key, where)
        if email is not None:
            email_path = _at(where, key)
            break
    phone = _text(payload, "phone", "") or _text(cust, "phone", "customer")
    first = _text(cust, "first_name", "customer")
    last = _text(cust, "last_name", "customer")
    if first is None and last is None:
        for key in ("billing_address", "shipping_address"):
            addr = payload.get(key)
            if isinstance(addr, dict):
                first, last = _text(addr, "first_name", key), _text(addr, "last_name", key)
                if first or last:
                    break
    external_id = _ident(cust, "id", "customer") if cust.get("id") is not None else None
    return _build(
        email_path,  # the only field the canonical Customer can refuse
        Customer,
        external_id=external_id,
        email=email,
        phone=phone,
        first_name=first,
        last_name=last,
        guest=external_id is None,
    )


def _method(gateway: str) -> PaymentMethod:
    g = gateway.strip().lower()
    if g == "gift_card":
        return "gift_card"
    if "cash on delivery" in g or g == "cod":
        return "cash_on_delivery"
    if "bank" in g:
        return "bank_transfer"
    if g == "manual" or "money order" in g:
        return "other"
    if "paypal" in g:
        return "wallet"
    return "card"


def _payments_from_transactions(txns: list[Json], currency: str, total: Money) -> list[Payment] | None:
    """One payment per (gateway, who holds the money), from authorizations and sales.

    None when the transactions are in another currency than the shop's (multi-currency
    orders charge in the presentment currency): their split cannot be booked exactly.
    """
    captured = {
        str(t.get("parent_id"))
        for t in txns
        if t.get("kind") == "capture" and t.get("status") == "success" and t.get("parent_id") is not None
    }
    amounts: dict[tuple[str, Manager], Money] = {}
    refs: dict[tuple[str, Manager], str | None] = {}
    for k, t in enumerate(txns):
        p = _at("transactions", k)
        if t.get("kind") not in ("authorization", "sale") or t.get("status") not in ("success", "pending"):
            continue
        gateway = _text(t, "gateway", p)
        if gateway is None:
            raise MappingError(_at(p, "gateway"), "missing")
        bag = t.get("amount_set")
        has_shop_money = isinstance(bag, dict) and isinstance(bag.get("shop_money"), dict)
        if not has_shop_money and t.get("currency") not in (None, currency):
            return None  # in the presentment currency: the split in shop money is unknown
        manager: Manager = (
            "platform" if t["kind"] == "authorization" and str(t.get("id")) not in captured else "channel"
        )
        key = (gateway, manager)
        amount = _money(t, "amount", p, currency)
        amounts[key] = amounts[key] + amount if key in amounts else amount
        if key not in refs:
            ref = t.get("authorization") or t.get("id")
            refs[key] = str(ref) if ref is not None else None
    paid = Money.sum(amounts.values(), currency)
    if paid != total:
        raise MappingError(
            "transactions", f"authorizations and sales add up to {paid} but total_price is {total}"
        )
    return [
        _build(
            "transactions",
            Payment,
            managed_by=manager,
            method=_method(gateway),
            gateway=gateway,
            amount=amount,
            reference=refs[(gateway, manager)],
        )
        for (gateway, manager), amount in amounts.items()
        if not amount.is_zero
    ]


def _payments(payload: Json, currency: str, total: Money) -> list[Payment]:
    if total.is_zero:
        return []
    txns = _list(payload, "transactions", "")
    if txns:
        from_txns = _payments_from_transactions(txns, currency, total)
        if from_txns is not None:
            return from_txns
    names = payload.get("payment_gateway_names") or []
    if not isinstance(names, list):
        raise MappingError("payment_gateway_names", "expected a list of gateway names")
    gateways = [g.strip() for g in names if isinstance(g, str) and g.strip()]
    if not gateways:
        return []
    status = payload.get("financial_status")
    manager: Manager
    if status in _CHANNEL_PAID:
        manager = "channel"
    elif status in _PLATFORM_CAPTURES:
        manager = "platform"
    else:
        raise MappingError(
            "financial_status",
            f"{status!r}: no payment the platform can record or capture "
            "(expected paid, partially_paid, authorized or pending)",
        )
    gateway = next((g for g in gateways if _method(g) != "gift_card"), gateways[0])
    return [
        _build(
            "payment_gateway_names",
            Payment,
            managed_by=manager,
            method=_method(gateway),
            gateway=gateway,
            amount=total,
        )
    ]


def _placed_at(payload: Json) -> datetime:
    key = "processed_at" if payload.get("processed_at") else "created_at"
    value = _required(payload, key, "")
    if not isinstance(value, str):
        raise MappingError(key, f"expected an ISO-8601 timestamp, got {value!r}")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise MappingError(key, f"not an ISO-8601 timestamp: {value!r}") from None
    if at.tzinfo is None:
        raise MappingError(key, f"timestamp without a UTC offset: {value!r}")
    return at


def _refuse_unrepresented(payload: Json, currency: str) -> None:
    """Tips, duties and additional fees are in Shopify's total but not in the canonical order."""
    tip = payload.get("total_tip_received")
    if tip is not None and not _amount(tip, "total_tip_received", currency).is_zero:
        raise MappingError("total_tip_received", f"a tip of {tip} {currency}: tips are not supported")
    for key in ("original_total_duties", "current_total_duties", "original_total_additional_fees"):
        if isinstance(payload.get(f"{key}_set"), dict):
            fee = _optional_money(payload, key, "", currency)
            if fee is not None and not fee.is_zero:
                raise MappingError(f"{key}_set", f"{fee}: duties and additional fees are not supported")


# -- the mapper --------------------------------------------------------------------------


def order_from_shopify(payload: dict[str, Any], channel: str = "shopify") -> Order:
    """Map a Shopify Order payload (``orders/create`` webhook or REST) to a canonical Order.

    Raises :class:`MappingError` (a ``ValueError``) with the Shopify field path of the first
    problem: a missing or malformed field, or figures that do not add up.
    """
    payload = _obj(payload, "")
    external_id = _ident(payload, "id", "")
    currency = _required(payload, "currency", "")
    if not isinstance(currency, str):
        raise MappingError("currency", f"expected an ISO 4217 code, got {currency!r}")
    try:
        minor_units(currency)
    except ValueError as err:
        raise MappingError("currency", str(err)) from None
    presentment = _text(payload, "presentment_currency", "")

    discounts = [
        _discount(d, _at("discount_applications", i))
        for i, d in enumerate(_list(payload, "discount_applications", ""))
    ]
    raw_lines = _list(payload, "line_items", "")
    if not raw_lines:
        raise MappingError("line_items", "an order needs at least one line item")
    lines = [_line(raw, _at("line_items", i), currency, len(discounts)) for i, raw in enumerate(raw_lines)]
    shipping_lines = [
        _shipping_line(raw, _at("shipping_lines", i), currency, len(discounts))
        for i, raw in enumerate(_list(payload, "shipping_lines", ""))
    ]
    taxes_included = _flag(payload, "taxes_included", "", False)

    _refuse_unrepresented(payload, currency)
    subtotal = Money.sum((ln.subtotal for ln in lines), currency)
    line_discounts = Money.sum((ln.discount for ln in lines), currency)
    shipping_discounts = Money.sum((s.discount for s in shipping_lines), currency)
    discount_total = line_discounts + shipping_discounts
    shipping_total = Money.sum((s.price for s in shipping_lines), currency)
    tax_total = Money.sum((ln.tax for ln in lines), currency) + Money.sum(
        (s.tax for s in shipping_lines), currency
    )
    total = (
        subtotal - discount_total + shipping_total + (Money.zero(currency) if taxes_included else tax_total)
    )

    _check(
        "total_line_items_price",
        _optional_money(payload, "total_line_items_price", "", currency),
        subtotal,
        "line_items (price x quantity)",
    )
    _check(
        "subtotal_price",
        _optional_money(payload, "subtotal_price", "", currency),
        subtotal - line_discounts,
        "line_items after their discount_allocations",
    )
    stated_discounts = _optional_money(payload, "total_discounts", "", currency)
    # Shopify's pages differ on whether total_discounts counts shipping discounts: accept both.
    if stated_discounts not in (None, discount_total, line_discounts):
        raise MappingError(
            "total_discounts",
            f"is {stated_discounts} but the discount_allocations add up to {line_discounts} on line_items "
            f"and {shipping_discounts} on shipping_lines",
        )
    _check(
        "total_shipping_price_set",
        _optional_money(payload, "total_shipping_price", "", currency),
        shipping_total,
        "shipping_lines (before discounts)",
    )
    _check(
        "total_tax",
        _optional_money(payload, "total_tax", "", currency),
        tax_total,
        "the tax_lines of line_items and shipping_lines",
    )
    stated_total = _money(payload, "total_price", "", currency)
    tax_part = "tax included" if taxes_included else f"tax {tax_total}"
    _check(
        "total_price",
        stated_total,
        total,
        f"subtotal {subtotal} - discounts {discount_total} + shipping {shipping_total} + {tax_part}",
    )

    tags = _text(payload, "tags", "")
    try:
        return Order(
            channel=channel,
            external_id=external_id,
            name=_text(payload, "name", ""),
            placed_at=_placed_at(payload),
            currency=currency,
            presentment_currency=presentment,
            taxes_included=taxes_included,
            customer=_customer(payload),
            billing_address=_address(payload, "billing_address"),
            shipping_address=_address(payload, "shipping_address"),
            lines=lines,
            shipping_lines=shipping_lines,
            discounts=discounts,
            payments=_payments(payload, currency, total),
            totals=OrderTotals(
                subtotal=subtotal,
                discount_total=discount_total,
                shipping_total=shipping_total,
                tax_total=tax_total,
                total=total,
            ),
            note=_text(payload, "note", ""),
            tags=[t.strip() for t in tags.split(",") if t.strip()] if tags else [],
        )
    except ValidationError as err:
        raise MappingError("", f"not a valid order: {_why(err)}") from None


# -- orders/updated ----------------------------------------------------------------------------


def _updated_at(payload: Json) -> datetime:
    value = _required(payload, "updated_at", "")
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise MappingError("updated_at", f"expected an ISO-8601 timestamp with an offset, got {value!r}")
    return at


def order_edit_from_shopify(payload: dict[str, Any], channel: str = "shopify") -> OrderEdit:
    """What an ``orders/updated`` payload says the order is now.

    Order edits leave ``quantity`` at what was ordered and put what is left in
    ``current_quantity`` (0 for a removed line; Shopify keeps the line), so that is the quantity
    read. Removed shipping lines (``is_removed``) do not count. Line amounts are not taken from
    the payload: the workflow derives the reduced lines' shares itself (``canonical.edits``).
    """
    payload = _obj(payload, "")
    currency = _required(payload, "currency", "")
    if not isinstance(currency, str):
        raise MappingError("currency", f"expected an ISO 4217 code, got {currency!r}")
    try:
        minor_units(currency)
    except ValueError as err:
        raise MappingError("currency", str(err)) from None
    lines: list[EditedLine] = []
    for i, raw in enumerate(_list(payload, "line_items", "")):
        path = _at("line_items", i)
        qty = raw.get("current_quantity", _required(raw, "quantity", path))
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise MappingError(_at(path, "current_quantity"), f"expected a quantity, got {qty!r}")
        lines.append(
            _build(
                path,
                EditedLine,
                line_id=_ident(raw, "id", path),
                sku=_text(raw, "sku", path),
                quantity=qty,
                unit_price=_money(raw, "price", path, currency),
            )
        )
    shipping = [
        _shipping_line(raw, _at("shipping_lines", i), currency, 0).price
        for i, raw in enumerate(_list(payload, "shipping_lines", ""))
        if not raw.get("is_removed")
    ]
    return _build(
        "",
        OrderEdit,
        channel=channel,
        external_id=_ident(payload, "id", ""),
        updated_at=_updated_at(payload),
        shipping_address=_address(payload, "shipping_address"),
        lines=lines,
        shipping_total=Money.sum(shipping, currency),
    )
