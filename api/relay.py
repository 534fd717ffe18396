"""The inbox relay: hands kept webhook deliveries to Temporal, now or when it is back.

Every accepted delivery is a pending ``webhook_inbox`` row (see ``store.inbox``). The API
tries to relay it inline, right after keeping it; whatever is left (Temporal down, a timeout)
the relay loop picks up: it claims due rows with a lease (several API replicas never relay the
same row at once), starts or signals, and settles each row as relayed, ignored (the order has
finished), rejected (the order was never here) or failed (tried again later, with backoff).

Relaying twice is harmless anyway: workflow ids are deterministic (a second start finds the
workflow), and signals carry the row's fixed request id, which Temporal deduplicates.

Two kinds of rows need more than Temporal:

* **Acknowledged only** (``action="signal"`` without a signal name): deliveries the platform
  keeps but has nothing to do with (a WooCommerce ping, an order still awaiting payment, a
  scope not handled). Settled ``ignored`` at once, without Temporal.
* **Store stock** (argument :class:`ChannelStockLookup`): a Shopify ``inventory_levels/update``
  at a store location names an inventory item, not a SKU. The relay looks the SKU up on the Admin
  API (cached between rows), then starts ``InventoryAdjustment`` with the count. Unreachable or
  429: pending, retried; an item Shopify lists without a SKU (or not at all): ``rejected``.
* **Doorbells** (``source="bigcommerce"``, ``action="start"``, argument :class:`ChannelFetch`):
  a thin callback only names the order. The relay fetches it from BigCommerce's API (never the
  API request), maps it and starts ``OrderToCash``. A rate limit (429) or transient failure
  leaves the row pending, retried after ``max(backoff, the vendor's reset time)``; a permanent
  one (``order_not_found``, a credential refused) or an unmappable order rejects the row with
  the reason (``retail webhooks rejected``; ``retail webhooks requeue ID`` after a fix); an
  order still Incomplete (status 0) is ignored (its ``statusUpdated`` rings again).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

import httpx
import structlog
from fastapi import HTTPException
from opentelemetry import trace
from pydantic import BaseModel, ValidationError
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import tracing
from adapters.channels.bigcommerce import NOT_PLACED_STATUS_IDS, BigCommerceClient, order_from_bigcommerce
from adapters.channels.errors import MappingError
from adapters.channels.shopify.admin import ItemSkus, ShopifyAdminChannel
from adapters.channels.shopify.mapping import order_from_shopify
from adapters.channels.shopify.stock import StoreLevel, store_count
from adapters.errors import PermanentError, RateLimitedError, TransientError
from api.metrics import (
    ORDERS_INGESTED,
    WEBHOOK_INBOX_OLDEST_PENDING_S,
    WEBHOOK_INBOX_PENDING,
    WEBHOOK_RELAYS,
    WEBHOOKS_REJECTED,
    metric_source,
)
from api.temporal import ClientFactory, TemporalGateway, signal_order
from canonical import ChannelFulfillment, InventoryEvent, Order, Shipment, TrackingEvent
from canonical.edits import ChannelOrderUpdate, OrderEdit
from canonical.returns import ReturnReceipt, ReturnRequest
from orchestration.client import start_order, start_return, submit_inventory_event
from orchestration.inventory_models import adjustment_workflow_id
from orchestration.models import CancelRequest
from settings import Settings
from store import inbox
from store.columns import utcnow
from store.db import Store
from store.inbox import InboxEntry

log = structlog.get_logger("relay")
T = TypeVar("T")

# What each signal carries: the stored argument is validated back into it before sending.
SIGNAL_ARGUMENTS: dict[str, type[BaseModel]] = {
    "request_cancel": CancelRequest,
    "shipment_reported": Shipment,
    "tracking_updated": TrackingEvent,
    "receipt_reported": ReturnReceipt,
    "order_updated": OrderEdit,
    "channel_fulfilled": ChannelFulfillment,
}
# Channel events that may overtake the order they belong to (answered 200 either way).
EARLY_SIGNALS = frozenset({"order_updated", "channel_fulfilled"})
RETURN_PREFIX = "return-"
INVENTORY_PREFIX = adjustment_workflow_id("")

# RPC answers that mean "Temporal is not there (or not taking work) right now".
_UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
}

RelayStatus = Literal["relayed", "ignored", "rejected", "failed"]

# Makes the HTTP client a channel's API is called with; the relay closes each one after use.
HttpClientFactory = Callable[[], httpx.AsyncClient]


DOORBELL: Literal["channel_fetch"] = "channel_fetch"
"""Marks a stored start as a doorbell (an order to fetch), not an order to start as it is."""


class ChannelFetch(BaseModel):
    """What a doorbell row carries: the order to fetch from the channel before starting."""

    kind: Literal["channel_fetch"] = DOORBELL
    channel: Literal["bigcommerce", "shopify"] = "bigcommerce"
    order_id: str
    scope: str
    store_hash: str | None = None


STOCK_LOOKUP: Literal["channel_stock"] = "channel_stock"
"""Marks a stored start as a channel's store stock level whose SKU the relay looks up."""
# How long the relay trusts the item -> SKU listing it keeps (an unknown item lists again at once).
ITEM_SKUS_MAX_AGE_S = 600.0


class ChannelStockLookup(BaseModel):
    """What a store stock row carries: a channel's level at one of its store locations, counted
    into the ledger once the relay knows the item's SKU."""

    kind: Literal["channel_stock"] = STOCK_LOOKUP
    channel: Literal["shopify"] = "shopify"
    level: StoreLevel


@dataclass(frozen=True)
class RelayResult:
    status: RelayStatus
    detail: str
    reason: str | None = None  # why it was rejected: unknown_order, invalid_payload
    unavailable: bool = False  # failed because Temporal could not be reached
    status_code: int = 404  # the HTTP status a rejection is recorded (and answered) with
    took_ms: int = 0
    retry_after: float | None = None  # a failure the vendor asked to retry no sooner than this


@dataclass
class RelayReport:
    """One pass: how many rows were claimed and how each went."""

    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    stopped_early: bool = False  # Temporal was unreachable: the rest were given back untried


@contextlib.contextmanager
def _relay_span(entry: InboxEntry) -> Iterator[None]:
    """A span for one relay attempt (tracing on): inside the webhook's request span when relayed
    inline, else a child of the context kept with the delivery, so a start made minutes later,
    after an outage, still belongs to the webhook's trace."""
    traced = tracing.current()
    if traced is None:
        yield
        return
    inline = trace.get_current_span().get_span_context().is_valid
    parent = None if inline else tracing.extract(entry.trace_context)
    with (
        traced.tracer.start_as_current_span(
            "inbox relay",
            context=parent,
            attributes={"retail.inbox_id": entry.id, "retail.topic": entry.topic},
        ),
        tracing.correlated(entry.correlation_id, workflow_id=entry.workflow_id),
    ):
        yield


class InboxRelay:
    """Relays pending inbox rows to Temporal. ``temporal`` is the API's gateway or a factory
    returning a connected client (called again after a failed connect)."""

    def __init__(
        self,
        store: Store,
        temporal: TemporalGateway | ClientFactory,
        settings: Settings,
        *,
        name: str | None = None,
        http_client_factory: HttpClientFactory | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._http = http_client_factory or (
            lambda: httpx.AsyncClient(timeout=settings.bigcommerce_request_timeout_s)
        )
        self.gateway = (
            temporal if isinstance(temporal, TemporalGateway) else TemporalGateway(settings, factory=temporal)
        )
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        # Optimistic until an attempt fails for want of Temporal; while False the API answers
        # webhooks without waiting for Temporal and the loop probes until it is back.
        self.temporal_ok = True
        # Shopify inventory item -> SKU, kept between rows (store stock); one listing at a time.
        self._item_skus = ItemSkus()
        self._item_skus_lock = asyncio.Lock()

    # -- one row -------------------------------------------------------------------------

    def lease_owner(self) -> str:
        return inbox.new_lease_owner(self.name)

    def lease_until(self) -> timedelta:
        return timedelta(seconds=self.settings.webhook_relay_lease_s)

    async def relay_claimed(self, entry: InboxEntry, timeout: float | None = None) -> RelayResult:
        """Relay one row this relay holds the lease of, and record the result on the row."""
        with _relay_span(entry):
            return await self._relay_claimed(entry, timeout)

    async def _relay_claimed(self, entry: InboxEntry, timeout: float | None) -> RelayResult:
        limit = timeout if timeout is not None else self.settings.webhook_relay_timeout_s
        started = time.monotonic()
        asked_temporal = True
        try:
            prepared = await self._prepare(entry)
            if isinstance(prepared, RelayResult):  # settled without Temporal
                result, asked_temporal = prepared, False
            else:
                result = await asyncio.wait_for(self._attempt(entry, prepared), limit)
        except TimeoutError:
            result = RelayResult("failed", f"Temporal did not answer within {limit:g}s", unavailable=True)
        except HTTPException as exc:  # the gateway could not connect
            detail = exc.detail.get("detail") if isinstance(exc.detail, dict) else exc.detail
            result = RelayResult("failed", str(detail), unavailable=True)
        except RPCError as exc:
            result = RelayResult(
                "failed",
                f"Temporal: {exc.status.name}: {exc.message}",
                unavailable=exc.status in _UNAVAILABLE,
            )
        except Exception as exc:  # anything else is retried too, and shown on the row
            log.exception("relay attempt failed", inbox_id=entry.id, workflow_id=entry.workflow_id)
            result = RelayResult("failed", f"{type(exc).__name__}: {exc}")
        if asked_temporal:
            self.temporal_ok = not result.unavailable
        result = dataclasses.replace(result, took_ms=round((time.monotonic() - started) * 1000))
        await asyncio.to_thread(self._settle, entry, result)
        WEBHOOK_RELAYS.labels(result.status).inc()
        trace.get_current_span().set_attribute("retail.relay.outcome", result.status)
        return result

    async def _prepare(self, entry: InboxEntry) -> Order | InventoryEvent | RelayResult | None:
        """What must happen before Temporal: an order fetched for a doorbell, a store count whose
        SKU was looked up; a result for a row that needs no Temporal at all; None for the rest."""
        if entry.action == "signal" and not entry.signal:
            note = entry.argument.get("note")
            return RelayResult("ignored", str(note) if note else "acknowledged; nothing to relay")
        if entry.action == "start" and entry.source == "bigcommerce":
            return await self._fetch_bigcommerce(entry)
        if entry.action == "start" and entry.source == "shopify" and entry.argument.get("kind") == DOORBELL:
            return await self._fetch_shopify(entry)
        if entry.action == "start" and entry.argument.get("kind") == STOCK_LOOKUP:
            return await self._store_count(entry)
        return None

    async def _shopify(self, call: Callable[[ShopifyAdminChannel], Awaitable[T]]) -> T | RelayResult:
        """One Admin API call for the relay: not configured, slow, rate limited or down is a
        failure to retry (nothing is lost while access is being set up); a refusal rejects."""
        s = self.settings
        token = s.shopify_access_token.get_secret_value()
        if not s.shopify_admin_url or not token:
            return RelayResult(
                "failed", "Shopify Admin API not configured (RETAIL_SHOPIFY_ADMIN_URL, _ACCESS_TOKEN)"
            )
        api = ShopifyAdminChannel(
            s.shopify_admin_url, token, s.shopify_api_version, item_skus=self._item_skus
        )
        try:
            async with asyncio.timeout(s.shopify_fetch_timeout_s):
                return await call(api)
        except TimeoutError:
            return RelayResult("failed", f"Shopify did not answer within {s.shopify_fetch_timeout_s:g}s")
        except RateLimitedError as exc:
            return RelayResult("failed", f"Shopify rate limit: {exc.message}", retry_after=exc.retry_after)
        except TransientError as exc:
            return RelayResult("failed", f"Shopify: {exc.message}")
        except PermanentError as exc:
            code = 404 if exc.reason == "shopify_not_found" else 502
            return RelayResult("rejected", f"Shopify: {exc.message}", exc.reason, status_code=code)
        finally:
            await api.aclose()

    async def _fetch_shopify(self, entry: InboxEntry) -> Order | RelayResult:
        """A Shopify webhook taken as a doorbell (RETAIL_SHOPIFY_REFETCH_ORDERS): the order as the
        Admin API has it now, mapped. Never raises: every outcome is a result or the order."""
        try:
            fetch = ChannelFetch.model_validate(entry.argument)
        except ValidationError as exc:
            return RelayResult(
                "rejected", f"the stored event is not valid: {exc}", "invalid_payload", status_code=422
            )
        payload = await self._shopify(lambda api: api.get_order(fetch.order_id))
        if isinstance(payload, RelayResult):
            return payload
        try:
            return order_from_shopify(payload)
        except MappingError as exc:
            return RelayResult("rejected", str(exc), "mapping_error", status_code=422)
        except (ValueError, ArithmeticError) as exc:
            return RelayResult(
                "rejected", f"the order cannot be mapped: {exc}", "mapping_error", status_code=422
            )

    async def _store_count(self, entry: InboxEntry) -> InventoryEvent | RelayResult:
        """A store's stock level as a ledger count: the item's SKU looked up on the Admin API (the
        relay's listing, listed again once for an item it does not know). Never raises."""
        try:
            level = ChannelStockLookup.model_validate(entry.argument).level
        except ValidationError as exc:
            return RelayResult(
                "rejected", f"the stored stock level is not valid: {exc}", "invalid_payload", status_code=422
            )
        item = level.inventory_item_id

        async def lookup(api: ShopifyAdminChannel) -> str | None:
            async with self._item_skus_lock:  # one listing at a time refreshes the shared cache
                return await api.sku_of(item, max_age_s=ITEM_SKUS_MAX_AGE_S)

        sku = await self._shopify(lookup)
        if isinstance(sku, RelayResult):
            return sku
        if sku is None:
            return RelayResult(
                "rejected",
                f"Shopify lists inventory item {item} without a SKU, or not at all: the count at"
                f" {level.location} cannot be booked (give the variant a SKU, then requeue)",
                "unknown_inventory_item",
                status_code=404,
            )
        try:
            return store_count(level, sku)
        except ValidationError as exc:
            return RelayResult(
                "rejected",
                f"SKU {sku!r} does not make a stock event: {exc}",
                "invalid_event",
                status_code=422,
            )

    async def _fetch_bigcommerce(self, entry: InboxEntry) -> Order | RelayResult:
        """The order a BigCommerce callback rang for, fetched and mapped (adapter work, here and
        not in the request). Never raises: every outcome is a result or the order."""
        try:
            fetch = ChannelFetch.model_validate(entry.argument)
        except ValidationError as exc:
            return RelayResult(
                "rejected", f"the stored event is not valid: {exc}", "invalid_payload", status_code=422
            )
        s = self.settings
        token = s.bigcommerce_access_token.get_secret_value()
        if not s.bigcommerce_store_hash or not token:
            # Kept and retried: nothing is lost while the API account is being configured.
            return RelayResult(
                "failed", "BigCommerce API not configured (RETAIL_BIGCOMMERCE_STORE_HASH, _ACCESS_TOKEN)"
            )
        try:
            async with asyncio.timeout(s.bigcommerce_fetch_timeout_s), self._http() as http:
                api = BigCommerceClient(s.bigcommerce_api_url, s.bigcommerce_store_hash, token, http)
                fetched = await api.get_order(fetch.order_id)
        except TimeoutError:
            return RelayResult(
                "failed", f"BigCommerce did not answer within {s.bigcommerce_fetch_timeout_s:g}s"
            )
        except RateLimitedError as exc:
            return RelayResult(
                "failed", f"BigCommerce rate limit: {exc.message}", retry_after=exc.retry_after
            )
        except TransientError as exc:
            return RelayResult("failed", f"BigCommerce: {exc.message}")
        except PermanentError as exc:
            code = 404 if exc.reason == "order_not_found" else 502
            return RelayResult("rejected", f"BigCommerce: {exc.message}", exc.reason, status_code=code)
        status_id = fetched.order.get("status_id")
        if status_id in NOT_PLACED_STATUS_IDS:
            return RelayResult(
                "ignored", f"order {fetch.order_id} is not placed yet (status {status_id}, Incomplete)"
            )
        try:
            return order_from_bigcommerce(
                fetched.order, fetched.products, fetched.shipping_addresses, fetched.coupons
            )
        except MappingError as exc:
            return RelayResult("rejected", str(exc), "mapping_error", status_code=422)
        except (ValueError, ArithmeticError) as exc:
            return RelayResult(
                "rejected", f"the order cannot be mapped: {exc}", "mapping_error", status_code=422
            )

    async def _attempt(
        self, entry: InboxEntry, prepared: Order | InventoryEvent | None = None
    ) -> RelayResult:
        client = await self.gateway.client()
        # What a start starts is named by its workflow id: return-..., inventory-..., order-...
        if entry.action == "start" and entry.workflow_id.startswith(RETURN_PREFIX):
            return await self._start_return(client, entry)
        if isinstance(prepared, InventoryEvent):
            return await self._start_inventory(client, entry, prepared)
        if entry.action == "start" and entry.workflow_id.startswith(INVENTORY_PREFIX):
            return await self._start_inventory(client, entry)
        if entry.action == "start" and entry.signal == "order_updated":
            # An update that may be the order's first delivery: signal-with-start.
            try:
                upd = ChannelOrderUpdate.model_validate_json(json.dumps(entry.argument))
            except ValidationError as exc:
                return RelayResult(
                    "rejected", f"the stored update is not valid: {exc}", "invalid_payload", status_code=422
                )
            handle = await start_order(client, upd.order, self.settings, entry.correlation_id, edit=upd.edit)
            return RelayResult("relayed", f"workflow {handle.id} started or signalled order_updated")
        if entry.action == "start":
            if prepared is not None:
                order = prepared
            else:
                try:
                    order = Order.model_validate_json(json.dumps(entry.argument))
                except ValidationError as exc:
                    return RelayResult(
                        "rejected",
                        f"the stored order is not valid: {exc}",
                        "invalid_payload",
                        status_code=422,
                    )
            handle = await start_order(client, order, self.settings, entry.correlation_id)
            # Orders the order API kept while Temporal was down count as "api", like the others.
            source = "api" if entry.source == "api" else f"{entry.source.split(':')[0]}_webhook"
            ORDERS_INGESTED.labels(order.channel, source).inc()
            return RelayResult("relayed", f"workflow {handle.id} started (or already running)")

        signal = entry.signal or ""
        model = SIGNAL_ARGUMENTS.get(signal)
        if model is None:
            return RelayResult("rejected", f"unknown signal {signal!r}", "invalid_payload", status_code=422)
        try:
            arg = model.model_validate_json(json.dumps(entry.argument))
        except ValidationError as exc:
            return RelayResult(
                "rejected", f"the stored event is not valid: {exc}", "invalid_payload", status_code=422
            )
        request_id = f"inbox-{entry.relay_id}"
        outcome = await signal_order(client, entry.workflow_id, signal, arg, request_id=request_id)
        if outcome == "signalled":
            return RelayResult("relayed", f"signalled {signal} to {entry.workflow_id}")
        # No running workflow: one that has finished (a late event, acknowledged and ignored),
        # one about to be started by a delivery still in the inbox (wait for it), or none.
        if outcome == "missing":
            if await asyncio.to_thread(inbox.pending_start_for, self.store, entry.workflow_id):
                return RelayResult("failed", f"waiting for {entry.workflow_id} to be started")
            grace = timedelta(seconds=self.settings.webhook_relay_early_event_s)
            if signal in EARLY_SIGNALS and datetime.now(UTC) - entry.received_at < grace:
                # Channels do not deliver in order: the order's own webhook may still come.
                why = f"no workflow {entry.workflow_id} yet: retried for a while in case its order comes"
                return RelayResult("failed", why)
            return RelayResult(
                "rejected", f"no workflow {entry.workflow_id} to signal", "unknown_order", status_code=404
            )
        return RelayResult("ignored", "the order has finished")

    async def _start_return(self, client: Client, entry: InboxEntry) -> RelayResult:
        try:
            req = ReturnRequest.model_validate_json(json.dumps(entry.argument))
        except ValidationError as exc:
            return RelayResult(
                "rejected", f"the stored return is not valid: {exc}", "invalid_payload", status_code=422
            )
        if await asyncio.to_thread(inbox.pending_start_for, self.store, f"order-{req.order_key}"):
            # The refund overtook its order in the inbox: start the return once the order is in.
            return RelayResult("failed", f"waiting for order-{req.order_key} to be started")
        started = await start_return(client, req, self.settings, entry.correlation_id)
        return RelayResult("relayed", f"workflow {started.id} started (or already there)")

    async def _start_inventory(
        self, client: Client, entry: InboxEntry, prepared: InventoryEvent | None = None
    ) -> RelayResult:
        """A warehouse's stock event, or a store's count (``prepared``): InventoryAdjustment, one
        per ledger event id (a second start, even after the first has finished, finds it)."""
        try:
            event = prepared or InventoryEvent.model_validate_json(json.dumps(entry.argument))
        except ValidationError as exc:
            return RelayResult(
                "rejected", f"the stored stock event is not valid: {exc}", "invalid_payload", status_code=422
            )
        wf_id = await submit_inventory_event(client, event, self.settings, entry.correlation_id)
        return RelayResult("relayed", f"workflow {wf_id} started (or already there)")

    def _settle(self, entry: InboxEntry, result: RelayResult) -> None:
        now = utcnow()
        if result.status == "relayed":
            inbox.mark_relayed(self.store, entry.id, result.detail, now=now)
            log.info(
                "webhook relayed",
                inbox_id=entry.id,
                workflow_id=entry.workflow_id,
                topic=entry.topic,
                took_ms=result.took_ms,
            )
        elif result.status == "ignored":
            inbox.mark_ignored(self.store, entry.id, result.detail, now=now)
            log.info("event for a closed order ignored", inbox_id=entry.id, workflow_id=entry.workflow_id)
        elif result.status == "rejected":
            reason = result.reason or "rejected"
            inbox.mark_rejected(
                self.store, entry.id, reason, result.detail, status_code=result.status_code, now=now
            )
            WEBHOOKS_REJECTED.labels(metric_source(entry.source), reason).inc()
            log.warning(
                "webhook rejected when relayed", inbox_id=entry.id, reason=reason, detail=result.detail
            )
        else:
            attempts = entry.attempts + 1
            delay = min(
                self.settings.webhook_relay_retry_initial_s * 2 ** (attempts - 1),
                self.settings.webhook_relay_retry_max_s,
            )
            if result.retry_after is not None:  # the vendor's own delay (e.g. a rate-limit reset)
                delay = max(delay, result.retry_after)
            inbox.mark_failed(self.store, entry.id, result.detail, retry_at=now + timedelta(seconds=delay))
            log.warning(
                "webhook relay failed; will retry",
                inbox_id=entry.id,
                workflow_id=entry.workflow_id,
                attempts=attempts,
                retry_in_s=delay,
                error=result.detail,
            )

    # -- the loop ----------------------------------------------------------------------------

    async def run_once(self) -> RelayReport:
        """Relay every due row once. Rows of one workflow go in the order they arrived (a
        cancellation after its order), different workflows in parallel (up to
        ``webhook_relay_concurrency``). At the first sign that Temporal is unreachable the
        rest are given back untried."""
        now = utcnow()
        entries = await asyncio.to_thread(
            inbox.claim_due,
            self.store,
            self.lease_owner(),
            lease_until=now + self.lease_until(),
            now=now,
            limit=self.settings.webhook_relay_batch,
        )
        report = RelayReport(claimed=len(entries))
        by_workflow: dict[str, list[InboxEntry]] = {}
        for entry in entries:
            by_workflow.setdefault(entry.workflow_id, []).append(entry)
        untried: list[int] = []
        slots = asyncio.Semaphore(self.settings.webhook_relay_concurrency)

        async def relay_in_order(group: list[InboxEntry]) -> None:
            async with slots:
                for i, entry in enumerate(group):
                    if report.stopped_early:
                        untried.extend(e.id for e in group[i:])
                        return
                    result = await self.relay_claimed(entry)
                    report.outcomes[result.status] += 1
                    if result.unavailable:
                        report.stopped_early = True
                        untried.extend(e.id for e in group[i + 1 :])
                        return

        await asyncio.gather(*(relay_in_order(group) for group in by_workflow.values()))
        await asyncio.to_thread(inbox.release, self.store, untried)
        return report

    async def probe(self) -> bool:
        """Whether Temporal answers now; when it is back after an outage, every pending row is
        made due at once instead of sitting out its backoff."""
        try:
            client = await self.gateway.client()
            await client.workflow_service.get_system_info(
                GetSystemInfoRequest(), retry=False, timeout=timedelta(seconds=2)
            )
        except Exception:  # refused, timed out, not connected yet: still down
            return False
        if not self.temporal_ok:
            self.temporal_ok = True
            n = await asyncio.to_thread(inbox.expedite_pending, self.store)
            log.info("Temporal is reachable again; relaying the inbox", pending_made_due=n)
        return True

    def update_gauges(self) -> None:
        pending, oldest = inbox.pending_stats(self.store)
        WEBHOOK_INBOX_PENDING.set(pending)
        WEBHOOK_INBOX_OLDEST_PENDING_S.set((utcnow() - oldest).total_seconds() if oldest else 0.0)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set: drain what is due, then look again every interval."""
        log.info("inbox relay started", relay=self.name)
        while not stop.is_set():
            busy = False
            try:
                # While Temporal is down a cheap probe stands in for relay attempts that would
                # each wait out their timeout.
                if self.temporal_ok or await self.probe():
                    report = await self.run_once()
                    busy = report.claimed >= self.settings.webhook_relay_batch and not report.stopped_early
                await asyncio.to_thread(self.update_gauges)
            except Exception:  # the store is unreachable, say: log, wait, try again
                log.exception("inbox relay pass failed")
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.webhook_relay_interval_s)
        log.info("inbox relay stopped", relay=self.name)
