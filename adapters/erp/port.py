"""The ERP port: what OrderToCash needs from a system of record."""

from __future__ import annotations

from typing import Protocol

from canonical import Address, Customer, InvoiceAmounts, Order, Shipment
from canonical.documents import CancelAck, CustomerRef, InvoiceAck, SalesOrderAck


class ErpPort(Protocol):
    name: str

    async def resolve_customer(self, customer: Customer, address: Address | None) -> CustomerRef:
        """Find the customer (normalised email, then phone, then the channel's id) or create one.

        Never creates a duplicate for the same email or phone."""
        ...

    async def create_sales_order(self, order: Order, customer_id: str, idempotency_key: str) -> SalesOrderAck:
        """Create the sales order and allocate stock (available to promise across locations).

        Idempotent on (channel, external id): a replay returns the same ERP order number and
        allocations. Raises PermanentError(reason='unknown_sku') for SKUs not in the item master."""
        ...

    async def allocate_backorders(self, erp_order_id: str) -> SalesOrderAck:
        """Try again to allocate what was backordered; returns the order's new allocations."""
        ...

    async def invoice_shipment(
        self, erp_order_id: str, shipment: Shipment, amounts: InvoiceAmounts, idempotency_key: str
    ) -> InvoiceAck:
        """Record the shipment (stock leaves on hand and reserved), post the invoice and its GL
        entries. Idempotent on the key."""
        ...

    async def cancel_sales_order(self, erp_order_id: str, reason: str, idempotency_key: str) -> CancelAck:
        """Cancel what is not shipped and release its allocations."""
        ...
