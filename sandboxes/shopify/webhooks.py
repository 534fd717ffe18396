"""Webhook deliveries from the sandbox shop, signed as Shopify signs them, with real-world faults.

Each shop event on a subscribed topic becomes a delivery: a ``POST`` of the event's frozen
JSON with ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the raw body under the app's
client secret), ``X-Shopify-Topic``, ``-Shop-Domain``, ``-API-Version``, ``-Webhook-Id``,
``-Event-Id`` and ``-Triggered-At``. A delivery succeeds on a 2xx within the acknowledgement
timeout (Shopify: 5 s); anything else is retried on a backoff schedule (Shopify: 8 retries
over about 4 hours) and then given up.

:class:`FailureModes` adds what a receiver must survive, deterministically for a seed:

* **drop**: the event is never delivered (reconciliation must find the order);
* **duplicate**: delivered twice, as two deliveries: same ``X-Shopify-Event-Id``, different
  ``X-Shopify-Webhook-Id``;
* **reorder / late**: held back until ``reorder_after`` later events went out (or
  ``max_hold_s`` passed), so it arrives after newer news about the same order;
* **slow acknowledgement**: the receiver answered 2xx but, as if after Shopify's 5 s, the
  attempt counts as failed and is retried (the receiver sees the same delivery again);
  receivers slower than ``ack_timeout_s`` are timed out for real.

A retry is the same delivery again (same Webhook-Id and Event-Id, the original bytes).
Every attempt is recorded as a :class:`DeliveryAttempt` for tests and the demo summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import httpx

from adapters.channels.shopify.signature import sign
from adapters.signing import Poster, as_poster
from sandboxes.shopify.shop import (
    TOPIC_ORDER_CANCELLED,
    TOPIC_ORDER_CREATE,
    TOPIC_ORDER_UPDATED,
    SandboxShop,
    ShopEvent,
)

ORDER_TOPICS: tuple[str, ...] = (TOPIC_ORDER_CREATE, TOPIC_ORDER_UPDATED, TOPIC_ORDER_CANCELLED)
SHOPIFY_RETRY_DELAYS_S: tuple[float, ...] = (60, 120, 240, 480, 960, 1920, 3600, 7200)
"""Shopify (since 2024-09): 8 retries over about 4 hours, backing off exponentially."""
SHOPIFY_ACK_TIMEOUT_S = 5.0
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8000/webhooks/shopify"

Outcome = Literal["delivered", "failed", "timeout", "slow_ack", "dropped", "abandoned"]


@dataclass(frozen=True)
class FailureModes:
    """What goes wrong on the way to the receiver; rates are probabilities per event (per
    attempt for ``slow_ack_rate``), drawn from a generator seeded with ``seed``."""

    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    reorder_after: int = 2
    max_hold_s: float = 5.0
    slow_ack_rate: float = 0.0
    ack_timeout_s: float = SHOPIFY_ACK_TIMEOUT_S
    retry_delays_s: tuple[float, ...] = SHOPIFY_RETRY_DELAYS_S
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop_rate", "duplicate_rate", "reorder_rate", "slow_ack_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        if self.reorder_after < 1:
            raise ValueError("reorder_after must be at least 1")
        if self.max_hold_s < 0 or self.ack_timeout_s <= 0:
            raise ValueError("max_hold_s must be >= 0 and ack_timeout_s > 0")
        if any(d < 0 for d in self.retry_delays_s):
            raise ValueError("retry delays must be >= 0")


@dataclass(frozen=True)
class DeliveryAttempt:
    """One attempt (or a decision not to attempt: ``dropped``, ``abandoned``)."""

    event_id: str
    webhook_id: str | None
    topic: str
    order_id: int | None
    attempt: int
    outcome: Outcome
    at: datetime
    status: int | None = None
    error: str | None = None
    duplicate: bool = False
    held_back: bool = False


@dataclass
class _Delivery:
    event: ShopEvent
    webhook_id: str
    duplicate: bool
    held_back: bool
    enqueued: int
    due: float
    hold_until: float = 0.0
    waiting_for: int = 0
    attempts: int = 0

    def ready_at(self) -> float:
        return self.due if self.waiting_for == 0 else max(self.due, self.hold_until)


@dataclass
class _Queue:
    items: list[_Delivery] = field(default_factory=list)
    counter: int = 0


class WebhookDeliverer:
    """Delivers the shop's events on ``topics`` to ``url`` through ``post``.

    ``post`` is an ``httpx.AsyncClient`` or a callable ``(url, body, headers) -> status``
    (see :data:`adapters.signing.Poster`). Deliveries go out one at a time, in order of
    when they are due: ``deliver_due`` sends what is due now, ``drain`` until nothing is
    left, ``run`` in the background until stopped.
    """

    def __init__(
        self,
        shop: SandboxShop,
        post: Poster | httpx.AsyncClient,
        secret: str,
        failure_modes: FailureModes | None = None,
        *,
        url: str = DEFAULT_WEBHOOK_URL,
        topics: Collection[str] = ORDER_TOPICS,
        api_version: str = "2025-07",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not secret:
            raise ValueError("a webhook secret (the app's client secret) is required")
        self.shop = shop
        self.url = url
        self.topics = frozenset(topics)
        self.api_version = api_version
        self.modes = failure_modes or FailureModes()
        self._post = as_poster(post)
        self._secret = secret
        self._clock = clock
        self._faults = random.Random(self.modes.seed)
        self._ids = random.Random(f"webhook-ids-{self.modes.seed}")
        self._lock = threading.Lock()
        self._queue = _Queue()
        self._attempts: list[DeliveryAttempt] = []
        self._unsubscribe = shop.subscribe(self._on_event)

    def close(self) -> None:
        """Stop listening to the shop (queued deliveries stay queued)."""
        self._unsubscribe()

    # -- what happened ------------------------------------------------------------------

    @property
    def attempts(self) -> list[DeliveryAttempt]:
        with self._lock:
            return list(self._attempts)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue.items)

    def summary(self) -> dict[str, int]:
        """Counts of attempts by outcome, plus ``events`` (distinct events seen)."""
        attempts = self.attempts
        counts = Counter(a.outcome for a in attempts)
        result = {
            k: counts.get(k, 0)
            for k in ("delivered", "failed", "timeout", "slow_ack", "dropped", "abandoned")
        }
        result["events"] = len({a.event_id for a in attempts} | self._queued_event_ids())
        return result

    def _queued_event_ids(self) -> set[str]:
        with self._lock:
            return {d.event.event_id for d in self._queue.items}

    # -- intake (called by the shop, under its lock, from any thread) ---------------------

    def _new_webhook_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _on_event(self, event: ShopEvent) -> None:
        if event.topic not in self.topics:
            return
        m = self.modes
        # Always three draws per event, so one mode's rate never shifts another's choices.
        drop, reorder, duplicate = self._faults.random(), self._faults.random(), self._faults.random()
        with self._lock:
            now = self._clock()
            if drop < m.drop_rate:
                self._record(event, None, 0, "dropped")
                return
            held = reorder < m.reorder_rate
            first = self._enqueue(event, duplicate=False, held=held, now=now)
            if held:
                first.waiting_for, first.hold_until = m.reorder_after, now + m.max_hold_s
            if duplicate < m.duplicate_rate:
                second = self._enqueue(event, duplicate=True, held=held, now=now)
                second.waiting_for, second.hold_until = first.waiting_for, first.hold_until

    def _enqueue(self, event: ShopEvent, *, duplicate: bool, held: bool, now: float) -> _Delivery:
        self._queue.counter += 1
        d = _Delivery(event, self._new_webhook_id(), duplicate, held, self._queue.counter, due=now)
        self._queue.items.append(d)
        return d

    def _record(
        self,
        event: ShopEvent,
        d: _Delivery | None,
        attempt: int,
        outcome: Outcome,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        self._attempts.append(
            DeliveryAttempt(
                event_id=event.event_id,
                webhook_id=d.webhook_id if d else None,
                topic=event.topic,
                order_id=event.order_id,
                attempt=attempt,
                outcome=outcome,
                at=datetime.now(UTC),
                status=status,
                error=error,
                duplicate=d.duplicate if d else False,
                held_back=d.held_back if d else False,
            )
        )

    # -- delivery -----------------------------------------------------------------------

    def headers(self, event: ShopEvent, webhook_id: str) -> dict[str, str]:
        """The headers of one delivery of ``event``."""
        return {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Hmac-Sha256": sign(event.body, self._secret),
            "X-Shopify-Topic": event.topic,
            "X-Shopify-Shop-Domain": self.shop.domain,
            "X-Shopify-API-Version": self.api_version,
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Event-Id": event.event_id,
            "X-Shopify-Triggered-At": event.triggered_at.isoformat().replace("+00:00", "Z"),
        }

    def _take_due(self) -> _Delivery | None:
        with self._lock:
            now = self._clock()
            ready = [d for d in self._queue.items if d.ready_at() <= now]
            if not ready:
                return None
            d = min(ready, key=lambda x: (x.due, x.enqueued))
            self._queue.items.remove(d)
            if d.attempts == 0 and not d.duplicate:
                # A first delivery of a later event: earlier held-back ones wait for one fewer.
                for other in self._queue.items:
                    if other.waiting_for and other.event.sequence < d.event.sequence:
                        other.waiting_for -= 1
            return d

    async def _attempt(self, d: _Delivery) -> None:
        with self._lock:
            d.attempts += 1
            slow = self._faults.random() < self.modes.slow_ack_rate
        status: int | None = None
        error: str | None = None
        outcome: Outcome
        try:
            status = await asyncio.wait_for(
                self._post(self.url, d.event.body, self.headers(d.event, d.webhook_id)),
                timeout=self.modes.ack_timeout_s,
            )
        except TimeoutError:
            outcome, error = "timeout", f"no answer within {self.modes.ack_timeout_s:g} s"
        except Exception as exc:  # any failure to deliver is retried, whatever its type
            outcome, error = "failed", f"{type(exc).__name__}: {exc}"[:300]
        else:
            if not 200 <= status < 300:
                outcome, error = "failed", f"HTTP {status}"
            elif slow:
                outcome, error = "slow_ack", "acknowledged too late (simulated)"
            else:
                outcome = "delivered"
        with self._lock:
            self._record(d.event, d, d.attempts, outcome, status, error)
            if outcome == "delivered":
                return
            if d.attempts > len(self.modes.retry_delays_s):
                self._record(d.event, d, d.attempts, "abandoned", None, "retries exhausted")
                return
            d.waiting_for = 0
            d.due = self._clock() + self.modes.retry_delays_s[d.attempts - 1]
            self._queue.items.append(d)

    async def deliver_due(self) -> int:
        """Attempt every delivery that is due now; returns the number of attempts."""
        sent = 0
        while (d := self._take_due()) is not None:
            await self._attempt(d)
            sent += 1
        return sent

    def _next_ready(self) -> float | None:
        with self._lock:
            return min((d.ready_at() for d in self._queue.items), default=None)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Deliver until nothing is queued (waiting out backoff and holds); TimeoutError if
        deliveries are still queued after ``timeout_s``."""
        deadline = self._clock() + timeout_s
        while True:
            await self.deliver_due()
            ready = self._next_ready()
            if ready is None:
                return
            now = self._clock()
            if now >= deadline:
                raise TimeoutError(f"{self.pending()} webhook deliveries still queued after {timeout_s:g} s")
            await asyncio.sleep(max(0.0, min(ready, deadline) - now))

    async def run(self, stop: asyncio.Event, poll_s: float = 0.05) -> None:
        """Deliver in the background until ``stop`` is set."""
        while not stop.is_set():
            await self.deliver_due()
            ready = self._next_ready()
            wait = poll_s if ready is None else min(poll_s, max(0.0, ready - self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.001))


def recording_poster(
    handler: Callable[[str, bytes, Mapping[str, str]], int] | None = None,
) -> tuple[Poster, list[tuple[str, bytes, dict[str, str]]]]:
    """A ``Poster`` that records every request (and answers ``handler``'s status, else 200)."""
    received: list[tuple[str, bytes, dict[str, str]]] = []

    async def post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        received.append((url, body, dict(headers)))
        return handler(url, body, headers) if handler is not None else 200

    return post, received
