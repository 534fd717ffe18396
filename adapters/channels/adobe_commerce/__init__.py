"""Adobe Commerce (Magento 2): orders polled over REST, mapped to the canonical order."""

from adapters.channels.adobe_commerce.client import AdobeCommerceClient
from adapters.channels.adobe_commerce.mapping import hold_reason, order_from_adobe_commerce
from adapters.channels.adobe_commerce.reader import AdobeCommerceReader

__all__ = ["AdobeCommerceClient", "AdobeCommerceReader", "hold_reason", "order_from_adobe_commerce"]
