"""Adobe Commerce (Magento 2): orders polled over REST, mapped to the canonical order; shipments
and cancellations written back over REST."""

from adapters.channels.adobe_commerce.client import AdobeCommerceClient
from adapters.channels.adobe_commerce.mapping import hold_reason, order_from_adobe_commerce
from adapters.channels.adobe_commerce.reader import AdobeCommerceReader
from adapters.channels.adobe_commerce.writer import AdobeCommerceWriter

__all__ = [
    "AdobeCommerceClient",
    "AdobeCommerceReader",
    "AdobeCommerceWriter",
    "hold_reason",
    "order_from_adobe_commerce",
]
