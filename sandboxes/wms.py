"""Plays the builtin warehouse's staff: picks, packs, buys a label and reports the shipment;
receives expected returns and reports what came back (``return.received``, SKUs listed in
``settings.wms_damaged_return_skus`` as damaged, the rest resellable).

It behaves like a real warehouse towards the platform: the only way a shipment gets in is a
signed webhook to the public API, delivered at least once (kept in an outbox and retried
with backoff until a 2xx). Several simulators may run against one store: every transition
is a conditional ``UPDATE ... WHERE status = <old>``, so each order moves exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import ColumnElement, and_, or_, select, update

from adapters.carrier.builtin import BuiltinCarrier
from adapters.errors import AdapterError
from adapters.signing import Poster, as_poster, deliver
from adapters.wms.webhook import (
    EVENT_RETURN_RECEIVED,
    EVENT_SHIPPED,
    WEBHOOK_PATH,
    ReturnReceivedWebhook,
    ReturnReceivedWebhookLine,
    ShipmentWebhook,
    ShipmentWebhookLine,
    shipment_id_for,
)
from backoffice.carrier import hand_over
from backoffice.wms import (
    FulfillmentOrder,
    FulfillmentOrderLine,
    ReturnInbound,
    ReturnInboundLine,
    WmsReturnOutbox,
    WmsWebhookOutbox,
    claim_webhook,
    due_webhooks,
    format_fulfillment_id,
    retry_delay,
    webhook_delivered,
    webhook_failed,
)
from canonical import Address
from canonical.documents import Label
from settings import Settings
from store.columns import rowcount, utcnow
from store.db import Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WmsPass:
    """What one ``run_once`` did (for tests, logs and the demo)."""

    picking: int = 0
    packed: int = 0
    shipped: int = 0
    delivered: int = 0
    failed: int = 0
    returns_received: int = 0


@dataclass(frozen=True)
class _Packed:
    pk: int
    order_key: str
    location: str
    ship_to: dict[str, Any] | None
    shipping_method: str | None


@dataclass(frozen=True)
class _Due:
    pk: int
    attempts: int
    body: bytes
    fulfillment_order_id: int | None  # None: a return receipt (no parcel to hand over)


class WmsSimulator:
    """Advances fulfillment orders released -> picking -> packed -> shipped and reports shipments.

    ``location_delays`` maps a location to extra seconds before picking starts there: a
    "slow warehouse" fault, to see SLAs and escalations fire for one location only.
    """

    def __init__(
        self,
        store: Store,
        carrier: BuiltinCarrier,
        post: Poster | httpx.AsyncClient,
        settings: Settings,
        *,
        location_delays: Mapping[str, float] | None = None,
        batch_size: int = 100,
        delivery_lease_s: float = 60.0,
        retry_max_s: float = 30.0,
    ) -> None:
        self.store = store
        self.carrier = carrier
        self.post = as_poster(post)
        self.settings = settings
        self.location_delays = {loc: s for loc, s in (location_delays or {}).items() if s > 0}
        self.batch_size = batch_size
        self.delivery_lease_s = delivery_lease_s
        self.retry_base_s = max(settings.simulator_poll_s, 0.01)
        self.retry_max_s = retry_max_s
        self.url = settings.api_url.rstrip("/") + WEBHOOK_PATH
        self._secret = settings.wms_webhook_secret.get_secret_value()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, one pass every ``settings.simulator_poll_s``."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # a database hiccup must not end the warehouse
                log.exception("wms_simulator_pass_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.simulator_poll_s)

    async def run_once(self) -> WmsPass:
        """One pass: start due picks, pack due orders, ship packed ones, deliver due webhooks."""
        now = utcnow()
        picking = await asyncio.to_thread(
            self._advance, "released", "picking", self.settings.wms_pick_delay_s, now
        )
        packed = await asyncio.to_thread(
            self._advance, "picking", "packed", self.settings.wms_ship_delay_s, now
        )
        shipped = 0
        # Every packed order, including ones a crashed simulator left half-done: buying the
        # label is idempotent and only one simulator wins the packed -> shipped update.
        for order in await asyncio.to_thread(self._packed):
            label = await self._buy_label(order)
            if label is not None and await asyncio.to_thread(self._ship, order.pk, label):
                shipped += 1
        returns = await asyncio.to_thread(self._receive_returns, now)
        delivered, failed = await self._deliver_due()
        result = WmsPass(picking, packed, shipped, delivered, failed, returns)
        if result != WmsPass():
            log.info("wms_simulator_pass", **vars(result))
        return result

    # -- transitions -----------------------------------------------------------------------

    def _due(self, delay_s: float, now: datetime, *, with_slow: bool) -> ColumnElement[bool]:
        """Orders whose current status is older than the delay (plus a slow location's extra)."""
        changed = FulfillmentOrder.status_changed_at
        normal = changed <= now - timedelta(seconds=delay_s)
        if not with_slow or not self.location_delays:
            return normal
        slow = list(self.location_delays)
        return or_(
            and_(FulfillmentOrder.location.not_in(slow), normal),
            *(
                and_(FulfillmentOrder.location == loc, changed <= now - timedelta(seconds=delay_s + extra))
                for loc, extra in self.location_delays.items()
            ),
        )

    def _advance(self, old: str, new: str, delay_s: float, now: datetime) -> int:
        """Move every due order from ``old`` to ``new``; a concurrent mover finds nothing left."""
        with self.store.session() as s:
            result = s.execute(
                update(FulfillmentOrder)
                .where(FulfillmentOrder.status == old, self._due(delay_s, now, with_slow=old == "released"))
                .values(status=new, status_changed_at=now)
                .execution_options(synchronize_session=False)
            )
            return rowcount(result)

    def _packed(self) -> list[_Packed]:
        with self.store.session() as s:
            rows = s.scalars(
                select(FulfillmentOrder)
                .where(FulfillmentOrder.status == "packed")
                .order_by(FulfillmentOrder.id)
                .limit(self.batch_size)
            )
            return [_Packed(fo.id, fo.order_key, fo.location, fo.ship_to, fo.shipping_method) for fo in rows]

    async def _buy_label(self, order: _Packed) -> Label | None:
        fulfillment_id = format_fulfillment_id(order.pk)
        try:
            return await self.carrier.create_label(
                order_key=order.order_key,
                ship_from=order.location,
                ship_to=Address.model_validate(order.ship_to) if order.ship_to else None,
                service=order.shipping_method,
                idempotency_key=f"{fulfillment_id}-label",
            )
        except AdapterError as exc:  # the carrier is down or refuses: stay packed, retry next pass
            log.warning("wms_simulator_label_failed", fulfillment_id=fulfillment_id, error=exc.message)
            return None

    def _ship(self, pk: int, label: Label) -> bool:
        """packed -> shipped and the shipment webhook queued, in one transaction."""
        now = utcnow()
        with self.store.session() as s:
            won = s.execute(
                update(FulfillmentOrder)
                .where(FulfillmentOrder.id == pk, FulfillmentOrder.status == "packed")
                .values(
                    status="shipped",
                    status_changed_at=now,
                    shipped_at=now,
                    carrier=label.carrier,
                    service=label.service,
                    tracking_number=label.tracking_number,
                )
                .execution_options(synchronize_session=False)
            )
            if rowcount(won) != 1:
                return False
            fo = s.get_one(FulfillmentOrder, pk)
            lines = s.scalars(
                select(FulfillmentOrderLine)
                .where(FulfillmentOrderLine.fulfillment_order_id == pk)
                .order_by(FulfillmentOrderLine.position)
            )
            fulfillment_id = format_fulfillment_id(pk)
            hook = ShipmentWebhook(
                event_id=f"{fulfillment_id}-shipped",
                type=EVENT_SHIPPED,
                shipment_id=shipment_id_for(fulfillment_id),
                fulfillment_id=fulfillment_id,
                order_key=fo.order_key,
                order_name=fo.order_name,
                location=fo.location,
                lines=[
                    ShipmentWebhookLine(line_id=ln.line_id, sku=ln.sku, quantity=ln.quantity) for ln in lines
                ],
                carrier=label.carrier,
                service=label.service,
                tracking_numbers=[label.tracking_number],
                shipped_at=now,
            )
            s.add(
                WmsWebhookOutbox(
                    event_id=hook.event_id,
                    event_type=EVENT_SHIPPED,
                    body=hook.to_json().decode("utf-8"),
                    created_at=now,
                    attempts=0,
                    next_attempt_at=now,
                    fulfillment_order_id=pk,
                )
            )
            return True

    # -- returns ---------------------------------------------------------------------------

    def _receive_returns(self, now: datetime) -> int:
        """expected -> received for inbounds older than the receipt delay, each with its receipt
        webhook queued in the same transaction (one simulator wins each inbound)."""
        cutoff = now - timedelta(seconds=self.settings.wms_return_receipt_delay_s)
        damaged = set(self.settings.wms_damaged_return_skus)
        with self.store.session() as s:
            due = list(
                s.scalars(
                    select(ReturnInbound.id)
                    .where(ReturnInbound.status == "expected", ReturnInbound.status_changed_at <= cutoff)
                    .order_by(ReturnInbound.id)
                    .limit(self.batch_size)
                )
            )
        received = 0
        for pk in due:
            with self.store.session() as s:
                won = s.execute(
                    update(ReturnInbound)
                    .where(ReturnInbound.id == pk, ReturnInbound.status == "expected")
                    .values(status="received", status_changed_at=now, received_at=now)
                    .execution_options(synchronize_session=False)
                )
                if rowcount(won) != 1:
                    continue
                inbound = s.get_one(ReturnInbound, pk)
                lines = s.scalars(
                    select(ReturnInboundLine)
                    .where(ReturnInboundLine.inbound_id == pk)
                    .order_by(ReturnInboundLine.position)
                )
                hook = ReturnReceivedWebhook(
                    event_id=f"{inbound.inbound_id}-received",
                    type=EVENT_RETURN_RECEIVED,
                    receipt_id=f"{inbound.inbound_id}-R1",
                    return_key=inbound.return_key,
                    rma_id=inbound.rma_id,
                    inbound_id=inbound.inbound_id,
                    location=inbound.location,
                    lines=[
                        ReturnReceivedWebhookLine(
                            line_id=ln.line_id,
                            sku=ln.sku,
                            quantity=ln.quantity,
                            condition="damaged" if ln.sku in damaged else "resellable",
                        )
                        for ln in lines
                    ],
                    received_at=now,
                )
                s.add(
                    WmsReturnOutbox(
                        event_id=hook.event_id,
                        event_type=EVENT_RETURN_RECEIVED,
                        body=hook.to_json().decode("utf-8"),
                        created_at=now,
                        attempts=0,
                        next_attempt_at=now,
                        inbound_id=pk,
                    )
                )
                received += 1
        return received

    # -- webhook delivery ------------------------------------------------------------------

    def _due_webhooks(self) -> list[_Due]:
        now = utcnow()
        with self.store.session() as s:
            rows = due_webhooks(s, WmsWebhookOutbox, now, self.batch_size)
            returns = due_webhooks(s, WmsReturnOutbox, now, self.batch_size)
            return [_Due(w.id, w.attempts, w.body.encode("utf-8"), w.fulfillment_order_id) for w in rows] + [
                _Due(w.id, w.attempts, w.body.encode("utf-8"), None) for w in returns
            ]

    @staticmethod
    def _outbox(due: _Due) -> type[WmsWebhookOutbox] | type[WmsReturnOutbox]:
        return WmsWebhookOutbox if due.fulfillment_order_id is not None else WmsReturnOutbox

    def _claim(self, due: _Due) -> bool:
        lease = utcnow() + timedelta(seconds=self.delivery_lease_s)
        with self.store.session() as s:
            return claim_webhook(s, self._outbox(due), due.pk, due.attempts, lease)

    def _delivered(self, due: _Due) -> None:
        """Acknowledged: a shipped parcel is now the carrier's (its tracking clock starts)."""
        now = utcnow()
        with self.store.session() as s:
            webhook_delivered(s, self._outbox(due), due.pk, now)
            if due.fulfillment_order_id is None:
                return
            tracking = s.scalar(
                select(FulfillmentOrder.tracking_number).where(
                    FulfillmentOrder.id == due.fulfillment_order_id
                )
            )
            if tracking:
                hand_over(s, tracking, now)

    def _failed(self, due: _Due, error: str) -> None:
        retry_at = utcnow() + retry_delay(due.attempts + 1, self.retry_base_s, self.retry_max_s)
        with self.store.session() as s:
            webhook_failed(s, self._outbox(due), due.pk, retry_at, error)

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
                    "wms_webhook_delivery_failed", url=self.url, attempt=due.attempts + 1, error=error
                )
                await asyncio.to_thread(self._failed, due, error)
                failed += 1
        return delivered, failed
