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
    backend: str | None = Field(default=None, description="the ERP adapter that answered")


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


class RmaLine(Canonical):
    line_id: str
    sku: str | None
    quantity: int = Field(gt=0)


class RmaAck(Canonical):
    """The ERP's return authorization. ``returned_before`` is what earlier open or received
    RMAs of the same order already took, per line (the base for this return's credit shares)."""

    rma_id: str
    erp_order_id: str
    lines: list[RmaLine]
    returned_before: dict[str, int] = {}
    status: Literal["authorized", "received", "credited", "closed"]
    created: bool = Field(description="False when the same key authorized it before (idempotent replay)")


class ReturnReceiptAck(Canonical):
    rma_id: str
    restocked: int = Field(description="units back in stock (available to promise again)")
    written_off: Money = Field(description="cost written off for damaged units (zero when none)")


class CreditMemoAck(Canonical):
    credit_memo_id: str
    rma_id: str
    total: Money


class TaxReversal(Canonical):
    document_code: str
    credit_code: str
    reversed: Money = Field(description="tax given back (positive), reported to the authority")


class ReturnExpected(Canonical):
    """The warehouse's inbound notice for an RMA: it will post a receipt when the parcel arrives."""

    inbound_id: str
    location: str


class AddressCheck(Canonical):
    """The answer of an address check: ``ok``, or every reason it failed."""

    ok: bool
    reasons: list[str] = []
