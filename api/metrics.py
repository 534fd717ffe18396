"""Prometheus metrics of the ingress."""

from prometheus_client import Counter, Gauge

# The integrations whose webhooks the API serves. Any other name in a webhook path is counted as
# "other": a label value taken from an unauthenticated URL would let anyone mint new series.
KNOWN_WEBHOOK_SOURCES: dict[str, frozenset[str]] = {
    "wms": frozenset({"builtin"}),
    "carrier": frozenset({"builtin"}),
}

ORDERS_INGESTED = Counter(
    "retail_orders_ingested_total", "Orders accepted for processing", ["channel", "source"]
)
WEBHOOKS_REJECTED = Counter(
    "retail_webhooks_rejected_total", "Webhook deliveries rejected", ["source", "reason"]
)


def webhook_source(kind: str, name: str) -> str:
    """The ``source`` label for a webhook at ``/webhooks/<kind>/<name>``: bounded cardinality."""
    return f"{kind}:{name if name in KNOWN_WEBHOOK_SOURCES.get(kind, frozenset()) else 'other'}"


WEBHOOK_DELIVERIES = Counter(
    "retail_webhook_deliveries_total",
    "Webhook deliveries kept in the inbox, by whether they were new or a redelivery",
    ["source", "outcome"],
)
WEBHOOK_RELAYS = Counter(
    "retail_webhook_relays_total",
    "Attempts to hand an inbox delivery to Temporal, by result (relayed, ignored, rejected, failed)",
    ["outcome"],
)
WEBHOOK_INBOX_PENDING = Gauge(
    "retail_webhook_inbox_pending", "Accepted webhook deliveries not yet handed to Temporal"
)
WEBHOOK_INBOX_OLDEST_PENDING_S = Gauge(
    "retail_webhook_inbox_oldest_pending_seconds",
    "Age of the oldest delivery waiting to be handed to Temporal (0 when none waits)",
)


def metric_source(source: str) -> str:
    """The bounded ``source`` label of a stored inbox source (``shopify``, ``wms:<name>``...)."""
    kind, sep, name = source.partition(":")
    return webhook_source(kind, name) if sep else source
