"""The channel port: what the platform tells a storefront or marketplace."""

from __future__ import annotations

from typing import Protocol

from canonical import ChannelAvailability, Money, Shipment
from canonical.documents import ChannelAck
from canonical.returns import ReturnNotice


class ChannelPort(Protocol):
    name: str

    async def notify_fulfillment(
        self, external_order_id: str, shipment: Shipment, idempotency_key: str
    ) -> ChannelAck:
        """Tell the channel what shipped, with tracking."""
        ...

    async def refund_payment(
        self, external_order_id: str, amount: Money, reason: str, idempotency_key: str
    ) -> ChannelAck:
        """Refund a channel-managed payment (e.g. on cancellation)."""
        ...

    async def notify_cancelled(
        self, external_order_id: str, reason: str, idempotency_key: str
    ) -> ChannelAck: ...

    async def push_inventory(self, levels: list[ChannelAvailability], idempotency_key: str) -> ChannelAck:
        """Tell the channel how many of each SKU it may sell now: absolute numbers, never deltas.

        Raises RateLimitedError when the channel asks to slow down."""
        ...

    async def notify_return(
        self, external_order_id: str, notice: ReturnNotice, idempotency_key: str
    ) -> ChannelAck:
        """Tell the channel what became of a return it did not refund itself (refunded by the
        platform, expired, rejected): Shopify records it as a refund without transactions."""
        ...
