"""HTTP ingress (FastAPI): order API, storefront/WMS/carrier webhooks, health and metrics.

Answers in milliseconds: no adapter work inline, only start or signal a workflow."""
