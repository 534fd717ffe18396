"""Webhook ingress: check, map, keep, then relay.

Every webhook route runs the same steps, and every refusal is a 4xx with a reason (never a
500), counted in ``retail_webhooks_rejected_total`` and recorded (``retail webhooks rejected``):

1. size: ``Content-Length`` and the bytes actually read, at most ``webhook_max_bytes`` (413);
2. signature over the raw body, constant-time, current or still-valid old secret (401);
3. ``Content-Type: application/json`` (415), then JSON (400);
4. mapping to what the workflow needs: an order to start, an event to signal (422, with the
   path of the offending field);
5. kept in the inbox, deduplicated on the vendor's event/delivery id and on the business key;
   a redelivery is answered 200 ``duplicate`` and relays nothing;
6. relayed inline when Temporal answers within ``webhook_inline_relay_timeout_s``; otherwise
   answered 200 ``queued``: the delivery is safe in the inbox and the relay loop hands it over
   when Temporal is back.

An event for an order the platform never had is a 404 when that can be decided at once; when
Temporal is down it is accepted and decided when relayed (the row is then ``rejected``).

Sales channels follow the same steps with their vendors' rules (docs/adding-a-channel.md):

* **WooCommerce** never retries and disables a webhook after more than 5 failed deliveries in a
  row, so once a delivery is authenticated every refusal is recorded (``retail webhooks
  rejected``) but answered 200 ``{"status": "rejected", "reason": ...}``. Its unsigned activation
  ping is answered 200 ``pong`` and kept. Orders start on the first delivery whose status is
  paid or authorized (``processing``, ``completed``, ``on-hold``); ``order.deleted`` and a
  ``cancelled`` status request cancellation; the rest is kept and acknowledged (``ignored``).
* **BigCommerce** callbacks are thin: a new order is kept as a *doorbell* and answered 200
  ``queued`` without calling BigCommerce; the relay fetches, maps and starts it
  (``api.relay``). A status change to Cancelled or Declined requests cancellation.
* **Shopify stock levels** (``inventory_levels/update``) at the channel's own stores are kept
  like a doorbell and answered ``queued``: the relay looks the item's SKU up and starts a
  ledger cycle count. At any other location they are acknowledged only (``ignored``).

Deliveries kept only to be acknowledged (nothing to relay) are inbox rows settled ``ignored``
at once, so every authenticated delivery can be found with ``retail webhooks inbox``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import structlog
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

import tracing
from adapters.carrier.webhook import TrackingWebhook, parse_tracking_target
from adapters.channels import bigcommerce as bc
from adapters.channels import woocommerce as woo
from adapters.channels.errors import MappingError
from adapters.channels.shopify.fulfillments import fulfillment_from_shopify
from adapters.channels.shopify.mapping import order_edit_from_shopify, order_from_shopify
from adapters.channels.shopify.refunds import return_from_shopify_refund
from adapters.channels.shopify.stock import NOT_A_STORE, NOT_TRACKED, location_of, store_level
from adapters.channels.shopify.stock import TOPIC as SHOPIFY_INVENTORY_TOPIC
from adapters.channels.woocommerce.mapping import updated_at as woo_updated_at
from adapters.wms.stock_webhook import INVENTORY_EVENTS, InventoryWebhook, parse_inventory
from adapters.wms.webhook import (
    EVENT_RETURN_RECEIVED,
    ReturnReceivedWebhook,
    ShipmentWebhook,
    parse_return_receipt,
    parse_shipment,
    webhook_type,
)
from api import signatures
from api.errors import problem
from api.inventory_rules import refusal
from api.metrics import WEBHOOK_DELIVERIES, WEBHOOKS_REJECTED, metric_source
from api.relay import ChannelFetch, ChannelStockLookup, InboxRelay, RelayResult
from canonical.edits import ChannelOrderUpdate, edit_from_order
from canonical.returns import ReturnReceipt
from orchestration.inventory_models import adjustment_workflow_id
from orchestration.models import CancelRequest
from settings import Settings
from store import inbox
from store.db import Store

log = structlog.get_logger("api")
M = TypeVar("M")

INBOX_ID_HEADER = "X-Retail-Inbox-Id"
OUT_OF_RANGE = "an amount or quantity is too large to compute exactly"
MAX_WORKFLOW_ID = 1000

# Header names (lower case) containing any of these are never stored: signatures, secrets,
# credentials.
_SECRET_BEARING = ("hmac", "signature", "secret", "token", "authorization", "cookie", "api-key", "apikey")
_MAX_HEADERS = 64
_MAX_HEADER_VALUE = 1000

# WooCommerce statuses an order starts on: paid (processing, completed) or, for gateways that
# only authorize, on-hold. A pending order waits for the order.updated that says it is paid.
WOO_STARTABLE = frozenset({"processing", "completed", "on-hold"})
WOO_START_TOPICS = frozenset({"order.created", "order.updated", "order.restored"})
# BigCommerce status ids that end an order at the channel: 5 Cancelled, 6 Declined.
BC_CANCELLED_STATUS_IDS = frozenset({5, 6})
BC_CREATED = "store/order/created"
SHOPIFY_FULFILLMENT_TOPICS = frozenset({"fulfillments/create", "fulfillments/update"})
BC_STATUS_UPDATED = "store/order/statusUpdated"


def safe_headers(request: Request) -> dict[str, str]:
    """The request's headers without anything that carries a signature or a secret."""
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        lower = name.lower()
        if any(word in lower for word in _SECRET_BEARING):
            continue
        if len(out) >= _MAX_HEADERS:
            break
        out[lower[:100]] = value[:_MAX_HEADER_VALUE]
    return out


def json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise problem(400, "malformed_json", f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # nesting deeper than the parser's stack: not an order
        raise problem(400, "malformed_json", "body is nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise problem(400, "malformed_json", f"body is not usable JSON: {exc}") from exc


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";")[0].strip().lower() == "application/json"


def _error_path(model: type[BaseModel], payload: Any) -> tuple[str | None, list[dict[str, str]]]:
    """The path of the first field ``payload`` gets wrong for ``model``, and all the errors."""
    try:
        model.model_validate_json(json.dumps(payload))  # JSON mode, as the mapping parses it
    except ValidationError as exc:
        errors = [
            {"path": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()
        ]
        return (errors[0]["path"] or None) if errors else None, errors
    return None, []


def return_workflow_for(return_key: str) -> str:
    """The ReturnToRefund workflow of a return key (``<channel>-<return id>``): ``return-<key>``,
    as ``canonical.returns.return_workflow_id`` names it."""
    return f"return-{return_key}"


@dataclass
class Delivery:
    """What is known about one request so far (for the inbox row or the rejection record)."""

    source: str  # "shopify", "wms:<name>", "carrier:<name>"
    headers: dict[str, str]
    topic: str | None = None
    delivery_id: str | None = None
    event_id: str | None = None
    raw: bytes | None = None
    size: int | None = None
    authenticated: bool = False


@dataclass
class Command:
    """What the workflow should be told, and how to answer the sender."""

    topic: str
    workflow_id: str
    action: Literal["start", "signal"]
    argument: BaseModel
    dedupe_key: str
    business_key: str | None
    correlation_id: str
    signal: str | None = None
    ids: dict[str, str] = field(default_factory=dict)  # echoed in every 2xx answer
    accepted: dict[str, str] = field(default_factory=dict)  # the answer once relayed
    queued_detail: str | None = None  # the answer's detail while it waits in the inbox


class Acknowledged(BaseModel):
    """The argument of a row kept only to be acknowledged: why nothing is relayed."""

    note: str


class PayloadTooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class Ingress:
    def __init__(self, settings: Settings, store: Store, relay: InboxRelay) -> None:
        self.settings = settings
        self.store = store
        self.relay = relay

    # -- the common steps --------------------------------------------------------------------

    async def _read(self, request: Request) -> bytes:
        limit = self.settings.webhook_max_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(int(declared))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(size)
            chunks.append(chunk)
        return b"".join(chunks)

    async def reject(self, d: Delivery, status: int, reason: str, detail: str, **extra: Any) -> HTTPException:
        """Count and record a refused delivery; the exception to raise for it."""
        WEBHOOKS_REJECTED.labels(metric_source(d.source), reason).inc()
        raw = d.raw
        keep_body = raw is not None and d.authenticated and len(raw) <= self.settings.webhook_max_bytes
        record = inbox.NewRejection(
            source=d.source,
            status_code=status,
            reason=reason,
            detail=detail,
            headers=d.headers,
            topic=d.topic,
            delivery_id=d.delivery_id,
            event_id=d.event_id,
            path=extra.get("path"),
            body=raw if keep_body else None,
            body_sha256=hashlib.sha256(raw).hexdigest() if raw is not None else None,
            body_size=len(raw) if raw is not None else d.size,
        )
        try:
            await asyncio.to_thread(inbox.record_rejection, self.store, record)
        except Exception:  # the answer matters more than the record of it
            log.exception("could not record a rejected webhook", source=d.source, reason=reason)
        log.info("webhook rejected", source=d.source, status=status, reason=reason, topic=d.topic)
        return problem(status, reason, detail, **extra)

    async def _read_body(self, request: Request, d: Delivery) -> bytes:
        """Step 1: the raw body, within the size limit (413 otherwise)."""
        try:
            raw = await self._read(request)
        except PayloadTooLarge as exc:
            d.size = exc.size
            limit = self.settings.webhook_max_bytes
            raise await self.reject(
                d, 413, "payload_too_large", f"the body is larger than {limit} bytes"
            ) from None
        d.raw = raw
        return raw

    async def _receive(
        self, request: Request, d: Delivery, sender: signatures.Sender, header: str, what: str
    ) -> Any:
        """Steps 1 to 3: the parsed JSON body of an authentic delivery."""
        raw = await self._read_body(request, d)
        if not signatures.verify(sender, self.settings, raw, request.headers.get(header), datetime.now(UTC)):
            raise await self.reject(d, 401, "invalid_signature", f"missing or invalid {what}")
        d.authenticated = True
        if not is_json(request.headers.get("content-type")):
            raise await self.reject(d, 415, "unsupported_media_type", "Content-Type must be application/json")
        try:
            return json_body(raw)
        except HTTPException as exc:
            detail = exc.detail.get("detail", "") if isinstance(exc.detail, dict) else str(exc.detail)
            raise await self.reject(d, 400, "malformed_json", str(detail)) from None

    async def _mapped(self, d: Delivery, mapper: Callable[[Any], M], payload: Any) -> M:
        """Step 4: the payload mapped, or a recorded 422 with the path of the offending field."""
        try:
            return mapper(payload)
        except (MappingError, ValidationError, ValueError) as exc:
            raise await self.reject(
                d, 422, "mapping_error", str(exc), path=getattr(exc, "path", None)
            ) from exc
        except ArithmeticError as exc:  # decimal.InvalidOperation: beyond exact arithmetic
            raise await self.reject(d, 422, "mapping_error", OUT_OF_RANGE) from exc

    async def _refuse_with_200(
        self, d: Delivery, status: int, reason: str, detail: str, **extra: Any
    ) -> JSONResponse:
        """Record and count a refusal like :meth:`reject`, but answer 200: for senders that
        disable a webhook after a few failed deliveries (WooCommerce)."""
        await self.reject(d, status, reason, detail, **extra)
        body: dict[str, Any] = {"status": "rejected", "reason": reason, "detail": detail}
        if extra.get("path"):
            body["path"] = extra["path"]
        return JSONResponse(body)

    async def _acknowledge(
        self,
        d: Delivery,
        *,
        topic: str,
        workflow_id: str,
        dedupe_key: str,
        business_key: str | None,
        note: str,
        answer: dict[str, str] | None = None,
    ) -> JSONResponse:
        """Keep a delivery that needs nothing from Temporal, settled ``ignored`` at once."""
        cmd = Command(
            topic=topic,
            workflow_id=workflow_id,
            action="signal",
            signal=None,
            argument=Acknowledged(note=note),
            dedupe_key=dedupe_key,
            business_key=business_key,
            correlation_id=d.delivery_id or uuid.uuid4().hex,
            accepted=answer or {"status": "ignored", "detail": note},
        )
        return await self._accept(d, cmd)

    async def _accept(
        self, d: Delivery, cmd: Command, *, inline: bool | None = None, refuse_rejected: bool = True
    ) -> JSONResponse:
        """Steps 5 and 6: keep the delivery, then relay it if Temporal answers in time.

        ``inline=False`` never relays during the request (a doorbell: the relay calls the
        channel's API); ``refuse_rejected=False`` answers a rejection by the relay with 200."""
        if len(cmd.workflow_id) > MAX_WORKFLOW_ID:
            raise await self.reject(d, 422, "mapping_error", "the order key is too long")
        with tracing.correlated(
            cmd.correlation_id, workflow_id=cmd.workflow_id, webhook_source=d.source, topic=cmd.topic
        ):
            return await self._keep_and_relay(d, cmd, inline=inline, refuse_rejected=refuse_rejected)

    async def _keep_and_relay(
        self, d: Delivery, cmd: Command, *, inline: bool | None, refuse_rejected: bool
    ) -> JSONResponse:
        assert d.raw is not None
        owner = self.relay.lease_owner()
        now = datetime.now(UTC)
        acknowledge_only = cmd.action == "signal" and cmd.signal is None
        if acknowledge_only:
            inline = True  # settled without Temporal
        elif inline is None:
            inline = self.relay.temporal_ok and self.settings.webhook_inline_relay_timeout_s > 0
        new = inbox.NewDelivery(
            source=d.source,
            topic=cmd.topic,
            delivery_id=d.delivery_id,
            event_id=d.event_id,
            dedupe_key=cmd.dedupe_key,
            business_key=cmd.business_key,
            workflow_id=cmd.workflow_id,
            action=cmd.action,
            signal=cmd.signal,
            argument=cmd.argument.model_dump(mode="json"),
            correlation_id=cmd.correlation_id,
            # The request span's context replaces any sender's: a later relay joins this trace.
            headers={**d.headers, **tracing.inject()},
            body=d.raw,
        )
        try:
            recorded = await asyncio.to_thread(
                inbox.record_delivery,
                self.store,
                new,
                now=now,
                lease_owner=owner if inline else None,
                lease_until=now + self.relay.lease_until() if inline else None,
            )
        except Exception as exc:  # not kept, so not acknowledged: the sender will retry
            log.exception("could not keep a webhook delivery", source=d.source, topic=cmd.topic)
            raise problem(503, "inbox_unavailable", "the delivery could not be stored; retry later") from exc
        entry = recorded.entry
        headers = {INBOX_ID_HEADER: str(entry.id)}
        label = metric_source(d.source)
        if recorded.original is not None:
            WEBHOOK_DELIVERIES.labels(label, "duplicate").inc()
            log.info(
                "duplicate webhook delivery",
                inbox_id=entry.id,
                duplicate_of=recorded.original.id,
                topic=cmd.topic,
            )
            body = {"status": "duplicate", "duplicate_of": str(recorded.original.id), **cmd.ids}
            return JSONResponse(body, headers=headers)
        WEBHOOK_DELIVERIES.labels(label, "accepted").inc()
        result: RelayResult | None = None
        if inline:
            try:
                result = await self.relay.relay_claimed(
                    entry, timeout=self.settings.webhook_inline_relay_timeout_s
                )
            except Exception:  # kept all the same: the relay loop takes it when its lease ends
                log.exception("inline relay failed", inbox_id=entry.id)
        if result is not None and result.status == "relayed":
            return JSONResponse(cmd.accepted, headers=headers)
        if result is not None and result.status == "ignored":
            if acknowledge_only:
                return JSONResponse({**cmd.accepted, **cmd.ids}, headers=headers)
            return JSONResponse({"status": "ignored: the order has finished", **cmd.ids}, headers=headers)
        if result is not None and result.status == "rejected":
            # Already recorded and counted by the relay.
            if not refuse_rejected:
                body = {"status": "rejected", "reason": result.reason or "rejected", "detail": result.detail}
                return JSONResponse({**body, **cmd.ids}, headers=headers)
            raise problem(result.status_code, result.reason or "rejected", result.detail)
        detail = cmd.queued_detail or "kept in the inbox; it is handed to Temporal as soon as it answers"
        if result is not None:
            detail = f"kept in the inbox; will be relayed ({result.detail})"
        return JSONResponse({"status": "queued", "detail": detail, **cmd.ids}, headers=headers)

    # -- Shopify ---------------------------------------------------------------------------------

    async def shopify(self, request: Request) -> JSONResponse:
        h = request.headers
        d = Delivery(
            source="shopify",
            headers=safe_headers(request),
            topic=(h.get("x-shopify-topic") or "").strip().lower() or None,
            delivery_id=h.get("x-shopify-webhook-id") or None,
            event_id=h.get("x-shopify-event-id") or None,
        )
        payload = await self._receive(request, d, "shopify", "x-shopify-hmac-sha256", "X-Shopify-Hmac-Sha256")
        topic = d.topic or ""
        cid = d.delivery_id or uuid.uuid4().hex
        assert d.raw is not None
        if d.event_id:
            dedupe = f"shopify|{topic}|event:{d.event_id}"
        elif d.delivery_id:
            dedupe = f"shopify|{topic}|webhook:{d.delivery_id}"
        else:
            dedupe = f"shopify|{topic}|sha256:{hashlib.sha256(d.raw).hexdigest()}"
        updated_at = payload.get("updated_at") if isinstance(payload, dict) else None

        def business(workflow_id: str) -> str | None:
            return (
                f"{workflow_id}|{topic}|{updated_at}" if isinstance(updated_at, str) and updated_at else None
            )

        if topic == SHOPIFY_INVENTORY_TOPIC:
            return await self._shopify_inventory_level(d, payload, dedupe, cid)
        if topic == "orders/create" and self.settings.shopify_refetch_orders:
            # Webhook as doorbell: the relay fetches the order as the Admin API has it now.
            order_id = await self._shopify_order_id(d, payload, topic)
            workflow_id = f"order-shopify-{order_id}"
            ids = {"order_key": f"shopify-{order_id}", "workflow_id": workflow_id}
            cmd = Command(
                topic=topic,
                workflow_id=workflow_id,
                action="start",
                argument=ChannelFetch(channel="shopify", order_id=order_id, scope=topic),
                dedupe_key=dedupe,
                business_key=business(workflow_id),
                correlation_id=cid,
                ids=ids,
                queued_detail="kept in the inbox; the relay fetches the order from Shopify and starts it",
            )
            return await self._accept(d, cmd, inline=False)
        if topic == "orders/create":
            order = await self._mapped(d, order_from_shopify, payload)
            ids = {"order_key": order.key, "workflow_id": order.workflow_id}
            cmd = Command(
                topic=topic,
                workflow_id=order.workflow_id,
                action="start",
                argument=order,
                dedupe_key=dedupe,
                business_key=business(order.workflow_id),
                correlation_id=cid,
                ids=ids,
                accepted={"status": "accepted", **ids, "correlation_id": cid},
            )
            return await self._accept(d, cmd)
        if topic == "orders/cancelled":
            order_id = await self._shopify_order_id(d, payload, topic)
            reason = str(payload.get("cancel_reason") or "cancelled at the channel")[:500]
            workflow_id = f"order-shopify-{order_id}"
            ids = {"workflow_id": workflow_id}
            cmd = Command(
                topic=topic,
                workflow_id=workflow_id,
                action="signal",
                signal="request_cancel",
                argument=CancelRequest(reason=reason, source="channel"),
                dedupe_key=dedupe,
                business_key=business(workflow_id),
                correlation_id=cid,
                ids=ids,
                accepted={"status": "cancel requested"},
            )
            return await self._accept(d, cmd)
        if topic == "refunds/create":
            return await self._shopify_refund(d, payload, dedupe, cid)
        if topic in SHOPIFY_FULFILLMENT_TOPICS:
            return await self._shopify_fulfillment(d, payload, dedupe, cid)
        if topic == "orders/updated":
            return await self._shopify_update(d, payload, dedupe, business, cid)
        raise await self.reject(d, 422, "unsupported_topic", f"topic {d.topic!r} is not handled")

    async def _shopify_update(
        self, d: Delivery, payload: Any, dedupe: str, business: Callable[[str], str | None], cid: str
    ) -> JSONResponse:
        """``orders/updated``: the edited order is signalled (``order_updated``) to the running
        workflow, which applies it before release or asks a person after. Deduplicated on the
        event id and on (order, updated_at); an update of an unknown or finished order is
        acknowledged 200 (Shopify removes subscriptions that keep failing)."""
        if not isinstance(payload, dict):
            raise await self.reject(d, 422, "mapping_error", "the payload is not an object", path="")
        if payload.get("cancelled_at"):
            order_id = payload.get("id")
            return await self._acknowledge(
                d,
                topic="orders/updated",
                workflow_id=f"order-shopify-{order_id}",
                dedupe_key=dedupe,
                business_key=None,
                note="a cancelled order's update: orders/cancelled cancels it",
            )
        edit = await self._mapped(d, order_edit_from_shopify, payload)
        ids = {"workflow_id": edit.workflow_id}
        cmd = Command(
            topic="orders/updated",
            workflow_id=edit.workflow_id,
            action="signal",
            signal="order_updated",
            argument=edit,
            dedupe_key=dedupe,
            business_key=business(edit.workflow_id),
            correlation_id=cid,
            ids=ids,
            accepted={"status": "accepted", **ids},
        )
        return await self._accept(d, cmd, refuse_rejected=False)

    async def _shopify_fulfillment(self, d: Delivery, payload: Any, dedupe: str, cid: str) -> JSONResponse:
        """``fulfillments/create`` and ``/update``: signalled to the order (``channel_fulfilled``).
        A channel that ships its own orders is billed from them; for the others the workflow
        ignores the echo of its own report and records any other for a person. Shopify is
        answered 200 even for an order the platform never had (a POS sale, an order from
        before the platform): a subscription that keeps failing is removed."""
        assert d.topic is not None
        f = await self._mapped(d, fulfillment_from_shopify, payload)
        workflow_id = f"order-{f.order_key}"
        ids = {"workflow_id": workflow_id, "fulfillment_id": f.fulfillment_id}
        cmd = Command(
            topic=d.topic,
            workflow_id=workflow_id,
            action="signal",
            signal="channel_fulfilled",
            argument=f,
            dedupe_key=dedupe,
            # The same fulfillment in the same state (tracking included), however often delivered.
            business_key=f"{workflow_id}|fulfillment:{f.fulfillment_id}|{f.status}|{f.shipment_status}"
            f"|{','.join(f.tracking_numbers)}",
            correlation_id=cid,
            ids=ids,
            accepted={"status": "accepted", **ids},
        )
        return await self._accept(d, cmd, refuse_rejected=False)

    async def _shopify_order_id(self, d: Delivery, payload: Any, topic: str) -> str:
        """The order id of a Shopify order payload, or a 422 naming what is wrong."""
        if not isinstance(payload, dict):
            raise await self.reject(d, 422, "mapping_error", "the payload is not an object", path="")
        order_id = payload.get("id")
        if order_id is None:
            raise await self.reject(d, 422, "mapping_error", f"{topic} payload has no id", path="id")
        if isinstance(order_id, bool) or not (
            (isinstance(order_id, int) and order_id > 0) or (isinstance(order_id, str) and order_id.isdigit())
        ):
            raise await self.reject(d, 422, "mapping_error", "id must be a Shopify order id", path="id")
        return str(order_id)

    async def _shopify_refund(self, d: Delivery, payload: Any, dedupe: str, cid: str) -> JSONResponse:
        """A refund made in Shopify's admin starts ReturnToRefund (``return-shopify-refund-<id>``):
        the ERP's credit memo, tax reversal and stock follow; the money is not refunded again."""
        if not isinstance(payload, dict):
            raise await self.reject(d, 422, "mapping_error", "the payload is not an object", path="")
        mapper = functools.partial(
            return_from_shopify_refund, store_locations=self.settings.shopify_store_locations
        )
        req = await self._mapped(d, mapper, payload)
        if req is None:
            order_id = payload.get("order_id")
            return await self._acknowledge(
                d,
                topic="refunds/create",
                workflow_id=f"order-shopify-{order_id}",
                dedupe_key=dedupe,
                business_key=None,
                note="the platform's own refund echoed back, or unfulfilled items only: no return to book",
            )
        ids = {"return_key": req.key, "workflow_id": req.workflow_id, "order_key": req.order_key}
        cmd = Command(
            topic="refunds/create",
            workflow_id=req.workflow_id,
            action="start",
            argument=req,
            dedupe_key=dedupe,
            # Shopify's refund id names the return: a redelivery finds the same workflow.
            business_key=f"{req.workflow_id}|refunds/create",
            correlation_id=cid,
            ids=ids,
            accepted={"status": "accepted", **ids, "correlation_id": cid},
        )
        return await self._accept(d, cmd)

    async def _shopify_inventory_level(
        self, d: Delivery, payload: Any, dedupe: str, cid: str
    ) -> JSONResponse:
        """``inventory_levels/update``: at a store location (``RETAIL_SHOPIFY_STORE_LOCATIONS``)
        Shopify POS keeps the on-hand, so the absolute level becomes a ledger cycle count; the
        relay looks up the item's SKU on the Admin API (not this request) and starts
        InventoryAdjustment. Anywhere else it is acknowledged and ignored: the platform publishes
        that stock itself, and web orders arrive as orders (counting them here would count them
        twice). Deduplicated on the event id and on (location, item, updated_at, available)."""
        topic = SHOPIFY_INVENTORY_TOPIC
        try:
            location_id = location_of(payload)
            store = self.settings.shopify_store_locations.get(str(location_id))
            level = store_level(payload, store) if store is not None else None
        except (MappingError, ValidationError) as exc:
            raise await self.reject(
                d, 422, "mapping_error", str(exc), path=getattr(exc, "path", None)
            ) from exc
        if level is None:
            return await self._acknowledge(
                d,
                topic=topic,
                workflow_id=f"webhook-shopify-location-{location_id}",
                dedupe_key=dedupe,
                business_key=None,
                note=NOT_A_STORE if store is None else NOT_TRACKED,
            )
        workflow_id = adjustment_workflow_id(level.event_id)
        ids = {"event_id": level.event_id, "workflow_id": workflow_id}
        cmd = Command(
            topic=topic,
            workflow_id=workflow_id,
            action="start",
            argument=ChannelStockLookup(level=level),
            dedupe_key=dedupe,
            # The event id is (location, item, updated_at, available): the same change, however sent.
            business_key=f"{workflow_id}|{topic}",
            correlation_id=cid,
            ids=ids,
            queued_detail="kept in the inbox; the relay looks the item's SKU up on Shopify and counts it",
        )
        # Never relayed in the request: the lookup calls Shopify, which must get its answer in 5 s.
        return await self._accept(d, cmd, inline=False)

    # -- warehouse and carrier -------------------------------------------------------------------

    async def wms(self, name: str, request: Request) -> JSONResponse:
        d = Delivery(source=f"wms:{name}"[:64], headers=safe_headers(request), topic="shipment.shipped")
        payload = await self._receive(request, d, "wms", "x-retail-signature", "X-Retail-Signature")
        if isinstance(payload, dict) and isinstance(payload.get("event_id"), str):
            d.event_id = d.delivery_id = payload["event_id"]
        assert d.raw is not None
        kind = webhook_type(d.raw)
        if kind == EVENT_RETURN_RECEIVED:
            d.topic = EVENT_RETURN_RECEIVED
            return await self._wms_return(d, payload)
        if kind in INVENTORY_EVENTS:
            d.topic = kind
            return await self._wms_inventory(d, payload)
        try:
            shipment = parse_shipment(d.raw)
        except (ValueError, ValidationError) as exc:
            path, errors = _error_path(ShipmentWebhook, payload)
            raise await self.reject(d, 422, "mapping_error", str(exc), path=path, errors=errors) from exc
        return await self._signal_event(
            d,
            topic="shipment.shipped",
            workflow_id=f"order-{shipment.order_key}",
            signal="shipment_reported",
            argument=shipment,
            event_id=d.event_id,
            business=shipment.shipment_id,
            ids={"shipment_id": shipment.shipment_id},
        )

    async def _signal_event(
        self,
        d: Delivery,
        *,
        topic: str,
        workflow_id: str,
        signal: str,
        argument: BaseModel,
        event_id: str | None,
        business: str,
        ids: dict[str, str],
    ) -> JSONResponse:
        """A warehouse or carrier event for a running workflow: kept, deduplicated on the sender's
        event id and on the business key (the same shipment, receipt or scan), then signalled."""
        cmd = Command(
            topic=topic,
            workflow_id=workflow_id,
            action="signal",
            signal=signal,
            argument=argument,
            dedupe_key=f"{d.source}|{topic}|{event_id}",
            business_key=f"{workflow_id}|{topic}|{business}",
            correlation_id=event_id or uuid.uuid4().hex,
            ids=ids,
            accepted={"status": "accepted", **ids},
        )
        return await self._accept(d, cmd)

    async def carrier(self, name: str, request: Request) -> JSONResponse:
        d = Delivery(source=f"carrier:{name}"[:64], headers=safe_headers(request), topic="tracking.updated")
        payload = await self._receive(request, d, "carrier", "x-retail-signature", "X-Retail-Signature")
        if isinstance(payload, dict) and isinstance(payload.get("event_id"), str):
            d.event_id = d.delivery_id = payload["event_id"]
        assert d.raw is not None
        try:
            tracked = parse_tracking_target(d.raw)
        except (ValueError, ValidationError) as exc:
            path, errors = _error_path(TrackingWebhook, payload)
            raise await self.reject(d, 422, "mapping_error", str(exc), path=path, errors=errors) from exc
        event = tracked.event
        # A return parcel's events go to its ReturnToRefund workflow ("return-" + return key).
        workflow_id = (
            f"order-{event.order_key}"
            if tracked.return_key is None
            else return_workflow_for(tracked.return_key)
        )
        ids = {"event_id": event.event_id}
        if tracked.return_key is not None:
            ids["return_key"] = tracked.return_key
        return await self._signal_event(
            d,
            topic="tracking.updated",
            workflow_id=workflow_id,
            signal="tracking_updated",
            argument=event,
            event_id=event.event_id,
            business=f"{event.tracking_number}|{event.status}|{event.occurred_at.isoformat()}",
            ids=ids,
        )

    async def _wms_return(self, d: Delivery, payload: Any) -> JSONResponse:
        """A ``return.received`` receipt: signal ``receipt_reported`` to the return's workflow,
        deduplicated on the event id and on the receipt id."""
        assert d.raw is not None
        try:
            receipt: ReturnReceipt = parse_return_receipt(d.raw)
        except (ValueError, ValidationError) as exc:
            path, errors = _error_path(ReturnReceivedWebhook, payload)
            raise await self.reject(d, 422, "mapping_error", str(exc), path=path, errors=errors) from exc
        return await self._signal_event(
            d,
            topic=EVENT_RETURN_RECEIVED,
            workflow_id=return_workflow_for(receipt.return_key),
            signal="receipt_reported",
            argument=receipt,
            event_id=d.event_id,
            business=receipt.receipt_id,
            ids={"receipt_id": receipt.receipt_id, "return_key": receipt.return_key},
        )

    async def _wms_inventory(self, d: Delivery, payload: Any) -> JSONResponse:
        """``inventory.adjusted`` / ``inventory.counted``: kept, then started as an
        InventoryAdjustment (``inventory-wms:<name>:<event id>``), which moves the ledger and
        pokes every channel's sync. Deduplicated on the event id, in the inbox and by the
        workflow id (a redelivery after the inbox row is gone finds the same workflow)."""
        assert d.raw is not None and d.topic is not None
        warehouse = d.source.partition(":")[2]
        try:
            event = parse_inventory(d.raw, warehouse)
        except (ValueError, ValidationError) as exc:
            path, errors = _error_path(InventoryWebhook, payload)
            raise await self.reject(d, 422, "mapping_error", str(exc), path=path, errors=errors) from exc
        refused = refusal(event)
        if refused:
            raise await self.reject(d, 422, "invalid_event", refused[1], path=refused[0])
        workflow_id = adjustment_workflow_id(event.event_id)
        ids = {"event_id": event.event_id, "workflow_id": workflow_id}
        cmd = Command(
            topic=d.topic,
            workflow_id=workflow_id,
            action="start",
            argument=event,
            dedupe_key=f"{d.source}|{d.topic}|{d.event_id}",
            business_key=f"{workflow_id}|{d.topic}",
            correlation_id=event.event_id,
            ids=ids,
            accepted={"status": "accepted", **ids},
        )
        return await self._accept(d, cmd)

    # -- WooCommerce -----------------------------------------------------------------------------

    async def woocommerce(self, request: Request) -> JSONResponse:
        """A WooCommerce delivery (full order in the body) or the unsigned activation ping."""
        h = request.headers
        d = Delivery(
            source="woocommerce",
            headers=safe_headers(request),
            topic=(h.get("x-wc-webhook-topic") or "").strip().lower() or None,
            delivery_id=h.get("x-wc-webhook-delivery-id") or None,
        )
        raw = await self._read_body(request, d)
        if woo.is_ping(h, raw):
            ping = woo.parse_webhook(h, raw)  # a ping cannot fail to parse once is_ping says so
            webhook_id = ping.webhook_id or "?"
            d.topic = "ping"
            return await self._acknowledge(
                d,
                topic="ping",
                workflow_id=f"webhook-woocommerce-{webhook_id}",
                dedupe_key=f"woocommerce|ping|{webhook_id}",
                business_key=None,
                note=f"activation ping of webhook {webhook_id}",
                answer={"status": "pong", "webhook_id": webhook_id},
            )
        header = h.get("x-wc-webhook-signature")
        if not signatures.verify("woocommerce", self.settings, raw, header, datetime.now(UTC)):
            raise await self.reject(d, 401, "invalid_signature", "missing or invalid X-WC-Webhook-Signature")
        d.authenticated = True
        # From here on every refusal is recorded but answered 200 (see the module docstring).
        if not is_json(h.get("content-type")):
            return await self._refuse_with_200(
                d, 415, "unsupported_media_type", "Content-Type must be application/json"
            )
        try:
            event = woo.parse_webhook(h, raw)
        except woo.WebhookError as exc:
            return await self._refuse_with_200(d, 400, exc.reason, exc.message)
        topic = event.topic or ""
        payload = event.payload or {}
        dedupe = event.dedupe_key or f"woocommerce|{topic}|sha256:{hashlib.sha256(raw).hexdigest()}"
        cid = d.delivery_id or uuid.uuid4().hex
        if not event.is_order:
            return await self._acknowledge(
                d,
                topic=topic,
                workflow_id=f"webhook-woocommerce-{topic}",
                dedupe_key=dedupe,
                business_key=None,
                note=f"topic {topic} is not handled",
            )
        order_id = event.resource_id or ""
        if not order_id.isascii() or not order_id.isdigit():
            return await self._refuse_with_200(
                d, 422, "mapping_error", f"id must be a WooCommerce order id, got {order_id!r}", path="id"
            )
        workflow_id = f"order-woocommerce-{order_id}"
        status = payload.get("status")
        modified = payload.get("date_modified_gmt")
        business = f"{workflow_id}|{topic}|{modified}" if isinstance(modified, str) and modified else None
        if topic == "order.deleted":
            reason = "deleted at WooCommerce"
            business = f"{workflow_id}|{topic}"
        elif topic == "order.updated" and status == "cancelled":
            reason = "cancelled at WooCommerce"
        elif topic in WOO_START_TOPICS and status in WOO_STARTABLE:
            try:
                order = woo.order_from_woocommerce(payload)
            except (MappingError, ValidationError, ValueError) as exc:
                return await self._refuse_with_200(
                    d, 422, "mapping_error", str(exc), path=getattr(exc, "path", None)
                )
            except ArithmeticError:
                return await self._refuse_with_200(d, 422, "mapping_error", OUT_OF_RANGE)
            ids = {"order_key": order.key, "workflow_id": order.workflow_id}
            argument: BaseModel = order
            signal: str | None = None
            if topic == "order.updated" and business is not None:
                # Starts the order if this is its first paid delivery, else edits the running one
                # (ordered by date_modified_gmt; without it there is nothing to order edits by).
                try:
                    edit = edit_from_order(order, woo_updated_at(payload))
                except (MappingError, ValidationError) as exc:
                    return await self._refuse_with_200(
                        d, 422, "mapping_error", str(exc), path=getattr(exc, "path", None)
                    )
                argument = ChannelOrderUpdate(order=order, edit=edit)
                signal = "order_updated"
            cmd = Command(
                topic=topic,
                workflow_id=order.workflow_id,
                action="start",
                signal=signal,
                argument=argument,
                dedupe_key=dedupe,
                business_key=business,
                correlation_id=cid,
                ids=ids,
                accepted={"status": "accepted", **ids, "correlation_id": cid},
            )
            return await self._accept(d, cmd, refuse_rejected=False)
        else:
            return await self._acknowledge(
                d,
                topic=topic,
                workflow_id=workflow_id,
                dedupe_key=dedupe,
                business_key=business,
                note=f"{topic} with status {status!r}: nothing to do (orders start once processing, "
                "completed or on-hold; cancelled and deleted orders are cancelled)",
            )
        ids = {"workflow_id": workflow_id}
        cmd = Command(
            topic=topic,
            workflow_id=workflow_id,
            action="signal",
            signal="request_cancel",
            argument=CancelRequest(reason=reason, source="channel"),
            dedupe_key=dedupe,
            business_key=business,
            correlation_id=cid,
            ids=ids,
            accepted={"status": "cancel requested", **ids},
        )
        return await self._accept(d, cmd, refuse_rejected=False)

    # -- BigCommerce -----------------------------------------------------------------------------

    async def bigcommerce(self, request: Request) -> JSONResponse:
        """A thin BigCommerce callback: new orders are kept as doorbells for the relay to fetch."""
        h = request.headers
        d = Delivery(
            source="bigcommerce", headers=safe_headers(request), delivery_id=h.get("webhook-id") or None
        )
        raw = await self._read_body(request, d)
        now = datetime.now(UTC)
        secrets = signatures.accepted_secrets(self.settings, "bigcommerce", now)
        try:
            event = bc.parse_webhook(h, raw, secrets, now)
        except bc.SignatureError as exc:
            raise await self.reject(d, 401, "invalid_signature", f"{exc.reason}: {exc.message}") from None
        except bc.WebhookError as exc:
            d.authenticated = True
            raise await self.reject(d, 400, exc.reason, exc.message) from None
        d.authenticated = True
        d.topic = event.scope[:64]
        d.event_id = event.hash
        if not is_json(h.get("content-type")):
            raise await self.reject(d, 415, "unsupported_media_type", "Content-Type must be application/json")
        scope = event.scope
        dedupe = event.dedupe_key
        configured = self.settings.bigcommerce_store_hash
        if configured and event.store_hash and event.store_hash != configured:
            return await self._acknowledge(
                d,
                topic=scope,
                workflow_id=f"webhook-bigcommerce-{event.store_hash}",
                dedupe_key=dedupe,
                business_key=None,
                note=f"store {event.store_hash} is not the configured store",
            )
        order_id = event.order_id
        if order_id is None or not order_id.isascii() or not order_id.isdigit():
            return await self._acknowledge(
                d,
                topic=scope,
                workflow_id=f"webhook-bigcommerce-{scope}",
                dedupe_key=dedupe,
                business_key=None,
                note=f"scope {scope} names no order: nothing to do",
            )
        workflow_id = f"order-bigcommerce-{order_id}"
        ids = {"workflow_id": workflow_id}
        change = event.status_change
        placed = scope == BC_STATUS_UPDATED and change is not None and change[0] in bc.NOT_PLACED_STATUS_IDS
        if scope == BC_CREATED or (
            placed and change is not None and change[1] not in bc.NOT_PLACED_STATUS_IDS
        ):
            cmd = Command(
                topic=scope,
                workflow_id=workflow_id,
                action="start",
                argument=ChannelFetch(order_id=order_id, scope=scope, store_hash=event.store_hash),
                dedupe_key=dedupe,
                business_key=None,  # a later statusUpdated must ring again if this one finds status 0
                correlation_id=event.message_id or uuid.uuid4().hex,
                ids=ids,
                queued_detail="kept in the inbox; the relay fetches the order from BigCommerce and starts it",
            )
            return await self._accept(d, cmd, inline=False)
        if scope == BC_STATUS_UPDATED and change is not None and change[1] in BC_CANCELLED_STATUS_IDS:
            cmd = Command(
                topic=scope,
                workflow_id=workflow_id,
                action="signal",
                signal="request_cancel",
                argument=CancelRequest(reason=f"status {change[1]} at BigCommerce", source="channel"),
                dedupe_key=dedupe,
                business_key=f"{workflow_id}|{scope}|{change[1]}",
                correlation_id=event.message_id or uuid.uuid4().hex,
                ids=ids,
                accepted={"status": "cancel requested", **ids},
            )
            # BigCommerce retries non-2xx for 48 hours: a refusal is recorded, answered 200.
            return await self._accept(d, cmd, refuse_rejected=False)
        return await self._acknowledge(
            d,
            topic=scope,
            workflow_id=workflow_id,
            dedupe_key=dedupe,
            business_key=None,
            note=f"{scope} (status change {change}): nothing to do" if change else f"{scope}: nothing to do",
        )
