"""The builtin warehouse's webhooks: its own payload formats, signature check, canonical mapping.

Each format is defined once (``ShipmentWebhook``, ``ReturnReceivedWebhook``): the simulator
serialises it, the API parses it; both go to the same path and differ by ``type``. Shipments
are deduplicated on ``Shipment.shipment_id``, return receipts on ``ReturnReceipt.receipt_id``;
every redelivery repeats them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from adapters.signing import SIGNATURE_HEADER, describe_errors, verify_signature
from canonical import Shipment, ShipmentLine
from canonical.returns import ReceiptLine, ReturnReceipt

__all__ = [
    "EVENT_RETURN_RECEIVED",
    "EVENT_SHIPPED",
    "SIGNATURE_HEADER",
    "WEBHOOK_PATH",
    "ReturnReceivedWebhook",
    "ReturnReceivedWebhookLine",
    "ShipmentWebhook",
    "ShipmentWebhookLine",
    "parse_return_receipt",
    "parse_shipment",
    "shipment_id_for",
    "verify_signature",
    "webhook_type",
]

WEBHOOK_PATH = "/webhooks/wms/builtin"
EVENT_SHIPPED = "shipment.shipped"
EVENT_RETURN_RECEIVED = "return.received"


def webhook_type(raw: bytes) -> str | None:
    """The ``type`` of a builtin-WMS webhook body, or None when it has none (then it is parsed as
    a shipment, whose parser says what is wrong)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    kind = body.get("type") if isinstance(body, dict) else None
    return kind if isinstance(kind, str) else None


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


class ReturnReceivedWebhookLine(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    line_id: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    condition: Literal["resellable", "damaged"] = "resellable"


class ReturnReceivedWebhook(BaseModel):
    """``POST /webhooks/wms/builtin`` body of type ``return.received``: what the warehouse found
    in a return parcel. Unknown fields are ignored (forward compatible)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    event_id: str = Field(min_length=1, description="dedupe key of the delivery; stable across retries")
    type: str = Field(description="'return.received'")
    receipt_id: str = Field(min_length=1, max_length=200, description="the warehouse's receipt; business key")
    return_key: str = Field(min_length=1, max_length=255, description="<channel>-<return id>")
    rma_id: str | None = None
    inbound_id: str | None = None
    location: str = Field(min_length=1)
    lines: list[ReturnReceivedWebhookLine] = Field(min_length=1)
    received_at: AwareDatetime

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


def parse_return_receipt(raw: bytes) -> ReturnReceipt:
    """Map a builtin-WMS ``return.received`` webhook to a canonical ReturnReceipt; ValueError otherwise."""
    try:
        hook = ReturnReceivedWebhook.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid builtin WMS return receipt webhook: {describe_errors(exc)}") from None
    if hook.type != EVENT_RETURN_RECEIVED:
        raise ValueError(
            f"builtin WMS webhook type {hook.type!r} is not a return receipt"
            f" (expected {EVENT_RETURN_RECEIVED!r})"
        )
    try:
        return ReturnReceipt(
            receipt_id=hook.receipt_id,
            return_key=hook.return_key,
            location=hook.location,
            lines=[
                ReceiptLine(line_id=ln.line_id, sku=ln.sku, quantity=ln.quantity, condition=ln.condition)
                for ln in hook.lines
            ],
            received_at=hook.received_at,
        )
    except ValidationError as exc:
        raise ValueError(
            f"builtin WMS return receipt webhook does not map to a receipt: {describe_errors(exc)}"
        ) from None
