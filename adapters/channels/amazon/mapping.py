"""Amazon SP-API Orders v0 order (+ its order items) -> canonical Order.

Follows ``shared/contracts/amazon_sp_api.md`` (§3.2 Order, §3.3 OrderItem). Decisions stated once:

* **Money** is ``{"CurrencyCode", "Amount": "<decimal string>"}``, exact in the currency's minor
  units; a JSON number, or a currency other than the order's, is refused with its path.
* **Lines.** ``ItemPrice`` is the line total (unit price x ``QuantityOrdered``): the unit price
  is that divided by the quantity, and must be exact in minor units. ``SellerSKU`` is the SKU,
  ``OrderItemId`` the line id, ``Title`` (else ``ASIN``) the title.
* **Taxes.** A line's tax is ``ItemTax - PromotionDiscountTax`` (after discounts), shipping's
  ``ShippingTax - ShippingDiscountTax``; rates are derived (tax / price, 4 decimals) and titled
  "Tax" (Amazon gives no rates). ``TaxCollection`` (marketplace facilitator: Amazon remits the
  tax) names the jurisdiction ``marketplace_facilitator`` so the books can tell.
* **Tax-inclusive or not.** The contract does not say whether ``ItemPrice`` includes tax (it
  does in VAT marketplaces). ``OrderTotal`` decides: it must equal either prices + taxes -
  discounts (tax-exclusive) or prices - discounts (tax-inclusive, ``taxes_included=True``);
  matching neither is a :class:`MappingError` with both figures. With no tax both agree: exclusive.
* **Discounts.** ``PromotionDiscount`` per line is one ``automatic`` discount "Amazon promotion"
  (titled with the ``PromotionIds``), allocated per line; ``ShippingDiscount`` one discount on the
  shipping line.
* **Shipping.** Items' ``ShippingPrice`` add up to one shipping line coded ``ShipServiceLevel``.
  ``ShippingAddress`` without an RDT lacks name and street: ``line1`` is then empty.
* **What the canonical order cannot hold is refused:** ``CODFee`` and gift wrap
  (``BuyerInfo.GiftWrapPrice``) other than zero.
* **Payment.** Amazon takes the money: one ``channel`` tender of ``OrderTotal`` (gateway
  ``amazon``; ``COD`` -> cash on delivery, otherwise ``other``). The contract names no gift
  card amounts, so none are split out.
* **Customer.** Amazon's buyers are never the seller's customers: a guest with ``BuyerEmail``
  (anonymized) and ``BuyerName`` when present.
* **Readiness** is the caller's business (:func:`hold_reason`): ``Pending`` orders have no prices
  yet, AFN orders are shipped by Amazon.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from adapters.channels.errors import MappingError
from adapters.channels.payload import Json
from adapters.channels.payload import at as _at
from adapters.channels.payload import build as _build
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

CANCELLED = "Canceled"
NOT_YET_PRICED = frozenset({"Pending", "PendingAvailability"})
_RATE_QUANTUM = Decimal("0.0001")


def hold_reason(order: Json) -> str | None:
    """Why an order is not (yet) for the platform to fulfil, or None when it is."""
    status = order.get("OrderStatus")
    if status in NOT_YET_PRICED:
        return f"OrderStatus {status}: not paid yet, no prices (imported once Unshipped)"
    if order.get("FulfillmentChannel") == "AFN":
        return "fulfilled by Amazon (AFN)"
    return None


def parse_time(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise MappingError(path, f"expected an ISO 8601 time, got {value!r}")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MappingError(path, f"not an ISO 8601 time: {value!r}") from None
    if at.tzinfo is None:
        raise MappingError(path, f"no time zone: {value!r}")
    return at


def _money(d: Json, key: str, path: str, currency: str | None) -> Money | None:
    """An optional Money object; None when absent."""
    raw = d.get(key)
    if raw is None:
        return None
    p = _at(path, key)
    m = _obj(raw, p)
    cur = _text(m, "CurrencyCode", p)
    amount = m.get("Amount")
    if cur is None or amount is None:
        raise MappingError(_at(p, "CurrencyCode" if cur is None else "Amount"), "missing")
    if currency is not None and cur != currency:
        raise MappingError(_at(p, "CurrencyCode"), f"{cur} but the order is in {currency}")
    if not isinstance(amount, str):
        raise MappingError(_at(p, "Amount"), f"expected a decimal string, got {amount!r}")
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        raise MappingError(_at(p, "Amount"), f"not a decimal: {amount!r}") from None
    if not value.is_finite() or value < 0:
        raise MappingError(_at(p, "Amount"), f"expected a non-negative amount, got {amount!r}")
    try:
        return Money(amount=value, currency=cur)
    except ValidationError as err:
        raise MappingError(_at(p, "Amount"), _why(err)) from None


def _rate(tax: Money, base: Money) -> Decimal:
    if base.is_zero:
        return Decimal(0)
    return (tax.amount / base.amount).quantize(_RATE_QUANTUM, rounding=ROUND_HALF_EVEN)


class _Item:
    """One OrderItem's figures, each defaulting to zero."""

    def __init__(self, raw: Json, path: str, currency: str) -> None:
        zero = Money.zero(currency)

        def get(key: str) -> Money:
            return _money(raw, key, path, currency) or zero

        self.price, self.tax = get("ItemPrice"), get("ItemTax")
        self.shipping, self.shipping_tax = get("ShippingPrice"), get("ShippingTax")
        self.shipping_discount, self.shipping_discount_tax = (
            get("ShippingDiscount"),
            get("ShippingDiscountTax"),
        )
        self.promotion, self.promotion_tax = get("PromotionDiscount"), get("PromotionDiscountTax")
        for key, value in (
            ("ShippingDiscountTax", self.shipping_discount_tax),
            ("PromotionDiscountTax", self.promotion_tax),
        ):
            base = self.shipping_tax if key == "ShippingDiscountTax" else self.tax
            if value > base:
                raise MappingError(_at(path, key), f"{value} exceeds the tax it reduces ({base})")
        for key in ("CODFee",):
            fee = _money(raw, key, path, currency)
            if fee is not None and not fee.is_zero:
                raise MappingError(_at(path, key), f"{fee}: COD fees are not supported")
        buyer = raw.get("BuyerInfo")
        if isinstance(buyer, dict):
            wrap = _money(buyer, "GiftWrapPrice", _at(path, "BuyerInfo"), currency)
            if wrap is not None and not wrap.is_zero:
                raise MappingError(
                    _at(_at(path, "BuyerInfo"), "GiftWrapPrice"), f"{wrap}: gift wrap is not supported"
                )

    @property
    def net_tax(self) -> Money:
        return self.tax - self.promotion_tax

    @property
    def net_shipping_tax(self) -> Money:
        return self.shipping_tax - self.shipping_discount_tax


def _quantity(raw: Json, path: str) -> int:
    q = _required(raw, "QuantityOrdered", path)
    if isinstance(q, bool) or not isinstance(q, int) or q <= 0:
        raise MappingError(_at(path, "QuantityOrdered"), f"expected a positive integer, got {q!r}")
    return q


def _unit_price(total: Money, quantity: int, path: str) -> Money:
    unit = total.amount / quantity
    try:
        return Money(amount=unit, currency=total.currency)
    except ValidationError:
        raise MappingError(
            _at(path, "ItemPrice"), f"{total} is not {quantity} x a price in {total.currency} minor units"
        ) from None


def _tax_lines(amount: Money, base: Money, jurisdiction: str | None, inclusive: bool) -> list[TaxLine]:
    """The tax on ``base`` (which includes it when ``inclusive``), rate derived."""
    if amount.is_zero:
        return []
    rate = _rate(amount, base - amount if inclusive else base)
    return [TaxLine(title="Tax", rate=rate, amount=amount, jurisdiction=jurisdiction)]


def _inclusive(stated: Money, figures: list[_Item]) -> bool:
    """Whether the prices include tax: ``OrderTotal`` says which way the figures add up."""
    cur = stated.currency
    before_tax = Money.sum((f.price - f.promotion + f.shipping - f.shipping_discount for f in figures), cur)
    tax = Money.sum((f.net_tax + f.net_shipping_tax for f in figures), cur)
    if stated == before_tax + tax:
        return False
    if stated == before_tax:
        return True
    raise MappingError(
        "OrderTotal.Amount",
        f"is {stated} but the items (prices - promotions + shipping) add up to {before_tax + tax} with"
        f" tax {tax}, or {before_tax} with tax included",
    )


def _address(raw: Json, path: str) -> Address:
    country = _text(raw, "CountryCode", path)
    if country is None:
        raise MappingError(_at(path, "CountryCode"), "missing")
    return _build(
        path,
        Address,
        name=_text(raw, "Name", path),
        company=_text(raw, "CompanyName", path),
        line1=_text(raw, "AddressLine1", path) or "",
        line2=" ".join(p for p in (_text(raw, "AddressLine2", path), _text(raw, "AddressLine3", path)) if p)
        or None,
        city=_text(raw, "City", path) or "",
        region=_text(raw, "StateOrRegion", path),
        postal_code=_text(raw, "PostalCode", path),
        country=country.upper(),
        phone=_text(raw, "Phone", path),
    )


def _customer(order: Json) -> Customer:
    buyer = _obj(order.get("BuyerInfo") or {}, "BuyerInfo")
    name = _text(buyer, "BuyerName", "BuyerInfo")
    first, _, last = (name or "").partition(" ")
    return _build(
        "BuyerInfo.BuyerEmail",
        Customer,
        email=_text(buyer, "BuyerEmail", "BuyerInfo"),
        first_name=first or None,
        last_name=last or None,
        guest=True,
    )


def order_from_amazon(order: dict[str, Any], items: list[dict[str, Any]], channel: str = "amazon") -> Order:
    """Map one ``getOrders``/``getOrder`` order and its ``getOrderItems`` items to a canonical Order.

    Raises :class:`MappingError` with the path of the first problem (``OrderTotal.Amount``,
    ``OrderItems[1].ItemPrice``): a missing or malformed field, something the canonical order
    cannot hold, or figures that do not add up."""
    try:
        return _map(_obj(order, ""), items, channel)
    except ValidationError as err:
        raise MappingError("", f"an amount is out of range: {_why(err)}") from None


def _map(order: Json, raw_items: list[dict[str, Any]], channel: str) -> Order:
    external_id = _text(order, "AmazonOrderId", "")
    if external_id is None:
        raise MappingError("AmazonOrderId", "missing")
    stated_total = _money(order, "OrderTotal", "", None)
    if stated_total is None:
        raise MappingError("OrderTotal", "missing")
    currency = stated_total.currency
    try:
        minor_units(currency)
    except ValueError as err:
        raise MappingError("OrderTotal.CurrencyCode", str(err)) from None
    items = _objects({"OrderItems": raw_items}, "OrderItems", "")
    if not items:
        raise MappingError("OrderItems", "an order needs at least one item")
    figures = [_Item(raw, _at("OrderItems", i), currency) for i, raw in enumerate(items)]
    facilitated = any(isinstance(raw.get("TaxCollection"), dict) for raw in items)
    jurisdiction = "marketplace_facilitator" if facilitated else None

    inclusive = _inclusive(stated_total, figures)
    promotions = Money.sum((f.promotion for f in figures), currency)
    shipping_discount = Money.sum((f.shipping_discount for f in figures), currency)
    promo_ids = sorted({str(p) for raw in items for p in (raw.get("PromotionIds") or []) if p})
    discounts: list[OrderDiscount] = []
    promo_index = ship_index = None
    if not promotions.is_zero:
        promo_index = len(discounts)
        discounts.append(
            OrderDiscount(
                kind="automatic",
                title="Amazon promotion" + (f" {', '.join(promo_ids)}" if promo_ids else ""),
                value_type="fixed_amount",
                value=promotions.amount,
            )
        )
    if not shipping_discount.is_zero:
        ship_index = len(discounts)
        discounts.append(
            OrderDiscount(
                kind="automatic",
                title="Amazon shipping promotion",
                value_type="fixed_amount",
                value=shipping_discount.amount,
                target="shipping_line",
            )
        )

    lines: list[OrderLine] = []
    for i, (raw, f) in enumerate(zip(items, figures, strict=True)):
        p = _at("OrderItems", i)
        quantity = _quantity(raw, p)
        line_id = raw.get("OrderItemId")
        if not isinstance(line_id, str) or not line_id.strip():
            raise MappingError(_at(p, "OrderItemId"), "missing")
        allocations = (
            [DiscountAllocation(amount=f.promotion, discount_index=promo_index)]
            if not f.promotion.is_zero
            else []
        )
        lines.append(
            _build(
                p,
                OrderLine,
                line_id=line_id.strip(),
                sku=_text(raw, "SellerSKU", p),
                title=_text(raw, "Title", p) or _text(raw, "ASIN", p) or line_id,
                quantity=quantity,
                unit_price=_unit_price(f.price, quantity, p),
                discount_allocations=allocations,
                tax_lines=_tax_lines(f.net_tax, f.price - f.promotion, jurisdiction, inclusive),
            )
        )

    shipping_price = Money.sum((f.shipping for f in figures), currency)
    shipping_tax = Money.sum((f.net_shipping_tax for f in figures), currency)
    shipping_lines: list[ShippingLine] = []
    if not shipping_price.is_zero or not shipping_tax.is_zero:
        level = (
            _text(order, "ShipServiceLevel", "")
            or _text(order, "ShipmentServiceLevelCategory", "")
            or "Shipping"
        )
        shipping_lines.append(
            ShippingLine(
                code=level,
                title=level,
                price=shipping_price,
                discount_allocations=(
                    [DiscountAllocation(amount=shipping_discount, discount_index=ship_index)]
                    if not shipping_discount.is_zero
                    else []
                ),
                tax_lines=_tax_lines(
                    shipping_tax, shipping_price - shipping_discount, jurisdiction, inclusive
                ),
            )
        )
    elif not shipping_discount.is_zero:
        raise MappingError("OrderItems", f"a shipping discount of {shipping_discount} without shipping")

    subtotal = Money.sum((ln.subtotal for ln in lines), currency)
    discount_total = promotions + shipping_discount
    tax_total = Money.sum((ln.tax for ln in lines), currency) + shipping_tax
    total = stated_total

    method: PaymentMethod = "cash_on_delivery" if order.get("PaymentMethod") == "COD" else "other"
    payments = (
        []
        if total.is_zero
        else [Payment(managed_by="channel", method=method, gateway="amazon", amount=total)]
    )
    shipping_address = order.get("ShippingAddress")
    try:
        return Order(
            channel=channel,
            external_id=external_id,
            name=external_id,
            placed_at=parse_time(_required(order, "PurchaseDate", ""), "PurchaseDate"),
            currency=currency,
            taxes_included=inclusive,
            customer=_customer(order),
            shipping_address=(
                _address(_obj(shipping_address, "ShippingAddress"), "ShippingAddress")
                if shipping_address is not None
                else None
            ),
            lines=lines,
            shipping_lines=shipping_lines,
            discounts=discounts,
            payments=payments,
            totals=OrderTotals(
                subtotal=subtotal,
                discount_total=discount_total,
                shipping_total=shipping_price,
                tax_total=tax_total,
                total=total,
            ),
            tags=["amazon-prime"] if order.get("IsPrime") is True else [],
        )
    except ValidationError as err:
        raise MappingError("", f"not a valid order: {_why(err)}") from None
