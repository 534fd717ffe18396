"""Inputs and operator requests of the order workflows (pydantic, carried by the data converter)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from canonical import Address, Order


class ProcessingPolicy(BaseModel):
    """Timings and retry limits, set by whoever starts the workflow (settings in production,
    short values in tests) so the workflow itself stays deterministic."""

    model_config = ConfigDict(extra="forbid")

    activity_timeout_s: float = 30.0
    max_attempts: int = 8
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    shipping_sla_s: float = 2 * 24 * 3600.0
    hold_above: dict[str, Decimal] = Field(
        default_factory=dict,
        description="per currency: orders whose total reaches this wait for an operator's approval",
    )
    # False when absent: inputs of workflows started before the check existed mean "no check".
    address_check: bool = Field(
        default=False, description="check the ship-to address first; a failure waits for an operator"
    )
    # False when absent, as for every workflow started before channels could fulfil.
    channel_fulfils: bool = Field(
        default=False,
        description="the channel ships the order itself: nothing is released to a warehouse; the"
        " channel's fulfillments are the shipments",
    )


class OrderToCashInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: Order
    policy: ProcessingPolicy = ProcessingPolicy()
    correlation_id: str


class OperatorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    reference: str | None = None


class AddressEdit(BaseModel):
    """An operator's correction of the ship-to address (e.g. after a failed address check)."""

    model_config = ConfigDict(extra="forbid")

    operator: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    address: Address


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1)
    source: Literal["channel", "api", "operator"]
    operator: str | None = None
