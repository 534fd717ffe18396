"""Order events: what happens to an order, from whichever system it comes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from canonical.base import Canonical
from canonical.fulfillment import Shipment, TrackingEvent
from canonical.order import Order


class OrderPlaced(Canonical):
    type: Literal["order_placed"] = "order_placed"
    order: Order


class OrderCancelRequested(Canonical):
    type: Literal["order_cancel_requested"] = "order_cancel_requested"
    order_key: str
    reason: str
    source: Literal["channel", "api", "operator"]
    requested_at: datetime


class ShipmentReported(Canonical):
    type: Literal["shipment_reported"] = "shipment_reported"
    shipment: Shipment


class TrackingUpdated(Canonical):
    type: Literal["tracking_updated"] = "tracking_updated"
    event: TrackingEvent


OrderEvent = Annotated[
    OrderPlaced | OrderCancelRequested | ShipmentReported | TrackingUpdated,
    Field(discriminator="type"),
]
