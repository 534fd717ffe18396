"""The FastAPI application: `retail api` serves it; `retail dev` and the tests run it in-process."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.carrier.webhook import parse_tracking
from adapters.channels.errors import MappingError
from adapters.channels.shopify import signature as shopify_signature
from adapters.channels.shopify.mapping import order_from_shopify
from adapters.signing import verify_signature
from adapters.wms.webhook import parse_shipment
from api.errors import problem
from api.metrics import ORDERS_INGESTED, WEBHOOKS_REJECTED, webhook_source
from canonical import Order, OrderState
from settings import Settings
from workflows.client import connect, start_order
from workflows.models import CancelRequest
from workflows.order_to_cash import OrderToCash

log = structlog.get_logger("api")


class TemporalGateway:
    """One lazily connected client: the API starts even while Temporal is still coming up."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    try:
                        self._client = await connect(self.settings)
                    except Exception as exc:  # connection refused, DNS, TLS...
                        raise problem(503, "temporal_unavailable", f"cannot reach Temporal: {exc}") from exc
        return self._client


# Money arithmetic runs in a 28-digit decimal context: a bigger amount (e.g. "1e30") raises
# decimal.InvalidOperation, an ArithmeticError rather than a ValueError.
_OUT_OF_RANGE = "an amount or quantity is too large to compute exactly"


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise problem(400, "malformed_json", f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # nesting deeper than the parser's stack: not an order
        raise problem(400, "malformed_json", "body is nested too deeply") from exc


def _require_json(content_type: str | None) -> None:
    if not content_type or content_type.split(";")[0].strip().lower() != "application/json":
        raise problem(415, "unsupported_media_type", "Content-Type must be application/json")


def _validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"path": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()]


def create_app(settings: Settings, client: Client | None = None) -> FastAPI:
    gateway = TemporalGateway(settings, client)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="Retail Connect",
        version="0.1.0",
        description="Order, webhook and operations API of the Retail Connect integration platform.",
        lifespan=lifespan,
    )
    app.state.gateway = gateway

    async def _start(order: Order, source: str, correlation_id: str) -> dict[str, str]:
        c = await gateway.client()
        try:
            handle = await start_order(c, order, settings, correlation_id)
        except RPCError as exc:
            raise problem(503, "temporal_unavailable", f"Temporal refused the start: {exc.message}") from exc
        ORDERS_INGESTED.labels(order.channel, source).inc()
        log.info("order accepted", order_key=order.key, workflow_id=handle.id, correlation_id=correlation_id)
        return {"order_key": order.key, "workflow_id": handle.id, "correlation_id": correlation_id}

    async def _signal(workflow_id: str, signal: str, arg: Any, source: str) -> bool:
        """Signal the order's workflow. False when it has already closed (a late event: the
        sender gets a 2xx so it stops retrying); 404 when the platform never had the order."""
        c = await gateway.client()
        handle = c.get_workflow_handle(workflow_id)
        try:
            await handle.signal(signal, arg)
            return True
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise problem(
                    503, "temporal_unavailable", f"Temporal refused the signal: {exc.message}"
                ) from exc
        try:
            await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                WEBHOOKS_REJECTED.labels(source, "unknown_order").inc()
                raise problem(404, "unknown_order", f"no order workflow {workflow_id}") from exc
            raise problem(503, "temporal_unavailable", exc.message) from exc
        log.info("event for a closed order ignored", workflow_id=workflow_id, signal=signal, source=source)
        return False

    # -- health and metrics ---------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # -- order API --------------------------------------------------------------------
    @app.post("/v1/orders", status_code=202, tags=["orders"])
    async def post_order(
        request: Request,
        idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
        content_type: str | None = Header(default=None),
    ) -> dict[str, str]:
        """Accept a canonical order. Duplicates (same channel and external id) find the running
        workflow instead of starting a second one."""
        _require_json(content_type)
        if not idempotency_key:
            raise problem(400, "missing_idempotency_key", "the Idempotency-Key header is required")
        body = _json_body(await request.body())
        try:
            order = Order.model_validate_json(json.dumps(body))
        except ValidationError as exc:
            raise problem(
                422, "invalid_order", "the order is not valid", errors=_validation_errors(exc)
            ) from exc
        except ArithmeticError as exc:  # decimal.InvalidOperation: an amount beyond exact arithmetic
            raise problem(
                422,
                "invalid_order",
                "the order is not valid",
                errors=[{"path": "", "message": _OUT_OF_RANGE}],
            ) from exc
        return await _start(order, "api", idempotency_key)

    @app.get("/v1/orders/{order_key}", tags=["orders"])
    async def get_order(order_key: str) -> OrderState:
        c = await gateway.client()
        wf_id = order_key if order_key.startswith("order-") else f"order-{order_key}"
        try:
            return await c.get_workflow_handle_for(OrderToCash.run, wf_id).query(OrderToCash.state)
        except WorkflowQueryFailedError as exc:
            raise problem(503, "query_failed", f"the order's workflow could not answer: {exc}") from exc
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise problem(404, "unknown_order", f"no order {order_key}") from exc
            raise problem(503, "temporal_unavailable", exc.message) from exc

    @app.post("/v1/orders/{order_key}/cancel", status_code=202, tags=["orders"])
    async def cancel_order(order_key: str, request: Request) -> dict[str, str]:
        body = _json_body(await request.body()) if await request.body() else {}
        reason = str(body.get("reason") or "cancelled through the API") if isinstance(body, dict) else ""
        if not reason:
            raise problem(400, "missing_reason", "body must be an object with a reason")
        wf_id = order_key if order_key.startswith("order-") else f"order-{order_key}"
        if not await _signal(wf_id, "request_cancel", CancelRequest(reason=reason, source="api"), "api"):
            raise problem(409, "order_closed", f"{wf_id} has already finished; nothing to cancel")
        return {"workflow_id": wf_id, "status": "cancel requested"}

    # -- storefront webhooks ----------------------------------------------------------
    @app.post("/webhooks/shopify", tags=["webhooks"])
    async def shopify_webhook(
        request: Request,
        x_shopify_hmac_sha256: str | None = Header(default=None),
        x_shopify_topic: str | None = Header(default=None),
        x_shopify_webhook_id: str | None = Header(default=None),
        content_type: str | None = Header(default=None),
    ) -> dict[str, str]:
        raw = await request.body()
        secret = settings.shopify_webhook_secret.get_secret_value()
        if not shopify_signature.verify(raw, x_shopify_hmac_sha256, [secret]):
            WEBHOOKS_REJECTED.labels("shopify", "invalid_signature").inc()
            raise problem(401, "invalid_signature", "missing or invalid X-Shopify-Hmac-Sha256")
        _require_json(content_type)
        payload = _json_body(raw)
        topic = (x_shopify_topic or "").lower()
        cid = x_shopify_webhook_id or uuid.uuid4().hex
        if topic == "orders/create":
            try:
                order = order_from_shopify(payload)
            except (MappingError, ValidationError, ValueError) as exc:
                WEBHOOKS_REJECTED.labels("shopify", "mapping_error").inc()
                raise problem(422, "mapping_error", str(exc), path=getattr(exc, "path", None)) from exc
            except ArithmeticError as exc:  # decimal.InvalidOperation: see _OUT_OF_RANGE
                WEBHOOKS_REJECTED.labels("shopify", "mapping_error").inc()
                raise problem(422, "mapping_error", _OUT_OF_RANGE) from exc
            return await _start(order, "shopify_webhook", cid)
        if topic == "orders/cancelled":
            order_id = payload.get("id") if isinstance(payload, dict) else None
            if order_id is None:
                raise problem(422, "mapping_error", "orders/cancelled payload has no id", path="id")
            reason = str(payload.get("cancel_reason") or "cancelled at the channel")
            delivered = await _signal(
                f"order-shopify-{order_id}",
                "request_cancel",
                CancelRequest(reason=reason, source="channel"),
                "shopify",
            )
            return {"status": "cancel requested" if delivered else "ignored: the order has finished"}
        WEBHOOKS_REJECTED.labels("shopify", "unsupported_topic").inc()
        raise problem(422, "unsupported_topic", f"topic {x_shopify_topic!r} is not handled")

    # -- warehouse and carrier webhooks ---------------------------------------------------
    @app.post("/webhooks/wms/{name}", tags=["webhooks"])
    async def wms_webhook(
        name: str, request: Request, x_retail_signature: str | None = Header(default=None)
    ) -> dict[str, str]:
        raw = await request.body()
        source = webhook_source("wms", name)
        if not verify_signature(raw, x_retail_signature, settings.wms_webhook_secret.get_secret_value()):
            WEBHOOKS_REJECTED.labels(source, "invalid_signature").inc()
            raise problem(401, "invalid_signature", "missing or invalid X-Retail-Signature")
        try:
            shipment = parse_shipment(raw)
        except (ValueError, ValidationError) as exc:
            WEBHOOKS_REJECTED.labels(source, "mapping_error").inc()
            raise problem(422, "mapping_error", str(exc)) from exc
        delivered = await _signal(f"order-{shipment.order_key}", "shipment_reported", shipment, source)
        return {
            "status": "accepted" if delivered else "ignored: the order has finished",
            "shipment_id": shipment.shipment_id,
        }

    @app.post("/webhooks/carrier/{name}", tags=["webhooks"])
    async def carrier_webhook(
        name: str, request: Request, x_retail_signature: str | None = Header(default=None)
    ) -> dict[str, str]:
        raw = await request.body()
        source = webhook_source("carrier", name)
        if not verify_signature(raw, x_retail_signature, settings.carrier_webhook_secret.get_secret_value()):
            WEBHOOKS_REJECTED.labels(source, "invalid_signature").inc()
            raise problem(401, "invalid_signature", "missing or invalid X-Retail-Signature")
        try:
            event = parse_tracking(raw)
        except (ValueError, ValidationError) as exc:
            WEBHOOKS_REJECTED.labels(source, "mapping_error").inc()
            raise problem(422, "mapping_error", str(exc)) from exc
        delivered = await _signal(f"order-{event.order_key}", "tracking_updated", event, source)
        return {
            "status": "accepted" if delivered else "ignored: the order has finished",
            "event_id": event.event_id,
        }

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", error=str(exc))
        return JSONResponse(
            {"reason": "internal_error", "detail": "unexpected error; logged"}, status_code=500
        )

    return app
