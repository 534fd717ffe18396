"""Fulfilment: what the platform asks a warehouse to ship, and what it reports back."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from canonical.base import Canonical
from canonical.party import Address


class FulfillmentLine(Canonical):
    line_id: str
    sku: str
    quantity: int = Field(gt=0)


class FulfillmentRequest(Canonical):
    """One location's share of an order, released to that location's warehouse."""

    order_key: str = Field(description="<channel>-<external order id>")
    order_name: str | None = None
    location: str
    lines: list[FulfillmentLine] = Field(min_length=1)
    ship_to: Address | None = None
    shipping_method: str | None = None
    idempotency_key: str


class ShipmentLine(Canonical):
    line_id: str
    sku: str
    quantity: int = Field(gt=0)


class Shipment(Canonical):
    shipment_id: str = Field(description="the warehouse's id for this shipment; dedupe key")
    order_key: str
    location: str
    fulfillment_id: str | None = Field(default=None, description="the WMS fulfillment order it ships")
    lines: list[ShipmentLine] = Field(min_length=1)
    carrier: str | None = None
    service: str | None = None
    tracking_numbers: list[str] = []
    shipped_at: datetime
    digital: bool = Field(
        default=False,
        description="the order's digital lines, delivered at acceptance: no warehouse, no carrier",
    )


TrackingStatus = Literal["label_created", "in_transit", "out_for_delivery", "delivered", "exception"]


class TrackingEvent(Canonical):
    event_id: str = Field(description="the carrier's event id; dedupe key")
    order_key: str
    tracking_number: str
    carrier: str
    status: TrackingStatus
    occurred_at: datetime
    description: str | None = None


ChannelFulfillmentStatus = Literal["pending", "open", "success", "cancelled", "error", "failure"]


class ChannelFulfillment(Canonical):
    """A fulfillment the sales channel reports (Shopify ``fulfillments/create`` and ``/update``).

    For a channel that ships its own orders (``RETAIL_FULFILLED_BY_CHANNEL``) a successful one
    is the order's shipment; for the others it is the echo of the platform's own report, or a
    fulfillment made at the channel behind the warehouse's back (recorded for a person).
    ``shipment_status`` is the channel's delivery tracking (``delivered`` completes the order)."""

    fulfillment_id: str = Field(description="the channel's id; dedupe key")
    order_key: str
    name: str | None = None
    status: ChannelFulfillmentStatus
    shipment_status: str | None = None
    location: str | None = Field(default=None, description="the channel's location id")
    lines: list[ShipmentLine] = Field(min_length=1)
    carrier: str | None = None
    service: str | None = None
    tracking_numbers: list[str] = []
    occurred_at: datetime
