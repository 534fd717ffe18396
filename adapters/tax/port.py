"""The tax port: quote at order time, commit per invoice, void on cancellation."""

from __future__ import annotations

from typing import Protocol

from canonical import InvoiceAmounts, Order
from canonical.documents import TaxCommit, TaxQuote, TaxReversal, TaxVoid


class TaxPort(Protocol):
    name: str

    async def quote(self, order: Order, document_code: str) -> TaxQuote:
        """Tax per line and for shipping, rounded per line (an uncommitted estimate)."""
        ...

    async def requote(self, order: Order, document_code: str) -> TaxQuote:
        """Replace the document's uncommitted quote with one for the edited order (lines,
        ship-to). Refuses once tax was committed on it (PermanentError 'document_committed')."""
        ...

    async def commit(self, document_code: str, invoice_code: str, amounts: InvoiceAmounts) -> TaxCommit:
        """Commit the tax of one invoice (reported to the authority). Idempotent on invoice_code."""
        ...

    async def void(self, document_code: str) -> TaxVoid:
        """Void the order's uncommitted quote."""
        ...

    async def reverse(self, document_code: str, credit_code: str, amounts: InvoiceAmounts) -> TaxReversal:
        """Report the tax of a credit memo as given back (AvaTax: a ReturnInvoice document).
        Idempotent on credit_code; refuses (PermanentError) more than the order committed."""
        ...
