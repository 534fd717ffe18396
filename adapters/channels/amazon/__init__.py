"""Amazon (SP-API): orders polled with getOrders/getOrderItems, mapped to the canonical order;
shipments confirmed with confirmShipment and MFN stock set with patchListingsItem."""

from adapters.channels.amazon.client import AmazonClient
from adapters.channels.amazon.mapping import hold_reason, order_from_amazon
from adapters.channels.amazon.reader import AmazonReader
from adapters.channels.amazon.writer import AmazonWriter

__all__ = ["AmazonClient", "AmazonReader", "AmazonWriter", "hold_reason", "order_from_amazon"]
