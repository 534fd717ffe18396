"""Inputs of ReturnToRefund: the request and the return policy of its channel."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from canonical.returns import ReturnRequest, ShippingRefund
from orchestration.models import ProcessingPolicy


class ReturnPolicy(BaseModel):
    """The channel's return rules, resolved from settings by whoever starts the workflow."""

    model_config = ConfigDict(extra="forbid")

    processing: ProcessingPolicy = ProcessingPolicy()
    window_days: float = Field(30.0, description="returns accepted until this many days after delivery")
    receipt_timeout_s: float = Field(
        30 * 24 * 3600.0, description="an RMA not received within this expires and closes"
    )
    refund_on_first_scan: bool = Field(
        False, description="refund when the carrier first scans the return parcel, not on receipt"
    )
    refund_shipping: ShippingRefund = "when_fully_returned"
    return_label: bool = Field(True, description="buy a prepaid return label from the carrier")
    default_location: str = Field(
        "default", description="where returns go when the order's location is unknown"
    )


class ReturnInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request: ReturnRequest
    policy: ReturnPolicy = ReturnPolicy()
    correlation_id: str
