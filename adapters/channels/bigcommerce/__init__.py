"""BigCommerce: Standard Webhooks signatures, thin callbacks, the V2 order client and mapper.

The documented facts these follow are in ``shared/contracts/bigcommerce_adobe_commerce.md``.
"""

from adapters.channels.bigcommerce.client import BigCommerceClient, FetchedOrder
from adapters.channels.bigcommerce.mapping import NOT_PLACED_STATUS_IDS, order_from_bigcommerce
from adapters.channels.bigcommerce.signature import SignatureError, sign, verify
from adapters.channels.bigcommerce.webhook import BigCommerceEvent, WebhookError, parse_webhook

__all__ = [
    "NOT_PLACED_STATUS_IDS",
    "BigCommerceClient",
    "BigCommerceEvent",
    "FetchedOrder",
    "SignatureError",
    "WebhookError",
    "order_from_bigcommerce",
    "parse_webhook",
    "sign",
    "verify",
]
