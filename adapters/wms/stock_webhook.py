"""The builtin warehouse's stock webhooks: ``inventory.adjusted`` and ``inventory.counted``.

Posted to the same path as shipments (``POST /webhooks/wms/{name}``, same signature), told apart
by ``type``. Each maps to one canonical ``InventoryEvent`` for the ledger; the ledger's event id
is ``wms:<name>:<event_id>``, so two warehouses' ids never collide with each other or with other
sources (ids are global in the ledger, docs/inventory.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.signing import describe_errors
from canonical import InventoryEvent

__all__ = [
    "EVENT_INVENTORY_ADJUSTED",
    "EVENT_INVENTORY_COUNTED",
    "INVENTORY_EVENTS",
    "InventoryWebhook",
    "ledger_event_id",
    "parse_inventory",
]

EVENT_INVENTORY_ADJUSTED = "inventory.adjusted"
EVENT_INVENTORY_COUNTED = "inventory.counted"
INVENTORY_EVENTS = frozenset({EVENT_INVENTORY_ADJUSTED, EVENT_INVENTORY_COUNTED})

# What a warehouse may tell the ledger. Reservations, shipments and POS sales come from the ERP,
# orders and channels: a warehouse sending them would count them twice.
WmsAdjustmentKind = Literal["receipt", "adjustment", "transfer"]


class InventoryWebhook(BaseModel):
    """Body of ``inventory.adjusted`` (a receipt, a signed adjustment, a transfer) or
    ``inventory.counted`` (a cycle count: ``quantity`` is the counted on hand). Unknown fields
    are ignored (forward compatible)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    event_id: str = Field(min_length=1, max_length=120, description="dedupe key; stable across retries")
    type: Literal["inventory.adjusted", "inventory.counted"]
    kind: WmsAdjustmentKind | None = Field(None, description="inventory.adjusted only")
    sku: str = Field(min_length=1, max_length=128)
    location: str = Field(min_length=1, max_length=64)
    to_location: str | None = Field(None, min_length=1, max_length=64, description="a transfer's destination")
    quantity: int
    reason: str | None = Field(None, max_length=200, description="the warehouse's reason code or document")
    occurred_at: AwareDatetime

    @model_validator(mode="after")
    def _kind_matches_type(self) -> InventoryWebhook:
        if self.type == EVENT_INVENTORY_ADJUSTED and self.kind is None:
            raise ValueError("inventory.adjusted needs a kind (receipt, adjustment or transfer)")
        if self.type == EVENT_INVENTORY_COUNTED and self.kind is not None:
            raise ValueError("inventory.counted is a cycle count; it takes no kind")
        return self

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


def ledger_event_id(warehouse: str, event_id: str) -> str:
    return f"wms:{warehouse}:{event_id}"


def parse_inventory(raw: bytes, warehouse: str) -> InventoryEvent:
    """Map a stock webhook of ``warehouse`` to a canonical InventoryEvent; ValueError otherwise."""
    try:
        hook = InventoryWebhook.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid builtin WMS stock webhook: {describe_errors(exc)}") from None
    try:
        return InventoryEvent(
            event_id=ledger_event_id(warehouse, hook.event_id),
            kind=hook.kind or "cycle_count",
            sku=hook.sku,
            location=hook.location,
            quantity=hook.quantity,
            to_location=hook.to_location,
            source=f"wms:{warehouse}",
            reference=hook.reason,
            occurred_at=hook.occurred_at,
        )
    except ValidationError as exc:
        raise ValueError(
            f"builtin WMS stock webhook does not map to a stock event: {describe_errors(exc)}"
        ) from None
