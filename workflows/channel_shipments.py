"""A channel's own fulfillment as the order's shipments (``RETAIL_FULFILLED_BY_CHANNEL``).

Pure functions, used by OrderToCash (deterministic: no I/O, no clock).

The ERP allocated each line to locations and reserved the stock there; the invoice takes the
units out of the location it names. So a fulfillment the channel reports is split over the
line's allocations, filling each (line, location) in allocation order up to what it still
holds: one shipment per location. Units beyond what was allocated go to the line's first
location, where the billing check refuses them with its reason; lines the platform does not
ship (gift cards, digital goods, lines edited away) are left out and named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from canonical import ChannelFulfillment, Shipment, ShipmentLine
    from canonical.documents import Allocation

# Shopify's shipment_status values (contracts/shopify.md) -> the canonical tracking status.
CHANNEL_TRACKING = {
    "label_printed": "label_created",
    "label_purchased": "label_created",
    "confirmed": "label_created",
    "in_transit": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "attempted_delivery": "out_for_delivery",
    "ready_for_pickup": "out_for_delivery",
    "delivered": "delivered",
    "failure": "exception",
}


@dataclass(frozen=True)
class ChannelShipments:
    shipments: list[Shipment]
    not_shipped_here: list[str]  # line ids the platform does not ship


def shipment_id(channel: str, f: ChannelFulfillment) -> str:
    return f"{channel}-fulfillment-{f.fulfillment_id}"


def split_fulfillment(
    channel: str,
    f: ChannelFulfillment,
    allocations: Sequence[Allocation],
    shipped: Sequence[Shipment],
    expected: dict[str, int],
) -> ChannelShipments:
    """The shipments, one per allocated location, that ``f`` stands for."""
    held: dict[tuple[str, str], int] = {}
    order: list[tuple[str, str]] = []
    for a in allocations:
        k = (a.line_id, a.location)
        if k not in held:
            order.append(k)
        held[k] = held.get(k, 0) + a.quantity
    for s in shipped:
        for ln in s.lines:
            k = (ln.line_id, s.location)
            if k in held:
                held[k] -= ln.quantity
    # location -> line id -> (the line, units from this location)
    by_location: dict[str, dict[str, tuple[ShipmentLine, int]]] = {}

    def put(location: str, ln: ShipmentLine, units: int) -> None:
        lines = by_location.setdefault(location, {})
        _, before = lines.get(ln.line_id, (ln, 0))
        lines[ln.line_id] = (ln, before + units)

    skipped: list[str] = []
    for ln in f.lines:
        if ln.line_id not in expected:
            skipped.append(ln.line_id)
            continue
        left = ln.quantity
        places = [k for k in order if k[0] == ln.line_id]
        for k in places:
            take = min(left, max(held[k], 0))
            if take <= 0:
                continue
            held[k] -= take
            left -= take
            put(k[1], ln, take)
            if left == 0:
                break
        if left > 0:  # more than was allocated: the billing check names the excess
            put(places[0][1] if places else "unallocated", ln, left)
    base = shipment_id(channel, f)
    many = len(by_location) > 1
    shipments = [
        Shipment(
            shipment_id=f"{base}@{location}" if many else base,
            order_key=f.order_key,
            location=location,
            lines=[ln.model_copy(update={"quantity": units}) for ln, units in lines.values()],
            carrier=f.carrier,
            service=f.service,
            tracking_numbers=list(f.tracking_numbers),
            shipped_at=f.occurred_at,
        )
        for location, lines in sorted(by_location.items())
    ]
    return ChannelShipments(shipments, skipped)
