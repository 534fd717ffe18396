"""The canonical model: one vocabulary between every pair of systems.

Bump ``SCHEMA_VERSION`` (major) for a breaking change: a removed or renamed field or a
narrowed type. ``tests/test_schema_compat.py`` holds the committed schema to that rule.
"""

from canonical.billing import InvoiceAmounts, InvoiceLine, invoice_for_digital, invoice_for_shipment
from canonical.events import OrderCancelRequested, OrderEvent, OrderPlaced, ShipmentReported, TrackingUpdated
from canonical.fulfillment import (
    ChannelFulfillment,
    FulfillmentLine,
    FulfillmentRequest,
    Shipment,
    ShipmentLine,
    TrackingEvent,
    TrackingStatus,
)
from canonical.inventory import ChannelAvailability, InventoryEvent, MovementKind, StockPosition
from canonical.money import CurrencyMismatchError, Money, allocate, minor_units
from canonical.order import (
    DiscountAllocation,
    Order,
    OrderDiscount,
    OrderLine,
    OrderTotals,
    Payment,
    ShippingLine,
    TaxLine,
)
from canonical.party import Address, Customer, normalise_email, normalise_phone
from canonical.state import Acceptance, Attention, OperatorAction, OrderState, OrderStatus, StepRecord

SCHEMA_VERSION = "1.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "Acceptance",
    "Address",
    "Attention",
    "ChannelAvailability",
    "ChannelFulfillment",
    "CurrencyMismatchError",
    "Customer",
    "DiscountAllocation",
    "FulfillmentLine",
    "FulfillmentRequest",
    "InventoryEvent",
    "InvoiceAmounts",
    "InvoiceLine",
    "Money",
    "MovementKind",
    "OperatorAction",
    "Order",
    "OrderCancelRequested",
    "OrderDiscount",
    "OrderEvent",
    "OrderLine",
    "OrderPlaced",
    "OrderState",
    "OrderStatus",
    "OrderTotals",
    "Payment",
    "Shipment",
    "ShipmentLine",
    "ShipmentReported",
    "ShippingLine",
    "StepRecord",
    "StockPosition",
    "TaxLine",
    "TrackingEvent",
    "TrackingStatus",
    "TrackingUpdated",
    "allocate",
    "invoice_for_digital",
    "invoice_for_shipment",
    "minor_units",
    "normalise_email",
    "normalise_phone",
]
