"""Stock: movements in the one ledger, positions per location, and what a channel may sell."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import Field, model_validator

from canonical.base import Canonical

MovementKind = Literal[
    "receipt",  # goods received: on hand rises
    "adjustment",  # a signed correction of on hand (damage, found stock)
    "transfer",  # on hand moves from location to to_location
    "cycle_count",  # absolute: on hand is now `quantity`
    "reservation",  # allocated to an open order: reserved rises
    "release",  # reservation given back (cancellation)
    "shipment",  # left the warehouse: on hand and reserved fall
    "return_restock",  # a returned unit back on the shelf
    "channel_sale",  # sold at a channel's own POS/store: on hand falls
]


class InventoryEvent(Canonical):
    """One change to stock, from the ERP, the WMS, an order, a return or a channel.

    ``event_id`` is the source's own id for the change: applying the same event twice changes
    nothing the second time. ``quantity`` is a delta (signed for adjustments, positive
    otherwise), except for ``cycle_count`` where it is the counted absolute on hand."""

    event_id: str = Field(min_length=1, max_length=200)
    kind: MovementKind
    sku: str = Field(min_length=1)
    location: str = Field(min_length=1)
    quantity: int
    to_location: str | None = None
    source: str = Field(description="erp, wms, order, return, channel:<name>, operator")
    reference: str | None = None
    occurred_at: datetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind == "transfer" and not self.to_location:
            raise ValueError("a transfer needs to_location")
        if self.kind != "transfer" and self.to_location:
            raise ValueError("only a transfer has a to_location")
        if self.kind == "adjustment":
            if self.quantity == 0:
                raise ValueError("an adjustment of 0 changes nothing")
        elif self.kind == "cycle_count":
            if self.quantity < 0:
                raise ValueError("a cycle count cannot be negative")
        elif self.quantity <= 0:
            raise ValueError(f"a {self.kind} quantity must be positive")
        return self


class StockPosition(Canonical):
    sku: str
    location: str
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        """Available to promise: never below zero, even if on hand was counted under reserved."""
        return max(0, self.on_hand - self.reserved)


class ChannelAvailability(Canonical):
    """What a channel may sell: available over its mapped locations, minus its safety buffer."""

    channel: str
    sku: str
    available: int = Field(ge=0)
    locations: list[str]
    safety_buffer: int = Field(ge=0)
