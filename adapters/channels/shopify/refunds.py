"""Shopify ``refunds/create`` -> a canonical ReturnRequest (contracts/shopify.md, "Refund").

A refund made in Shopify's admin is a return the platform must book: each refunded line item
with ``restock_type`` ``return`` or ``legacy_restock`` came back to a Shopify location (restock),
``no_restock`` is money back without goods, and ``cancel`` lines were never fulfilled (the
order's cancellation, not a return). Successful ``refund`` transactions are money Shopify
already gave back: recorded as channel refunds, never refunded a second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.channels.errors import MappingError
from adapters.channels.payload import Json
from adapters.channels.payload import at as _at
from adapters.channels.payload import build as _build
from adapters.channels.payload import ident as _ident
from adapters.channels.payload import objects as _list
from adapters.channels.payload import quantity as _quantity
from adapters.channels.payload import text as _text
from adapters.channels.payload import timestamp as _when
from adapters.channels.shopify.admin import is_platform_refund
from adapters.channels.shopify.mapping import _amount
from canonical import Money
from canonical.returns import ChannelRefund, ReturnLine, ReturnRequest

RESTOCKED = frozenset({"return", "legacy_restock"})
RESTOCK_TYPES = frozenset({"return", "legacy_restock", "no_restock", "cancel"})


def _channel_refunds(payload: Json) -> list[ChannelRefund]:
    refunds: list[ChannelRefund] = []
    for i, txn in enumerate(_list(payload, "transactions", "")):
        path = _at("transactions", i)
        if txn.get("kind") != "refund" or txn.get("status") != "success":
            continue  # a failed or pending refund moved no money
        amount = _shop_money(txn, "amount", path)
        if amount is None:
            currency = _text(txn, "currency", path)
            if currency is None:
                raise MappingError(_at(path, "currency"), "missing")
            amount = _amount(txn.get("amount"), _at(path, "amount"), currency)
        refunds.append(
            _build(
                path,
                ChannelRefund,
                refund_id=_ident(txn, "id", path),
                amount=amount,
                gateway=_text(txn, "gateway", path),
                processed_at=_when(txn, "processed_at", path),
            )
        )
    return refunds


def _shop_money(d: Json, key: str, path: str) -> Money | None:
    """``<key>_set.shop_money``: the shop's currency, the books' (the bare number is a float and
    may be in the presentment currency, so it is not used)."""
    bag = d.get(f"{key}_set")
    shop = bag.get("shop_money") if isinstance(bag, dict) else None
    if not isinstance(shop, dict) or shop.get("amount") is None:
        return None
    where = _at(_at(path, f"{key}_set"), "shop_money")
    code = _text(shop, "currency_code", where)
    if code is None:
        raise MappingError(_at(where, "currency_code"), "missing")
    return _amount(shop["amount"], _at(where, "amount"), code)


def _total(amounts: list[Money | None]) -> Money | None:
    """The sum, or None when any part is missing (the platform then computes the figure)."""
    known = [a for a in amounts if a is not None]
    if not known or len(known) != len(amounts):
        return None
    return Money.sum(known, known[0].currency)


def _merged(line_id: str, got: list[tuple[int, bool, str | None, Money | None, Money | None]]) -> ReturnLine:
    """One return line per order line. Shopify may split a line's units over several refund line
    items (some restocked, some not, or two locations): their quantities and amounts add up, and
    the units count as restocked only when all of them were (never claim stock that is not back)."""
    path = f"refund_line_items[line_item_id={line_id}]"
    net = _total([n for _, _, _, n, _ in got])
    tax = _total([t for _, _, _, _, t in got])
    return _build(
        path,
        ReturnLine,
        line_id=line_id,
        sku=next((sku for _, _, sku, _, _ in got if sku), None),
        quantity=sum(q for q, _, _, _, _ in got),
        restock=all(r for _, r, _, _, _ in got),
        net=net,
        tax=tax,
    )


def _refunds_shipping(payload: Json) -> bool:
    if _list(payload, "refund_shipping_lines", ""):
        return True
    return any(adj.get("kind") == "shipping_refund" for adj in _list(payload, "order_adjustments", ""))


def return_from_shopify_refund(
    payload: dict[str, Any], channel: str = "shopify", store_locations: Mapping[str, str] | None = None
) -> ReturnRequest | None:
    """The return a Shopify refund stands for; None when there is nothing for returns to book:
    the platform's own refund echoed back (``notify_return`` records each return it refunded as
    a Shopify refund, which fires this webhook), or no fulfilled item returned (only ``cancel``
    lines, or no lines at all).

    Units restocked at one of the channel's stores (``store_locations``: Shopify location ids,
    RETAIL_SHOPIFY_STORE_LOCATIONS) move nothing in the ledger: the store's own count
    (``inventory_levels/update``) already carries them, whichever arrives first. Elsewhere
    they go back to the location the line shipped from."""
    if is_platform_refund(payload):
        return None
    refund_id = _ident(payload, "id", "")
    order_id = _ident(payload, "order_id", "")
    parts: dict[str, list[tuple[int, bool, str | None, Money | None, Money | None]]] = {}
    for i, item in enumerate(_list(payload, "refund_line_items", "")):
        path = _at("refund_line_items", i)
        restock_type = _text(item, "restock_type", path) or "no_restock"
        if restock_type not in RESTOCK_TYPES:
            raise MappingError(_at(path, "restock_type"), f"unknown restock_type {restock_type!r}")
        if restock_type == "cancel":
            continue
        at_store = str(item.get("location_id")) in (store_locations or {})
        line_item = item.get("line_item")
        sku = _text(line_item, "sku", _at(path, "line_item")) if isinstance(line_item, dict) else None
        parts.setdefault(_ident(item, "line_item_id", path), []).append(
            (
                _quantity(item, path),
                restock_type in RESTOCKED and not at_store,
                sku,
                _shop_money(item, "subtotal", path),
                _shop_money(item, "total_tax", path),
            )
        )
    lines = [_merged(line_id, got) for line_id, got in parts.items()]
    restocked = any(ln.restock for ln in lines)
    money = _channel_refunds(payload)
    if not lines:
        # Unfulfilled items refunded (restock_type cancel), or an order-level adjustment: the
        # order's own cancellation and settlement reconciliation deal with those.
        return None
    requested = _when(payload, "processed_at", "") or _when(payload, "created_at", "")
    if requested is None:
        raise MappingError("created_at", "missing")
    return _build(
        "",
        ReturnRequest,
        channel=channel,
        order_external_id=order_id,
        return_id=f"refund-{refund_id}",
        source="channel",
        lines=lines,
        reason=(_text(payload, "note", "") or f"refunded at {channel}")[:500],
        requested_at=requested,
        receipt="at_channel" if restocked else "none",
        channel_refunds=money,
        # The merchant chose in Shopify whether shipping went back; the books follow that choice.
        refund_shipping=_refunds_shipping(payload),
    )
