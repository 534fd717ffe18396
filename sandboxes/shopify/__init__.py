"""A builtin Shopify-compatible storefront for the demo and the tests.

* :class:`SandboxShop` holds one store in memory (orders, fulfillment orders, fulfillments,
  refunds, transactions, inventory, locations) and fires events as it changes;
* :func:`create_sandbox_app` serves the REST Admin API subset the platform calls back, with
  Shopify's auth, versioning, error shapes, cursor pagination and leaky-bucket rate limit;
* :class:`WebhookDeliverer` sends the events as signed webhooks with configurable
  :class:`FailureModes` (drops, duplicates, reordering, slow acknowledgements, retries);
* :class:`SandboxServer` runs it all with uvicorn in-process.

The facts followed are in ``shared/contracts/shopify.md``; see docs/sandbox-storefront.md.
"""

from sandboxes.shopify.app import create_sandbox_app
from sandboxes.shopify.ratelimit import Admission, LeakyBucket
from sandboxes.shopify.server import SandboxServer, run_sandbox, serve_sandbox
from sandboxes.shopify.shop import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_DOMAIN,
    Location,
    SandboxShop,
    ShopError,
    ShopEvent,
)
from sandboxes.shopify.webhooks import (
    ORDER_TOPICS,
    SHOPIFY_RETRY_DELAYS_S,
    DeliveryAttempt,
    FailureModes,
    WebhookDeliverer,
    recording_poster,
)

__all__ = [
    "DEFAULT_ACCESS_TOKEN",
    "DEFAULT_DOMAIN",
    "ORDER_TOPICS",
    "SHOPIFY_RETRY_DELAYS_S",
    "Admission",
    "DeliveryAttempt",
    "FailureModes",
    "LeakyBucket",
    "Location",
    "SandboxServer",
    "SandboxShop",
    "ShopError",
    "ShopEvent",
    "WebhookDeliverer",
    "create_sandbox_app",
    "recording_poster",
    "run_sandbox",
    "serve_sandbox",
]
