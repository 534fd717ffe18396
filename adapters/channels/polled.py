"""A channel the platform reads over the vendor's API (a polled channel) while what it tells the
channel still goes to another adapter.

Amazon and Adobe Commerce are read by pollers; their write side (shipment confirmation, refunds,
stock) is not built yet, so the builtin channel records what the platform would have told them.
One class joins the two instead of each vendor adapter repeating the delegation.
"""

from __future__ import annotations

from datetime import datetime

from adapters.channels.port import ChannelOrder, ChannelOrderPage, ChannelPort, ChannelReader
from canonical import ChannelAvailability, Money, Shipment
from canonical.documents import ChannelAck
from canonical.returns import ReturnNotice


class PolledChannel:
    """``ChannelPort`` and ``ChannelReader``: reads from ``reader``, writes to ``writes``."""

    lists_orders = True

    def __init__(self, reader: ChannelReader, writes: ChannelPort) -> None:
        self.name = reader.name
        self.reader = reader
        self.writes = writes

    # -- the reader side --------------------------------------------------------------------
    async def orders_updated_page(
        self, since: datetime, until: datetime, cursor: str | None, page_size: int
    ) -> ChannelOrderPage:
        return await self.reader.orders_updated_page(since, until, cursor, page_size)

    async def count_orders_updated(self, since: datetime, until: datetime) -> int | None:
        return await self.reader.count_orders_updated(since, until)

    async def fetch_order(self, external_order_id: str) -> ChannelOrder | None:
        return await self.reader.fetch_order(external_order_id)

    async def inventory_levels(self, skus: list[str]) -> dict[str, int]:
        return await self.reader.inventory_levels(skus)

    # -- the write side ---------------------------------------------------------------------
    async def notify_fulfillment(
        self, external_order_id: str, shipment: Shipment, idempotency_key: str
    ) -> ChannelAck:
        return await self.writes.notify_fulfillment(external_order_id, shipment, idempotency_key)

    async def refund_payment(
        self, external_order_id: str, amount: Money, reason: str, idempotency_key: str
    ) -> ChannelAck:
        return await self.writes.refund_payment(external_order_id, amount, reason, idempotency_key)

    async def notify_cancelled(self, external_order_id: str, reason: str, idempotency_key: str) -> ChannelAck:
        return await self.writes.notify_cancelled(external_order_id, reason, idempotency_key)

    async def push_inventory(self, levels: list[ChannelAvailability], idempotency_key: str) -> ChannelAck:
        return await self.writes.push_inventory(levels, idempotency_key)

    async def notify_return(
        self, external_order_id: str, notice: ReturnNotice, idempotency_key: str
    ) -> ChannelAck:
        return await self.writes.notify_return(external_order_id, notice, idempotency_key)
