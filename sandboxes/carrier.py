"""Plays the builtin carrier's network: parcels handed over by the warehouse move to in transit,
then delivered, and each scan is reported to the platform as a signed tracking webhook.

Delivery is at least once (outbox, retried with backoff until a 2xx), and one parcel's events
are delivered in order: a later scan waits until the earlier one was acknowledged. Several
simulators may share a store: each transition is a conditional ``UPDATE ... WHERE status``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta

import httpx
import structlog
from sqlalchemy import func, select, update

from adapters.carrier.webhook import EVENT_TRACKING, WEBHOOK_PATH, TrackingWebhook, tracking_event_id
from adapters.signing import Poster, as_poster, deliver
from backoffice.carrier import CarrierLabel, CarrierWebhookOutbox, return_key_of
from backoffice.wms import (
    claim_webhook,
    due_webhooks,
    retry_delay,
    webhook_delivered,
    webhook_failed,
)
from canonical import TrackingStatus
from settings import Settings
from store.columns import rowcount, utcnow
from store.db import Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CarrierPass:
    """What one ``run_once`` did (for tests, logs and the demo)."""

    in_transit: int = 0
    delivered: int = 0
    webhooks_delivered: int = 0
    webhooks_failed: int = 0


@dataclass(frozen=True)
class _Due:
    pk: int
    attempts: int
    body: bytes


class CarrierSimulator:
    """Moves handed-over parcels label_created -> in_transit -> delivered and reports each scan."""

    def __init__(
        self,
        store: Store,
        post: Poster | httpx.AsyncClient,
        settings: Settings,
        *,
        batch_size: int = 100,
        delivery_lease_s: float = 60.0,
        retry_max_s: float = 30.0,
    ) -> None:
        self.store = store
        self.post = as_poster(post)
        self.settings = settings
        self.batch_size = batch_size
        self.delivery_lease_s = delivery_lease_s
        self.retry_base_s = max(settings.simulator_poll_s, 0.01)
        self.retry_max_s = retry_max_s
        self.url = settings.api_url.rstrip("/") + WEBHOOK_PATH
        self._secret = settings.carrier_webhook_secret.get_secret_value()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, one pass every ``settings.simulator_poll_s``."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # a database hiccup must not end the carrier
                log.exception("carrier_simulator_pass_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.simulator_poll_s)

    async def run_once(self) -> CarrierPass:
        """One pass: scan due parcels, then deliver due tracking webhooks."""
        in_transit = await asyncio.to_thread(
            self._advance, "label_created", "in_transit", self.settings.carrier_transit_delay_s
        )
        delivered = await asyncio.to_thread(
            self._advance, "in_transit", "delivered", self.settings.carrier_delivery_delay_s
        )
        ok, failed = await self._deliver_due()
        result = CarrierPass(in_transit, delivered, ok, failed)
        if result != CarrierPass():
            log.info("carrier_simulator_pass", **vars(result))
        return result

    # -- transitions -----------------------------------------------------------------------

    def _advance(self, old: TrackingStatus, new: TrackingStatus, delay_s: float) -> int:
        """Move due parcels from ``old`` to ``new``, queueing one tracking webhook per move."""
        now = utcnow()
        with self.store.session() as s:
            due = list(
                s.scalars(
                    select(CarrierLabel.id)
                    .where(
                        CarrierLabel.status == old,
                        CarrierLabel.handed_over_at.is_not(None),
                        CarrierLabel.status_changed_at <= now - timedelta(seconds=delay_s),
                    )
                    .order_by(CarrierLabel.id)
                    .limit(self.batch_size)
                )
            )
        moved = 0
        for pk in due:  # one transaction per parcel: short locks, no lock-order deadlocks
            with self.store.session() as s:
                won = s.execute(
                    update(CarrierLabel)
                    .where(CarrierLabel.id == pk, CarrierLabel.status == old)
                    .values(status=new, status_changed_at=now)
                    .execution_options(synchronize_session=False)
                )
                if rowcount(won) != 1:
                    continue  # another simulator moved it
                label = s.get_one(CarrierLabel, pk)
                return_key = return_key_of(s, label.tracking_number)
                hook = TrackingWebhook(
                    event_id=tracking_event_id(label.tracking_number, new),
                    type=EVENT_TRACKING,
                    tracking_number=label.tracking_number,
                    order_key=label.order_key if return_key is None else None,
                    return_key=return_key,
                    carrier=label.carrier,
                    service=label.service,
                    status=new,
                    occurred_at=now,
                    description=_describe(new, label.ship_from),
                )
                s.add(
                    CarrierWebhookOutbox(
                        event_id=hook.event_id,
                        event_type=EVENT_TRACKING,
                        body=hook.to_json().decode("utf-8"),
                        created_at=now,
                        attempts=0,
                        next_attempt_at=now,
                        label_id=pk,
                    )
                )
                moved += 1
        return moved

    # -- webhook delivery ------------------------------------------------------------------

    def _due_webhooks(self) -> list[_Due]:
        """Due webhooks, at most one per parcel: the parcel's oldest undelivered event."""
        with self.store.session() as s:
            rows = due_webhooks(s, CarrierWebhookOutbox, utcnow(), self.batch_size)
            labels = {w.label_id for w in rows}
            if not labels:
                return []
            pending = s.execute(
                select(CarrierWebhookOutbox.label_id, func.min(CarrierWebhookOutbox.id))
                .where(CarrierWebhookOutbox.delivered_at.is_(None), CarrierWebhookOutbox.label_id.in_(labels))
                .group_by(CarrierWebhookOutbox.label_id)
            )
            first_pending = {label_id: first for label_id, first in pending}
            return [
                _Due(w.id, w.attempts, w.body.encode("utf-8"))
                for w in rows
                if first_pending.get(w.label_id) == w.id
            ]

    def _claim(self, due: _Due) -> bool:
        lease = utcnow() + timedelta(seconds=self.delivery_lease_s)
        with self.store.session() as s:
            return claim_webhook(s, CarrierWebhookOutbox, due.pk, due.attempts, lease)

    def _delivered(self, due: _Due) -> None:
        with self.store.session() as s:
            webhook_delivered(s, CarrierWebhookOutbox, due.pk, utcnow())

    def _failed(self, due: _Due, error: str) -> None:
        retry_at = utcnow() + retry_delay(due.attempts + 1, self.retry_base_s, self.retry_max_s)
        with self.store.session() as s:
            webhook_failed(s, CarrierWebhookOutbox, due.pk, retry_at, error)

    async def _deliver_due(self) -> tuple[int, int]:
        delivered = failed = 0
        for due in await asyncio.to_thread(self._due_webhooks):
            if not await asyncio.to_thread(self._claim, due):
                continue  # another simulator is delivering it
            error = await deliver(self.post, self.url, due.body, self._secret)
            if error is None:
                await asyncio.to_thread(self._delivered, due)
                delivered += 1
            else:
                log.warning(
                    "carrier_webhook_delivery_failed", url=self.url, attempt=due.attempts + 1, error=error
                )
                await asyncio.to_thread(self._failed, due, error)
                failed += 1
        return delivered, failed


def _describe(status: TrackingStatus, ship_from: str) -> str:
    if status == "in_transit":
        return f"Picked up at {ship_from}; in transit"
    if status == "delivered":
        return "Delivered"
    return status.replace("_", " ").capitalize()
