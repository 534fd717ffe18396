"""The warehouse port: one fulfillment order per location; shipments come back by webhook."""

from __future__ import annotations

from typing import Protocol

from canonical import FulfillmentRequest
from canonical.documents import FulfillmentAck, FulfillmentCancel


class WmsPort(Protocol):
    name: str

    async def release(self, request: FulfillmentRequest) -> FulfillmentAck:
        """Release the lines to the location's warehouse. Idempotent on request.idempotency_key."""
        ...

    async def cancel(self, fulfillment_id: str, reason: str) -> FulfillmentCancel:
        """Cancel if not shipped yet; cancelled=False when it already shipped."""
        ...
