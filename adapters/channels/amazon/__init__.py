"""Amazon (SP-API): orders polled with getOrders/getOrderItems, mapped to the canonical order."""

from adapters.channels.amazon.client import AmazonClient
from adapters.channels.amazon.mapping import hold_reason, order_from_amazon
from adapters.channels.amazon.reader import AmazonReader

__all__ = ["AmazonClient", "AmazonReader", "hold_reason", "order_from_amazon"]
