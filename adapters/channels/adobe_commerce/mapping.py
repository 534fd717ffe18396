"""Adobe Commerce (Magento 2) REST order -> canonical Order.

Follows ``shared/contracts/bigcommerce_adobe_commerce.md`` §B (the order skeleton). Decisions
stated once:

* **Identity.** ``increment_id`` (the order number customers see) is the external id and the
  name (``#000000123``); ``entity_id`` only addresses the order in URLs.
* **Money.** Magento gives amounts as JSON numbers (the contract says so); each is read through
  its decimal text and must be exact in the order currency's minor units (``order_currency_code``),
  so ``12.5`` is 12.50 and ``12.505`` is refused. The ``base_*`` twins are not read.
* **Lines.** Only top-level items are lines: a configurable product's child (``parent_item_id``)
  carries neither price nor tax, its parent carries the chosen simple SKU. Children of any other
  parent (bundles, priced per child) are refused. ``qty_ordered`` must be a whole number.
* **Tax-inclusive or not.** Magento states both bases. The figures decide: ex-tax
  (``subtotal + shipping_amount + tax_amount + discount_amount == grand_total``) or, when only
  those add up, tax-inclusive (``subtotal_incl_tax + shipping_incl_tax + discount_amount``,
  unit prices ``price_incl_tax``, ``taxes_included=True``). Neither: a :class:`MappingError`
  with the figures. Rates are the items' ``tax_percent``; shipping's tax is
  ``shipping_incl_tax - shipping_amount``.
* **Discounts.** Items' ``discount_amount`` (positive) are the allocations of one ``automatic``
  discount; the order's ``discount_amount`` (negative, Magento's sign) must be minus their sum.
* **Shipping** is ``extension_attributes.shipping_assignments[0].shipping``: ``method`` and
  ``address``; several assignments (multi-address checkout) are refused. Virtual orders have none.
* **Payment.** ``payment.amount_paid`` is money Magento took (``channel``); the rest of
  ``grand_total`` is authorized and captured on shipment by the platform (offline methods such as
  ``checkmo``, ``banktransfer``, ``cashondelivery``; ``cashondelivery`` is cash on delivery).
  Gift cards are not in the contract's order skeleton and are not read.
* **Customer.** ``customer_is_guest`` (or no ``customer_id``) is a guest; name and email from
  ``customer_*``.
* **Readiness** is the caller's (:func:`hold_reason`): ``pending_payment``, ``payment_review``
  and ``holded`` wait; ``canceled`` is cancelled; ``complete``/``closed`` were finished at the
  store before the platform saw them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from adapters.channels.errors import MappingError
from adapters.channels.payload import Json
from adapters.channels.payload import at as _at
from adapters.channels.payload import build as _build
from adapters.channels.payload import check_total as _check
from adapters.channels.payload import obj as _obj
from adapters.channels.payload import objects as _objects
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
from canonical.money import minor_units
from canonical.order import PaymentMethod

CANCELLED = "canceled"
WAITING_STATES = frozenset({"pending_payment", "payment_review", "holded"})
DONE_STATES = frozenset({"complete", "closed"})
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def hold_reason(order: Json) -> str | None:
    state = order.get("state")
    if state in WAITING_STATES:
        return f"state {state}: waiting at the store"
    if state in DONE_STATES:
        return f"state {state}: finished at the store before the platform saw it"
    return None


def parse_time(value: Any, path: str) -> datetime:
    """Magento's ``YYYY-MM-DD HH:MM:SS``, in UTC (how it stores and returns times)."""
    if not isinstance(value, str):
        raise MappingError(path, f"expected a time, got {value!r}")
    try:
        return datetime.strptime(value.strip(), TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise MappingError(path, f"not a Magento time (YYYY-MM-DD HH:MM:SS): {value!r}") from None


def _decimal(d: Json, key: str, path: str, *, default: Decimal | None = None) -> Decimal:
    value = d.get(key)
    if value is None:
        if default is not None:
            return default
        raise MappingError(_at(path, key), "missing")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MappingError(_at(path, key), f"expected a number, got {value!r}")
    try:
        result = Decimal(str(value).strip())  # the number's shortest text: 12.5, never 12.4999...
    except InvalidOperation:
        raise MappingError(_at(path, key), f"expected a number, got {value!r}") from None
    if not result.is_finite():
        raise MappingError(_at(path, key), f"expected a number, got {value!r}")
    return result


def _money(d: Json, key: str, path: str, currency: str, *, signed: bool = False) -> Money:
    amount = _decimal(d, key, path, default=Decimal(0))
    if amount < 0 and not signed:
        raise MappingError(_at(path, key), f"negative amount {amount}")
    try:
        return Money(amount=amount, currency=currency)
    except ValidationError as err:
        raise MappingError(_at(path, key), _why(err)) from None


def _quantity(d: Json, path: str) -> int:
    q = _decimal(d, "qty_ordered", path)
    if q <= 0 or q != q.to_integral_value():
        raise MappingError(
            _at(path, "qty_ordered"), f"expected a positive whole number, got {d['qty_ordered']!r}"
        )
    return int(q)


def _address(raw: Json, path: str) -> Address:
    country = _text(raw, "country_id", path)
    if country is None:
        raise MappingError(_at(path, "country_id"), "missing")
    street = raw.get("street") or []
    if not isinstance(street, list) or not all(isinstance(s, str) for s in street):
        raise MappingError(_at(path, "street"), f"expected a list of lines, got {street!r}")
    first, last = _text(raw, "firstname", path), _text(raw, "lastname", path)
    return _build(
        path,
        Address,
        name=" ".join(p for p in (first, last) if p) or None,
        company=_text(raw, "company", path),
        line1=street[0].strip() if street else "",
        line2=", ".join(s.strip() for s in street[1:] if s.strip()) or None,
        city=_text(raw, "city", path) or "",
        region=_text(raw, "region_code", path) or _text(raw, "region", path),
        postal_code=_text(raw, "postcode", path),
        country=country.upper(),
        phone=_text(raw, "telephone", path),
    )


def _customer(order: Json) -> Customer:
    cid = order.get("customer_id")
    guest = bool(order.get("customer_is_guest")) or not cid
    return _build(
        "customer_email",
        Customer,
        external_id=None if guest else str(cid),
        email=_text(order, "customer_email", ""),
        first_name=_text(order, "customer_firstname", ""),
        last_name=_text(order, "customer_lastname", ""),
        guest=guest,
    )


def _shipping(order: Json) -> Json | None:
    ext = _obj(order.get("extension_attributes") or {}, "extension_attributes")
    path = "extension_attributes.shipping_assignments"
    assignments = _objects(ext, "shipping_assignments", "extension_attributes")
    if len(assignments) > 1:
        raise MappingError(
            path, f"the order ships to {len(assignments)} addresses; the canonical order has one"
        )
    if not assignments:
        return None
    return _obj(assignments[0].get("shipping") or {}, _at(_at(path, 0), "shipping"))


def _method(code: str) -> PaymentMethod:
    if code == "cashondelivery":
        return "cash_on_delivery"
    if code in ("banktransfer",):
        return "bank_transfer"
    if code in ("checkmo", "purchaseorder", "free"):
        return "other"
    if "paypal" in code:
        return "wallet"
    return "card"


def _payments(order: Json, currency: str, total: Money) -> list[Payment]:
    if total.is_zero:
        return []
    pay = _obj(_required(order, "payment", ""), "payment")
    code = _text(pay, "method", "payment")
    if code is None:
        raise MappingError("payment.method", "missing")
    paid = _money(pay, "amount_paid", "payment", currency)
    if paid > total:
        raise MappingError("payment.amount_paid", f"{paid} exceeds grand_total {total}")
    ref = pay.get("last_trans_id")
    out: list[Payment] = []
    for manager, amount in (("channel", paid), ("platform", total - paid)):
        if not amount.is_zero:
            out.append(
                Payment(
                    managed_by=manager,  # type: ignore[arg-type]
                    method=_method(code),
                    gateway=code,
                    amount=amount,
                    reference=str(ref) if isinstance(ref, str | int) and not isinstance(ref, bool) else None,
                )
            )
    return out


def order_from_adobe_commerce(order: dict[str, Any], channel: str = "adobe_commerce") -> Order:
    """Map one ``GET /V1/orders`` item (or ``/V1/orders/{id}``) to a canonical Order.

    Raises :class:`MappingError` with the path of the first problem (``items[1].price``,
    ``grand_total``): a missing or malformed field, something the canonical order cannot hold, or
    figures that do not add up."""
    try:
        return _map(_obj(order, ""), channel)
    except ValidationError as err:
        raise MappingError("", f"an amount is out of range: {_why(err)}") from None


def _inclusive(order: Json, cur: str) -> bool:
    def m(key: str, signed: bool = False) -> Money:
        return _money(order, key, "", cur, signed=signed)

    stated = m("grand_total")
    discount = m("discount_amount", signed=True)
    exclusive = m("subtotal") + m("shipping_amount") + m("tax_amount") + discount
    if stated == exclusive:
        return False
    inclusive = m("subtotal_incl_tax") + m("shipping_incl_tax") + discount
    if stated == inclusive:
        return True
    raise MappingError(
        "grand_total",
        f"is {stated} but subtotal + shipping_amount + tax_amount + discount_amount add up to {exclusive},"
        f" and subtotal_incl_tax + shipping_incl_tax + discount_amount to {inclusive}",
    )


def _map(order: Json, channel: str) -> Order:
    external_id = _text(order, "increment_id", "")
    if external_id is None:
        raise MappingError("increment_id", "missing")
    currency = _text(order, "order_currency_code", "")
    if currency is None:
        raise MappingError("order_currency_code", "missing")
    try:
        minor_units(currency)
    except ValueError as err:
        raise MappingError("order_currency_code", str(err)) from None
    inclusive = _inclusive(order, currency)
    raw_items = _objects(order, "items", "")
    parents = {i.get("item_id"): i for i in raw_items}

    discounts: list[OrderDiscount] = []
    lines: list[OrderLine] = []
    for n, raw in enumerate(raw_items):
        p = _at("items", n)
        parent_id = raw.get("parent_item_id")
        if parent_id is not None:
            parent = parents.get(parent_id)
            if parent is None or parent.get("product_type") != "configurable":
                raise MappingError(_at(p, "parent_item_id"), "child items of bundles are not supported")
            continue  # the configurable parent is the line
        quantity = _quantity(raw, p)
        unit = _money(raw, "price_incl_tax" if inclusive else "price", p, currency)
        row_key = "row_total_incl_tax" if inclusive else "row_total"
        row = _money(raw, row_key, p, currency)
        if row != unit.times(quantity):
            raise MappingError(
                _at(p, row_key), f"is {row} but {unit} x qty_ordered {quantity} is {unit.times(quantity)}"
            )
        tax = _money(raw, "tax_amount", p, currency)
        discount = _money(raw, "discount_amount", p, currency)
        allocations: list[DiscountAllocation] = []
        if not discount.is_zero:
            if not discounts:
                discounts.append(
                    OrderDiscount(
                        kind="automatic", title="Discount", value_type="fixed_amount", value=Decimal(0)
                    )
                )
            allocations.append(DiscountAllocation(amount=discount, discount_index=0))
        rate = _decimal(raw, "tax_percent", p, default=Decimal(0)) / 100
        item_id = _required(raw, "item_id", p)
        lines.append(
            _build(
                p,
                OrderLine,
                line_id=str(item_id),
                sku=_text(raw, "sku", p),
                title=_text(raw, "name", p) or _text(raw, "sku", p) or str(item_id),
                quantity=quantity,
                unit_price=unit,
                discount_allocations=allocations,
                tax_lines=[] if tax.is_zero else [TaxLine(title="Tax", rate=rate, amount=tax)],
                requires_shipping=raw.get("product_type") not in ("virtual", "downloadable"),
            )
        )
    if not lines:
        raise MappingError("items", "an order needs at least one item")

    item_discount = Money.sum((ln.discount for ln in lines), currency)
    if discounts:
        discounts[0] = discounts[0].model_copy(update={"value": item_discount.amount})
    stated_discount = _money(order, "discount_amount", "", currency, signed=True)
    if -stated_discount != item_discount:
        raise MappingError(
            "discount_amount",
            f"is {stated_discount} but the items' discount_amount add up to {item_discount}",
        )

    shipping_ex = _money(order, "shipping_amount", "", currency)
    shipping_inc = _money(order, "shipping_incl_tax", "", currency)
    if shipping_inc < shipping_ex:
        raise MappingError("shipping_incl_tax", f"{shipping_inc} is less than shipping_amount {shipping_ex}")
    shipping_tax = shipping_inc - shipping_ex
    shipping = _shipping(order)
    shipping_lines: list[ShippingLine] = []
    if not shipping_inc.is_zero:
        method = (_text(shipping, "method", "shipping") if shipping else None) or "shipping"
        title = _text(order, "shipping_description", "") or method
        rate = (
            (shipping_tax.amount / shipping_ex.amount).quantize(Decimal("0.0001"))
            if not shipping_ex.is_zero
            else Decimal(0)
        )
        shipping_lines.append(
            ShippingLine(
                code=method,
                title=title,
                price=shipping_inc if inclusive else shipping_ex,
                tax_lines=[]
                if shipping_tax.is_zero
                else [TaxLine(title="Tax", rate=rate, amount=shipping_tax)],
            )
        )

    subtotal = Money.sum((ln.subtotal for ln in lines), currency)
    tax_total = Money.sum((ln.tax for ln in lines), currency) + shipping_tax
    shipping_total = Money.sum((s.price for s in shipping_lines), currency)
    total = subtotal - item_discount + shipping_total + (Money.zero(currency) if inclusive else tax_total)
    basis = "subtotal_incl_tax" if inclusive else "subtotal"
    _check(basis, _money(order, basis, "", currency), subtotal, "items (price x qty_ordered)")
    _check(
        "tax_amount",
        _money(order, "tax_amount", "", currency),
        tax_total,
        "items' tax_amount and shipping's tax",
    )
    _check(
        "grand_total",
        _money(order, "grand_total", "", currency),
        total,
        f"subtotal {subtotal} - discounts {item_discount} + shipping {shipping_total}"
        + ("" if inclusive else f" + tax {tax_total}"),
    )

    address = shipping.get("address") if shipping else None
    billing = order.get("billing_address")
    try:
        return Order(
            channel=channel,
            external_id=external_id,
            name=f"#{external_id}",
            placed_at=parse_time(_required(order, "created_at", ""), "created_at"),
            currency=currency,
            taxes_included=inclusive,
            customer=_customer(order),
            billing_address=_address(_obj(billing, "billing_address"), "billing_address")
            if billing
            else None,
            shipping_address=(
                _address(
                    _obj(address, "shipping.address"),
                    "extension_attributes.shipping_assignments[0].shipping.address",
                )
                if isinstance(address, dict) and address.get("country_id")
                else None
            ),
            lines=lines,
            shipping_lines=shipping_lines,
            discounts=discounts,
            payments=_payments(order, currency, total),
            totals=OrderTotals(
                subtotal=subtotal,
                discount_total=item_discount,
                shipping_total=shipping_total,
                tax_total=tax_total,
                total=total,
            ),
        )
    except ValidationError as err:
        raise MappingError("", f"not a valid order: {_why(err)}") from None
