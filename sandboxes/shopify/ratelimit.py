"""Shopify's REST rate limit: a leaky bucket per app and store (here: per access token).

Every request adds one to the bucket, which leaks at a steady rate (2 a second on the
Standard plan, bucket 40). A request that would overflow it is refused with 429 and a
``Retry-After`` saying when one slot will have leaked; a refused request does not count.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_BUCKET_SIZE = 40
DEFAULT_LEAK_PER_S = 2.0


@dataclass(frozen=True)
class Admission:
    """The answer for one request: admitted or not, the bucket's fill, and when to retry."""

    allowed: bool
    used: int
    size: int
    retry_after_s: float

    @property
    def call_limit_header(self) -> str:
        """The ``X-Shopify-Shop-Api-Call-Limit`` value, e.g. ``32/40``."""
        return f"{self.used}/{self.size}"

    @property
    def retry_after_header(self) -> str:
        """The ``Retry-After`` value in Shopify's style: seconds as a decimal (``0.5``, ``2.0``)."""
        return f"{max(0.1, math.ceil(self.retry_after_s * 10) / 10):.1f}"


class LeakyBucket:
    """One bucket per key; safe to call from several threads and event loops."""

    def __init__(
        self,
        size: int = DEFAULT_BUCKET_SIZE,
        leak_per_s: float = DEFAULT_LEAK_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 1:
            raise ValueError("the bucket must hold at least one request")
        if leak_per_s <= 0:
            raise ValueError("the bucket must leak (leak_per_s > 0)")
        self.size = size
        self.leak_per_s = leak_per_s
        self._clock = clock
        self._levels: dict[str, tuple[float, float]] = {}  # key -> (level, measured at)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        level, at = self._levels.get(key, (0.0, now))
        return max(0.0, level - (now - at) * self.leak_per_s)

    def admit(self, key: str) -> Admission:
        """Count one request for ``key``, or refuse it when the bucket is full."""
        with self._lock:
            now = self._clock()
            level = self._level(key, now)
            if level + 1 > self.size + 1e-9:
                self._levels[key] = (level, now)
                wait = (level + 1 - self.size) / self.leak_per_s
                return Admission(False, min(self.size, math.ceil(level - 1e-9)), self.size, wait)
            level += 1
            self._levels[key] = (level, now)
            return Admission(True, math.ceil(level - 1e-9), self.size, 0.0)

    def level(self, key: str) -> float:
        """How full ``key``'s bucket is now (requests, fractional while leaking)."""
        with self._lock:
            return self._level(key, self._clock())

    def reset(self, key: str | None = None) -> None:
        """Empty one bucket, or all of them."""
        with self._lock:
            if key is None:
                self._levels.clear()
            else:
                self._levels.pop(key, None)


DEFAULT_COST_MAXIMUM = 1000.0
DEFAULT_COST_RESTORE_PER_S = 100.0


@dataclass(frozen=True)
class CostStatus:
    """The GraphQL cost bucket after one request: ``extensions.cost.throttleStatus``."""

    allowed: bool
    requested: int
    maximum: float
    currently_available: float
    restore_rate: float

    def extensions(self) -> dict[str, object]:
        """``extensions.cost`` as Shopify answers it (``actualQueryCost`` null when throttled;
        the sandbox charges the requested cost, Shopify refunds what was not used)."""
        return {
            "cost": {
                "requestedQueryCost": self.requested,
                "actualQueryCost": self.requested if self.allowed else None,
                "throttleStatus": {
                    "maximumAvailable": self.maximum,
                    "currentlyAvailable": int(self.currently_available),
                    "restoreRate": self.restore_rate,
                },
            }
        }


class CostBucket:
    """Shopify's GraphQL limit: points per app and store (here: per access token) that refill at
    ``restore_per_s``; a query costing more than is available is refused and costs nothing."""

    def __init__(
        self,
        maximum: float = DEFAULT_COST_MAXIMUM,
        restore_per_s: float = DEFAULT_COST_RESTORE_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maximum <= 0 or restore_per_s <= 0:
            raise ValueError("the cost bucket needs a positive maximum and restore rate")
        self.maximum = maximum
        self.restore_per_s = restore_per_s
        self._clock = clock
        self._available: dict[str, tuple[float, float]] = {}  # key -> (points, measured at)
        self._lock = threading.Lock()

    def take(self, key: str, cost: int) -> CostStatus:
        with self._lock:
            now = self._clock()
            points, at = self._available.get(key, (self.maximum, now))
            points = min(self.maximum, points + (now - at) * self.restore_per_s)
            allowed = points + 1e-9 >= cost
            if allowed:
                points -= cost
            self._available[key] = (points, now)
            return CostStatus(allowed, cost, self.maximum, points, self.restore_per_s)
