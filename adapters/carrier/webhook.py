"""The builtin carrier's tracking webhook: payload format, signature check, canonical mapping.

Tracking events are deduplicated on ``TrackingEvent.event_id``, which every redelivery repeats.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from adapters.signing import SIGNATURE_HEADER, describe_errors, verify_signature
from canonical import TrackingEvent, TrackingStatus

__all__ = [
    "EVENT_TRACKING",
    "SIGNATURE_HEADER",
    "WEBHOOK_PATH",
    "TrackingWebhook",
    "parse_tracking",
    "tracking_event_id",
    "verify_signature",
]

WEBHOOK_PATH = "/webhooks/carrier/builtin"
EVENT_TRACKING = "tracking.updated"


def tracking_event_id(tracking_number: str, status: str) -> str:
    """One event per parcel and status: ``1ZRC000000000042-in_transit``."""
    return f"{tracking_number}-{status}"


class TrackingWebhook(BaseModel):
    """``POST /webhooks/carrier/builtin`` body. Unknown fields are ignored (forward compatible)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    event_id: str = Field(min_length=1, description="dedupe key; stable across retries")
    type: str = Field(default=EVENT_TRACKING, description="only 'tracking.updated' so far")
    tracking_number: str = Field(min_length=1)
    order_key: str = Field(min_length=1)
    carrier: str = Field(min_length=1)
    service: str | None = None
    status: TrackingStatus
    occurred_at: AwareDatetime
    description: str | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


def parse_tracking(raw: bytes) -> TrackingEvent:
    """Map a builtin-carrier tracking webhook to a canonical TrackingEvent; ValueError otherwise."""
    try:
        hook = TrackingWebhook.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid builtin carrier tracking webhook: {describe_errors(exc)}") from None
    if hook.type != EVENT_TRACKING:
        raise ValueError(
            f"builtin carrier webhook type {hook.type!r} is not supported (expected {EVENT_TRACKING!r})"
        )
    return TrackingEvent(
        event_id=hook.event_id,
        order_key=hook.order_key,
        tracking_number=hook.tracking_number,
        carrier=hook.carrier,
        status=hook.status,
        occurred_at=hook.occurred_at,
        description=hook.description,
    )
