"""Prometheus metrics of the ingress."""

from prometheus_client import Counter

ORDERS_INGESTED = Counter(
    "retail_orders_ingested_total", "Orders accepted for processing", ["channel", "source"]
)
WEBHOOKS_REJECTED = Counter(
    "retail_webhooks_rejected_total", "Webhook deliveries rejected", ["source", "reason"]
)
