"""WooCommerce: webhook signature, delivery parsing (incl. the unsigned ping) and the order mapper.

The documented facts these follow are in ``shared/contracts/woocommerce.md``.
"""

from adapters.channels.woocommerce.mapping import order_from_woocommerce
from adapters.channels.woocommerce.signature import sign, verify
from adapters.channels.woocommerce.webhook import WebhookError, WooEvent, is_ping, parse_webhook

__all__ = ["WebhookError", "WooEvent", "is_ping", "order_from_woocommerce", "parse_webhook", "sign", "verify"]
