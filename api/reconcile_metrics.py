"""Reconciliation gauges on the API's /metrics: findings by kind and status, and inventory
accuracy per channel. Read from the store at scrape time (two small grouped queries), so they are
right whichever worker ran the reconciliation, and survive restarts."""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from store.db import Store
from store.findings import counts_by_kind
from store.reconcile import latest_accuracy

log = structlog.get_logger("metrics")

FINDINGS = "retail_reconcile_findings"
"""Gauge {kind, status}: reconciliation findings (open, healed, resolved, ignored)."""
INVENTORY_ACCURACY = "retail_inventory_accuracy_ratio"
"""Gauge {channel}: share of SKUs whose channel number matched the ledger at the last inventory run."""
INVENTORY_ACCURACY_AT = "retail_inventory_accuracy_timestamp_seconds"
"""Gauge {channel}: when that was measured (Unix time): alert when it is stale."""


class ReconcileCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(FINDINGS, "Reconciliation findings", labels=["kind", "status"])
        yield GaugeMetricFamily(INVENTORY_ACCURACY, "Share of SKUs a channel shows right", labels=["channel"])
        yield GaugeMetricFamily(INVENTORY_ACCURACY_AT, "When accuracy was measured", labels=["channel"])

    def collect(self) -> Iterator[Metric]:
        findings = GaugeMetricFamily(FINDINGS, "Reconciliation findings", labels=["kind", "status"])
        accuracy = GaugeMetricFamily(
            INVENTORY_ACCURACY, "Share of SKUs a channel shows right", labels=["channel"]
        )
        at = GaugeMetricFamily(INVENTORY_ACCURACY_AT, "When accuracy was measured", labels=["channel"])
        try:
            for (kind, status), n in sorted(counts_by_kind(self.store).items()):
                findings.add_metric([kind, status], n)
            for a in latest_accuracy(self.store):
                accuracy.add_metric([a.channel], a.ratio)
                at.add_metric([a.channel], a.measured_at.timestamp())
        except Exception as exc:  # a scrape must answer even when the store does not
            log.warning("reconciliation metrics unavailable", error=str(exc))
        yield from (findings, accuracy, at)
