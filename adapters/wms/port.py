"""The warehouse port: one fulfillment order per location; shipments come back by webhook."""

from __future__ import annotations

from typing import Protocol

from canonical import FulfillmentRequest
from canonical.documents import FulfillmentAck, FulfillmentCancel, ReturnExpected, RmaLine


class WmsPort(Protocol):
    name: str

    async def release(self, request: FulfillmentRequest) -> FulfillmentAck:
        """Release the lines to the location's warehouse. Idempotent on request.idempotency_key."""
        ...

    async def cancel(self, fulfillment_id: str, reason: str) -> FulfillmentCancel:
        """Cancel if not shipped yet; cancelled=False when it already shipped."""
        ...

    async def expect_return(
        self, return_key: str, rma_id: str, location: str, lines: list[RmaLine], idempotency_key: str
    ) -> ReturnExpected:
        """Announce an inbound return; the warehouse posts a receipt webhook (with each line's
        condition) when the parcel arrives. Idempotent on the key."""
        ...
