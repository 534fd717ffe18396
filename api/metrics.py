"""Prometheus metrics of the ingress."""

from prometheus_client import Counter

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
