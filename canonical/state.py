"""An order's state as the platform sees it: what `retail orders show --json` prints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from canonical.fulfillment import Shipment
from canonical.money import Money

OrderStatus = Literal[
    "Received",
    "Processing",
    "AwaitingShipment",
    "PartiallyShipped",
    "Shipped",
    "Delivered",
    "Completed",
    "NeedsAttention",
    "Cancelling",
    "Cancelled",
]

OperatorActionKind = Literal["retry", "skip", "cancel", "approve", "edit_address"]


class OperatorAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: OperatorActionKind
    operator: str
    reason: str
    reference: str | None = None
    at: datetime
    step: str | None = None


class Attention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str
    step: str
    message: str
    since: datetime


class StepRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: str
    status: Literal["done", "skipped", "failed"]
    at: datetime
    detail: str | None = None


class OrderState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_key: str
    workflow_id: str
    channel: str
    external_id: str
    name: str | None
    status: OrderStatus
    erp_order_id: str | None = None
    erp_backend: str | None = Field(default=None, description="the ERP adapter holding the order")
    customer_id: str | None = None
    tax_document: str | None = None
    authorization_id: str | None = None
    total: Money
    channel_paid: Money | None = Field(default=None, description="paid at the channel (not captured by us)")
    captured: Money
    invoiced: Money
    refunded: Money
    voided: Money
    shipments: list[Shipment] = []
    tracking: dict[str, str] = {}
    fulfillments: dict[str, str] = Field(default={}, description="warehouse order id -> location")
    invoices: list[str] = []
    backordered: dict[str, int] = {}
    attention: Attention | None = None
    actions: list[OperatorAction] = []
    steps: list[StepRecord] = []
    waiting_for: str | None = None


class Acceptance(BaseModel):
    """What a synchronous order request waits for: the ERP's acceptance, or why it is not coming
    soon (the order needs a person, or it ended)."""

    model_config = ConfigDict(extra="forbid")

    status: OrderStatus
    erp_order_id: str | None = None
    attention_reason: str | None = None
