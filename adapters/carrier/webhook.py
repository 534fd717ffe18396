"""The builtin carrier's tracking webhook: payload format, signature check, canonical mapping.

Tracking events are deduplicated on ``TrackingEvent.event_id``, which every redelivery repeats.
A parcel of an order names its ``order_key``; a return parcel names its ``return_key`` instead
(exactly one of the two). The canonical TrackingEvent carries either in ``order_key``: the key of
the business process the parcel belongs to; :func:`parse_tracking_target` says which it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.signing import SIGNATURE_HEADER, describe_errors, verify_signature
from canonical import TrackingEvent, TrackingStatus

__all__ = [
    "EVENT_TRACKING",
    "SIGNATURE_HEADER",
    "WEBHOOK_PATH",
    "TrackedEvent",
    "TrackingWebhook",
    "parse_tracking",
    "parse_tracking_target",
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
    order_key: str | None = Field(default=None, min_length=1, description="the order's parcel")
    return_key: str | None = Field(
        default=None, min_length=1, description="a return parcel: the return's key"
    )
    carrier: str = Field(min_length=1)
    service: str | None = None
    status: TrackingStatus
    occurred_at: AwareDatetime
    description: str | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        if (self.order_key is None) == (self.return_key is None):
            raise ValueError("exactly one of order_key and return_key is required")
        return self

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


def _names_no_subject(raw: bytes) -> bool:
    """True when the body is an object naming neither an order nor a return."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(body, dict) and body.get("order_key") is None and body.get("return_key") is None


@dataclass(frozen=True)
class TrackedEvent:
    """A tracking event and what it belongs to: an order (``return_key`` None) or a return."""

    event: TrackingEvent
    return_key: str | None


def parse_tracking(raw: bytes) -> TrackingEvent:
    """Map a builtin-carrier tracking webhook to a canonical TrackingEvent; ValueError otherwise.

    For a return parcel the event's ``order_key`` is the return key."""
    return parse_tracking_target(raw).event


def parse_tracking_target(raw: bytes) -> TrackedEvent:
    """Like :func:`parse_tracking`, saying whether the parcel is an order's or a return's."""
    try:
        hook = TrackingWebhook.model_validate_json(raw)
    except ValidationError as exc:
        # Either key may name the parcel's process; with neither, say the usual one is missing.
        missing = "order_key (or return_key): Field required; " if _names_no_subject(raw) else ""
        raise ValueError(
            f"invalid builtin carrier tracking webhook: {missing}{describe_errors(exc)}"
        ) from None
    if hook.type != EVENT_TRACKING:
        raise ValueError(
            f"builtin carrier webhook type {hook.type!r} is not supported (expected {EVENT_TRACKING!r})"
        )
    key = hook.order_key or hook.return_key
    assert key is not None  # the model requires one of them
    event = TrackingEvent(
        event_id=hook.event_id,
        order_key=key,
        tracking_number=hook.tracking_number,
        carrier=hook.carrier,
        status=hook.status,
        occurred_at=hook.occurred_at,
        description=hook.description,
    )
    return TrackedEvent(event=event, return_key=hook.return_key)
