"""Documents the platform exchanges with ERP, tax, payment, WMS and carrier systems.

They are what activities return to workflows, so they live in the canonical vocabulary:
workflows never see a vendor's shapes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from canonical.base import Canonical
from canonical.money import Money


class CustomerRef(Canonical):
    customer_id: str
    created: bool = Field(description="False when an existing customer was matched")
    matched_on: Literal["external_id", "email", "phone", "new"]


class Allocation(Canonical):
    location: str
    line_id: str
    sku: str
    quantity: int = Field(gt=0)


class BackorderLine(Canonical):
    line_id: str
    sku: str
    quantity: int = Field(gt=0)


class SalesOrderAck(Canonical):
    erp_order_id: str
    allocations: list[Allocation] = []
    backordered: list[BackorderLine] = []
    created: bool = Field(description="False when the same channel order already existed (idempotent replay)")


class InvoiceAck(Canonical):
    invoice_id: str
    total: Money


class CancelAck(Canonical):
    erp_order_id: str
    released: list[Allocation] = []
    status: Literal["cancelled", "partially_cancelled", "already_cancelled"]


class TaxLineQuote(Canonical):
    line_id: str
    rate: Decimal
    tax: Money
    jurisdiction: str


class TaxQuote(Canonical):
    document_code: str
    lines: list[TaxLineQuote]
    shipping_tax: Money
    total_tax: Money


class TaxCommit(Canonical):
    document_code: str
    committed: Money


class TaxVoid(Canonical):
    document_code: str
    status: Literal["voided", "already_voided", "not_found"]


class Authorization(Canonical):
    authorization_id: str
    amount: Money
    status: Literal["authorized", "captured", "partially_captured", "voided"]


class Capture(Canonical):
    capture_id: str
    authorization_id: str
    amount: Money


class PaymentVoid(Canonical):
    authorization_id: str
    voided: Money = Field(description="the uncaptured amount released")


class PaymentRefund(Canonical):
    refund_id: str
    capture_id: str
    amount: Money


class FulfillmentAck(Canonical):
    fulfillment_id: str
    location: str
    status: Literal["released", "picking", "packed", "shipped", "cancelled"]


class FulfillmentCancel(Canonical):
    fulfillment_id: str
    cancelled: bool
    status: str = Field(description="the fulfillment's status after the request")


class Label(Canonical):
    tracking_number: str
    carrier: str
    service: str
    label_url: str
    created_at: datetime


class ChannelAck(Canonical):
    channel: str
    reference: str = Field(description="the channel's id for what was recorded (fulfillment, refund)")
