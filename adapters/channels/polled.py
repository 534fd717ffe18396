"""A channel the platform reads over the vendor's API (a polled channel), and tells what the vendor
can hear over its API, recording the rest.

Amazon and Adobe Commerce are read by pollers. What the platform tells them goes, operation by
operation, to the vendor's writer when it has one, else to the builtin channel, which records it
(``channel_notifications``, ``channel_return_notices``) for a person or a later integration:

| operation | Amazon (``AmazonWriter``) | Adobe Commerce (``AdobeCommerceWriter``) |
| --- | --- | --- |
| ``notify_fulfillment`` | ``confirmShipment``, a package per tracking number | ``POST /V1/order/{id}/ship`` |
| ``notify_cancelled`` | recorded: Orders v0 has no cancel operation (§3) | ``POST /V1/orders/{id}/cancel`` |
| ``push_inventory`` | ``patchListingsItem`` when the seller id is set | recorded |
| ``refund_payment`` | recorded | recorded |
| ``notify_return`` | recorded | recorded |

Why refunds and returns stay recorded: Amazon takes the buyer's money and refunds it itself (the
contract documents no refund operation: a marketplace refund is made in Seller Central, and a
return Amazon authorised is refunded by Amazon), so the platform keeps the record for the books
and a person. Adobe Commerce refunds are credit memos against the store's invoices (the contract
names ``POST /V1/order/{id}/refund``, but the store's invoice and item split is not modelled
yet): recorded too, and an invoiced order the platform cancels is refused by Magento's cancel,
which sends it to a person (``adobe_commerce_cannot_cancel``). One class joins reader, writer and
recorder instead of each vendor adapter repeating the delegation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from adapters.channels.port import ChannelOrder, ChannelOrderPage, ChannelPort, ChannelReader
from canonical import ChannelAvailability, Money, Shipment
from canonical.documents import ChannelAck
from canonical.returns import ReturnNotice


class FulfillmentWriter(Protocol):
    async def notify_fulfillment(
        self, external_order_id: str, shipment: Shipment, idempotency_key: str
    ) -> ChannelAck: ...


class CancellationWriter(Protocol):
    async def notify_cancelled(
        self, external_order_id: str, reason: str, idempotency_key: str
    ) -> ChannelAck: ...


class InventoryWriter(Protocol):
    async def push_inventory(self, levels: list[ChannelAvailability], idempotency_key: str) -> ChannelAck: ...


class PolledChannel:
    """``ChannelPort`` and ``ChannelReader``: reads from ``reader``; each write goes to the vendor
    writer given for it, else to ``recorded`` (the builtin channel)."""

    lists_orders = True

    def __init__(
        self,
        reader: ChannelReader,
        recorded: ChannelPort,
        *,
        fulfillment: FulfillmentWriter | None = None,
        cancellation: CancellationWriter | None = None,
        inventory: InventoryWriter | None = None,
    ) -> None:
        self.name = reader.name
        self.reader = reader
        self.recorded = recorded
        self.fulfillment = fulfillment
        self.cancellation = cancellation
        self.inventory = inventory

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
        # Marketplaces deliver digital goods themselves (Magento invoices virtual items without
        # a shipment; Amazon confirms packages only): a digital delivery is recorded here.
        port = self.recorded if shipment.digital else (self.fulfillment or self.recorded)
        return await port.notify_fulfillment(external_order_id, shipment, idempotency_key)

    async def refund_payment(
        self, external_order_id: str, amount: Money, reason: str, idempotency_key: str
    ) -> ChannelAck:
        return await self.recorded.refund_payment(external_order_id, amount, reason, idempotency_key)

    async def notify_cancelled(self, external_order_id: str, reason: str, idempotency_key: str) -> ChannelAck:
        port = self.cancellation or self.recorded
        return await port.notify_cancelled(external_order_id, reason, idempotency_key)

    async def push_inventory(self, levels: list[ChannelAvailability], idempotency_key: str) -> ChannelAck:
        port = self.inventory or self.recorded
        return await port.push_inventory(levels, idempotency_key)

    async def notify_return(
        self, external_order_id: str, notice: ReturnNotice, idempotency_key: str
    ) -> ChannelAck:
        return await self.recorded.notify_return(external_order_id, notice, idempotency_key)
