"""JSON Schema of the canonical models, committed as canonical/schema/canonical.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from canonical.events import OrderEvent
from canonical.fulfillment import ChannelFulfillment, FulfillmentRequest, Shipment, TrackingEvent
from canonical.inventory import ChannelAvailability, InventoryEvent, StockPosition
from canonical.order import Order
from canonical.party import Customer
from canonical.returns import ReturnReceipt, ReturnRequest, ReturnState
from canonical.state import OrderState

SCHEMA_PATH = Path(__file__).parent / "schema" / "canonical.json"

ROOTS: dict[str, Any] = {
    "Order": Order,
    "Customer": Customer,
    "FulfillmentRequest": FulfillmentRequest,
    "Shipment": Shipment,
    "TrackingEvent": TrackingEvent,
    "ChannelFulfillment": ChannelFulfillment,
    "OrderEvent": OrderEvent,
    "OrderState": OrderState,
    "InventoryEvent": InventoryEvent,
    "StockPosition": StockPosition,
    "ChannelAvailability": ChannelAvailability,
    "ReturnRequest": ReturnRequest,
    "ReturnReceipt": ReturnReceipt,
    "ReturnState": ReturnState,
}


def current_schema(version: str) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    roots: dict[str, Any] = {}
    for name, model in ROOTS.items():
        schema = TypeAdapter(model).json_schema(ref_template="#/$defs/{model}", mode="validation")
        defs.update(schema.pop("$defs", {}))
        roots[name] = schema
    for name, schema in roots.items():
        defs.setdefault(name, schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Retail Connect canonical model",
        "version": version,
        "$defs": dict(sorted(defs.items())),
    }


def dump(path: Path = SCHEMA_PATH) -> None:
    from canonical import SCHEMA_VERSION

    path.write_text(json.dumps(current_schema(SCHEMA_VERSION), indent=2, sort_keys=True) + "\n")
