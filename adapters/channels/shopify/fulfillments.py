"""Shopify ``fulfillments/create`` and ``fulfillments/update`` -> a canonical ChannelFulfillment
(contracts/shopify.md, "Fulfillment object").

Each fulfilled line item is a shipment line (the Shopify line item id is the canonical line
id, as in the order mapping); ``tracking_numbers`` falls back to the single
``tracking_number`` older payloads carry. Lines that need no shipping (gift cards, digital
goods) are kept: the workflow bills only what it expected to ship.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

from adapters.channels.errors import MappingError
from adapters.channels.payload import Json
from adapters.channels.payload import at as _at
from adapters.channels.payload import build as _build
from adapters.channels.payload import ident as _ident
from adapters.channels.payload import obj as _obj
from adapters.channels.payload import objects as _list
from adapters.channels.payload import quantity as _quantity
from adapters.channels.payload import text as _text
from adapters.channels.payload import timestamp as _when
from canonical import ChannelFulfillment, ShipmentLine
from canonical.fulfillment import ChannelFulfillmentStatus

STATUSES: frozenset[str] = frozenset(get_args(ChannelFulfillmentStatus))


def order_key(order_id: str) -> str:
    return f"shopify-{order_id}"


def _tracking(payload: Json) -> list[str]:
    numbers = payload.get("tracking_numbers")
    if numbers is None:
        single = _text(payload, "tracking_number", "")
        return [single] if single else []
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        raise MappingError("tracking_numbers", "expected a list of strings")
    return [n.strip() for n in numbers if n.strip()]


def fulfillment_from_shopify(raw: Any) -> ChannelFulfillment:
    """Map a Shopify Fulfillment (webhook body) to the canonical model, or raise MappingError
    naming the field."""
    payload = _obj(raw, "")
    status = _text(payload, "status", "")
    if status is None:
        raise MappingError("status", "missing")
    if status not in STATUSES:
        raise MappingError("status", f"expected one of {sorted(STATUSES)}, got {status!r}")
    lines: list[ShipmentLine] = []
    for i, li in enumerate(_list(payload, "line_items", "")):
        path = _at("line_items", i)
        lines.append(
            _build(
                path,
                ShipmentLine,
                line_id=_ident(li, "id", path),
                sku=_text(li, "sku", path) or "",
                quantity=_quantity(li, path),
            )
        )
    if not lines:
        raise MappingError("line_items", "a fulfillment ships at least one line item")
    when = _when(payload, "updated_at", "") or _when(payload, "created_at", "") or datetime.now(UTC)
    location = payload.get("location_id")
    return _build(
        "",
        ChannelFulfillment,
        fulfillment_id=_ident(payload, "id", ""),
        order_key=order_key(_ident(payload, "order_id", "")),
        name=_text(payload, "name", ""),
        status=status,
        shipment_status=_text(payload, "shipment_status", ""),
        location=None if isinstance(location, bool) or location is None else str(location),
        lines=lines,
        carrier=_text(payload, "tracking_company", ""),
        service=_text(payload, "service", ""),
        tracking_numbers=_tracking(payload),
        occurred_at=when,
    )
