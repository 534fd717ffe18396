"""The ERP port: what OrderToCash needs from a system of record."""

from __future__ import annotations

from typing import Protocol

from canonical import Address, Customer, InvoiceAmounts, Order, Shipment
from canonical.documents import (
    CancelAck,
    CreditMemoAck,
    CustomerRef,
    InvoiceAck,
    ReturnReceiptAck,
    RmaAck,
    RmaLine,
    SalesOrderAck,
)
from canonical.returns import DispositionLine


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

    async def update_sales_order(
        self, erp_order_id: str, order: Order, idempotency_key: str
    ) -> SalesOrderAck:
        """Apply a channel's edit before release: each line's new quantity (reductions release
        their backorders first, then their open allocations; a line missing from ``order`` goes
        to zero) and its new amounts. Refuses (PermanentError) an order that shipped or was
        cancelled (``already_shipped``, ``order_cancelled``) and what only a person can decide:
        an increase or a new line (``edit_not_supported``). Idempotent on the key."""
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

    async def authorize_return(
        self, erp_order_id: str, return_key: str, lines: list[RmaLine], idempotency_key: str
    ) -> RmaAck:
        """Authorize a return (RMA) against the sales order.

        Refuses with PermanentError(reason='not_returnable') a line whose quantity exceeds what was
        shipped (invoiced) minus what open, received or credited RMAs already took, saying the
        figures. Idempotent on the key: a replay returns the same RMA."""
        ...

    async def receive_return(
        self, rma_id: str, lines: list[DispositionLine], idempotency_key: str
    ) -> ReturnReceiptAck:
        """Record what came back: restocked units go back on hand at their location (a
        return_restock movement in the stock journal, so channels hear of it); damaged units are
        written off (a GL entry at cost). Idempotent on the key."""
        ...

    async def post_credit_memo(
        self, rma_id: str, amounts: InvoiceAmounts, idempotency_key: str
    ) -> CreditMemoAck:
        """Post the credit memo (and its GL entries: revenue, tax and shipping reversed against the
        receivable). Idempotent on the key; one credit memo per RMA."""
        ...

    async def close_return(self, rma_id: str, reason: str, idempotency_key: str) -> RmaAck:
        """Close an RMA that will not be received (expired, cancelled): its quantities become
        returnable again. Refuses (PermanentError reason='rma_received') once goods were received."""
        ...
