"""Shopify ``inventory_levels/update`` at the channel's own stores -> ledger cycle counts.

The payload (``shared/contracts/shopify.md``, section 7) is one inventory item's ABSOLUTE
``available`` at one Shopify location: ``{inventory_item_id, location_id, available, updated_at,
admin_graphql_api_id}``. At a store location whose on-hand Shopify POS keeps
(``RETAIL_SHOPIFY_STORE_LOCATIONS``) it is a count of that store; everywhere else the platform
ignores it (docs/inventory.md, "Stores on Shopify POS").

The payload names no SKU: :class:`StoreLevel` is what the ingress keeps, and the relay makes it a
ledger event (:func:`store_count`) once it has looked the item's SKU up on Shopify.

Decisions stated once here:

* **A negative available counts as 0.** Shopify lets a location oversell; a count cannot be
  negative. The units are already sold at Shopify's till, so nothing is lost for the ledger:
  nothing is available either way, and the next update (absolute) says what is there. The
  reference keeps Shopify's figure (``available -2 (oversold): counted as 0``).
* **Event id** ``shopify:inventory:<location id>:<item id>:<updated_at UTC>:<available>``: fixed
  across redeliveries of one change. ``updated_at`` has whole seconds only, so the figure is part
  of the id: two different levels of one item within one second are two counts (both applied, in
  arrival order), not one id reused for another change.
* ``occurred_at`` is ``updated_at``: the ledger ignores a count older than the newest count of
  its position, so an update delivered late never undoes a newer one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from adapters.channels.errors import MappingError
from adapters.channels.payload import build, obj, required
from canonical import InventoryEvent

TOPIC = "inventory_levels/update"
SOURCE = "channel:shopify"
EVENT_PREFIX = "shopify:inventory:"
# Beyond any real stock figure (the events API's bound too); keeps ids and arithmetic small.
MAX_AVAILABLE = 1_000_000_000
NOT_A_STORE = (
    "not a store location: the platform publishes this location's stock; changes there are its own "
    "pushes or web orders, which arrive as orders"
)
NOT_TRACKED = "available is null: Shopify does not track this item's quantity here; nothing to count"


class StoreLevel(BaseModel):
    """Shopify's available of one inventory item at one of the channel's store locations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inventory_item_id: int = Field(gt=0)
    location_id: int = Field(gt=0)
    location: str = Field(min_length=1, max_length=100, description="the ledger location it maps to")
    available: int = Field(ge=-MAX_AVAILABLE, le=MAX_AVAILABLE, description="as Shopify reported it")
    occurred_at: datetime = Field(description="updated_at, in UTC")

    @property
    def event_id(self) -> str:
        at = self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return f"{EVENT_PREFIX}{self.location_id}:{self.inventory_item_id}:{at}:{self.available}"

    @property
    def reference(self) -> str:
        where = f"Shopify location {self.location_id}"
        if self.available < 0:
            return f"{where}: available {self.available} (oversold): counted as 0"
        return f"{where}: available {self.available}"


def _id(payload: dict[str, Any], key: str) -> int:
    value = required(payload, key, "")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise MappingError(key, f"expected a Shopify id, got {value!r}")
    return value


def location_of(payload: Any) -> int:
    """The Shopify location a level is at (MappingError naming the field otherwise)."""
    return _id(obj(payload, ""), "location_id")


def store_level(payload: Any, location: str) -> StoreLevel | None:
    """The level of an ``inventory_levels/update`` at a store location that maps to ``location``
    in the ledger; None when Shopify does not track the item's quantity (``available`` null)."""
    level = obj(payload, "")
    item, location_id = _id(level, "inventory_item_id"), _id(level, "location_id")
    available = level.get("available")
    if available is None:
        return None
    if isinstance(available, bool) or not isinstance(available, int):
        raise MappingError("available", f"expected a whole number, got {available!r}")
    if abs(available) > MAX_AVAILABLE:
        raise MappingError("available", f"{available} is beyond {MAX_AVAILABLE:,}")
    stamp = required(level, "updated_at", "")
    try:
        at = datetime.fromisoformat(stamp) if isinstance(stamp, str) and len(stamp) <= 40 else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise MappingError("updated_at", f"expected an ISO 8601 time with its offset, got {stamp!r}")
    return build(
        "",
        StoreLevel,
        inventory_item_id=item,
        location_id=location_id,
        location=location,
        available=available,
        occurred_at=at.astimezone(UTC),
    )


def store_count(level: StoreLevel, sku: str) -> InventoryEvent:
    """The ledger's cycle count for a store level whose item is ``sku`` (ValidationError when the
    SKU cannot be a ledger SKU)."""
    return InventoryEvent(
        event_id=level.event_id,
        kind="cycle_count",
        sku=sku,
        location=level.location,
        quantity=max(level.available, 0),
        source=SOURCE,
        reference=level.reference,
        occurred_at=level.occurred_at,
    )
