"""Inventory sync gauge on the API's /metrics: the worst lag per channel among recent pushes.

The histogram ``retail_inventory_sync_lag_seconds`` (worker /metrics) gives percentiles; this
gauge names the single worst SKU's lag right now, read from ``channel_stock`` at scrape time, so
it is the same figure ``retail inventory show`` prints, whichever worker pushed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from store.channel_stock import worst_lag
from store.db import Store

log = structlog.get_logger("metrics")

SYNC_LAG_WORST = "retail_inventory_sync_lag_worst_seconds"
"""Gauge {channel}: the longest ledger-change-to-acknowledgement lag among the pushes of the last
``WINDOW`` (a channel with no push in that window has no series)."""
WINDOW = timedelta(hours=1)
HELP = "Worst ledger change to channel acknowledgement lag among pushes in the last hour"


class InventorySyncCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(SYNC_LAG_WORST, HELP, labels=["channel"])

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(SYNC_LAG_WORST, HELP, labels=["channel"])
        try:
            for channel, lag in sorted(worst_lag(self.store, datetime.now(UTC) - WINDOW).items()):
                gauge.add_metric([channel], lag)
        except Exception as exc:  # a scrape must answer even when the store does not
            log.warning("inventory sync metrics unavailable", error=str(exc))
        yield gauge
