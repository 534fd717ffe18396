"""Shopify: webhook signature verification and the Order payload -> canonical mapper.

The documented facts these follow are in ``shared/contracts/shopify.md``.
"""

from adapters.channels.shopify.mapping import order_edit_from_shopify, order_from_shopify
from adapters.channels.shopify.signature import sign, verify

__all__ = ["order_edit_from_shopify", "order_from_shopify", "sign", "verify"]
