"""What the ledger would refuse anyway, refused at the door (the events API and the WMS webhook)
instead of parking an InventoryAdjustment workflow for an operator."""

from __future__ import annotations

from canonical import InventoryEvent

MAX_QUANTITY = 1_000_000_000
RESERVED_PREFIXES = ("erp:", "import:")


def refusal(event: InventoryEvent) -> tuple[str, str] | None:
    """The field at fault and why ``event`` cannot be applied, or None."""
    if abs(event.quantity) > MAX_QUANTITY:
        return "quantity", f"quantity {event.quantity} is beyond {MAX_QUANTITY:,}"
    if event.event_id.startswith(RESERVED_PREFIXES):
        return "event_id", "event ids starting with erp: or import: are the ledger's own"
    if event.kind == "transfer" and event.to_location == event.location:
        return "to_location", "a transfer needs two different locations"
    return None
