"""The builtin warehouse's webhook: its own payload format, signature check, canonical mapping.

The format is defined once (``ShipmentWebhook``): the simulator serialises it, the API parses
it. Shipments are deduplicated on ``Shipment.shipment_id``, which every redelivery repeats.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from adapters.signing import SIGNATURE_HEADER, describe_errors, verify_signature
from canonical import Shipment, ShipmentLine

__all__ = [
    "EVENT_SHIPPED",
    "SIGNATURE_HEADER",
    "WEBHOOK_PATH",
    "ShipmentWebhook",
    "ShipmentWebhookLine",
    "parse_shipment",
    "shipment_id_for",
    "verify_signature",
]

WEBHOOK_PATH = "/webhooks/wms/builtin"
EVENT_SHIPPED = "shipment.shipped"


def shipment_id_for(fulfillment_id: str) -> str:
    """The builtin warehouse ships a fulfillment order in one parcel: shipment ``<FO id>-1``."""
    return f"{fulfillment_id}-1"


class ShipmentWebhookLine(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    line_id: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class ShipmentWebhook(BaseModel):
    """``POST /webhooks/wms/builtin`` body. Unknown fields are ignored (forward compatible)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    event_id: str = Field(min_length=1, description="dedupe key of the delivery; stable across retries")
    type: str = Field(description="only 'shipment.shipped' so far")
    shipment_id: str | None = Field(default=None, description="default: <fulfillment_id>-1")
    fulfillment_id: str = Field(min_length=1)
    order_key: str = Field(min_length=1)
    order_name: str | None = None
    location: str = Field(min_length=1)
    lines: list[ShipmentWebhookLine] = Field(min_length=1)
    carrier: str | None = None
    service: str | None = None
    tracking_numbers: list[str] = []
    shipped_at: AwareDatetime

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


def parse_shipment(raw: bytes) -> Shipment:
    """Map a builtin-WMS shipment webhook to a canonical Shipment; ValueError when it is not one."""
    try:
        hook = ShipmentWebhook.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid builtin WMS shipment webhook: {describe_errors(exc)}") from None
    if hook.type != EVENT_SHIPPED:
        raise ValueError(
            f"builtin WMS webhook type {hook.type!r} is not supported (expected {EVENT_SHIPPED!r})"
        )
    shipped_at: datetime = hook.shipped_at
    try:
        return Shipment(
            shipment_id=hook.shipment_id or shipment_id_for(hook.fulfillment_id),
            order_key=hook.order_key,
            location=hook.location,
            fulfillment_id=hook.fulfillment_id,
            lines=[ShipmentLine(line_id=ln.line_id, sku=ln.sku, quantity=ln.quantity) for ln in hook.lines],
            carrier=hook.carrier,
            service=hook.service,
            tracking_numbers=list(hook.tracking_numbers),
            shipped_at=shipped_at,
        )
    except ValidationError as exc:
        raise ValueError(
            f"builtin WMS shipment webhook does not map to a shipment: {describe_errors(exc)}"
        ) from None
