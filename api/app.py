"""The FastAPI application: `retail api` serves it; `retail dev` and the tests run it in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

import tracing
from api.errors import problem
from api.ingress import Ingress, is_json, json_body
from api.inventory import inventory_router
from api.inventory_metrics import InventorySyncCollector
from api.metrics import ORDERS_INGESTED, WEBHOOKS_REJECTED
from api.reconcile_metrics import ReconcileCollector
from api.relay import HttpClientFactory, InboxRelay
from api.returns import returns_router
from api.temporal import ClientFactory, TemporalGateway, signal_order
from api.tracing_middleware import TracingMiddleware
from canonical import Order, OrderState
from settings import Settings
from store.db import Store
from store.migrate import upgrade
from workflows.client import start_order
from workflows.metrics import register_visibility_collector
from workflows.models import CancelRequest
from workflows.order_to_cash import OrderToCash

__all__ = ["TemporalGateway", "create_app"]

log = structlog.get_logger("api")


# Money arithmetic runs in a 28-digit decimal context: a bigger amount (e.g. "1e30") raises
# decimal.InvalidOperation, an ArithmeticError rather than a ValueError.
_OUT_OF_RANGE = "an amount or quantity is too large to compute exactly"


def _json_body(raw: bytes) -> Any:
    return json_body(raw)


def _require_json(content_type: str | None) -> None:
    if not is_json(content_type):
        raise problem(415, "unsupported_media_type", "Content-Type must be application/json")


def _validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"path": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()]


def create_app(
    settings: Settings,
    client: Client | None = None,
    *,
    store: Store | None = None,
    client_factory: ClientFactory | None = None,
    relay_loop: bool = True,
    http_client_factory: HttpClientFactory | None = None,
) -> FastAPI:
    """The API. Without a ``store`` it opens its own (migrated when the app starts). Its
    lifespan runs the inbox relay loop unless ``relay_loop`` is False. ``http_client_factory``
    makes the HTTP clients the relay calls channel APIs with (BigCommerce; tests pass a fake)."""
    gateway = TemporalGateway(settings, client, client_factory)
    visibility = CollectorRegistry()
    owns_store = store is None
    app_store = store if store is not None else Store(settings.store_url)
    relay = InboxRelay(app_store, gateway, settings, http_client_factory=http_client_factory)
    ingress = Ingress(settings, app_store, relay)
    visibility.register(ReconcileCollector(app_store))
    visibility.register(InventorySyncCollector(app_store))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if owns_store:
            await asyncio.to_thread(upgrade, settings.store_url)
        stop = asyncio.Event()
        loop = asyncio.create_task(relay.run(stop)) if relay_loop else None
        collector = register_visibility_collector(visibility, gateway.client, refresh_s=30.0)
        try:
            yield
        finally:
            await collector.aclose()
            stop.set()
            if loop is not None:
                try:
                    await asyncio.wait_for(loop, settings.webhook_relay_timeout_s + 5)
                except TimeoutError:
                    loop.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await loop
            if owns_store:
                app_store.dispose()

    app = FastAPI(
        title="Retail Connect",
        version="0.1.0",
        description="Order, webhook and operations API of the Retail Connect integration platform.",
        lifespan=lifespan,
    )
    traced = tracing.configure(settings)
    if traced is not None:  # off: no middleware at all
        app.add_middleware(TracingMiddleware, tracer=traced.tracer)
    app.include_router(inventory_router(settings, app_store, gateway))
    app.include_router(returns_router(settings, gateway))
    app.state.gateway = gateway
    app.state.store = app_store
    app.state.relay = relay
    if owns_store:
        # Also when the app is used without its lifespan (in-process tests): no pooled
        # connections outlive it.
        weakref.finalize(app, app_store.dispose)

    async def _start(order: Order, source: str, correlation_id: str) -> dict[str, str]:
        c = await gateway.client()
        try:
            with tracing.correlated(correlation_id, order_key=order.key):
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
        try:
            outcome = await signal_order(c, workflow_id, signal, arg)
        except RPCError as exc:
            raise problem(503, "temporal_unavailable", f"Temporal refused the signal: {exc.message}") from exc
        if outcome == "signalled":
            return True
        if outcome == "missing":
            WEBHOOKS_REJECTED.labels(source, "unknown_order").inc()
            raise problem(404, "unknown_order", f"no order workflow {workflow_id}")
        log.info("event for a closed order ignored", workflow_id=workflow_id, signal=signal, source=source)
        return False

    # -- health and metrics ---------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        # Events counted by this process, plus stuck-order gauges counted from Temporal visibility.
        return Response(generate_latest() + generate_latest(visibility), media_type=CONTENT_TYPE_LATEST)

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

    # -- webhooks: checked, kept in the inbox, then relayed (see api/ingress.py) ----------------
    @app.post("/webhooks/shopify", tags=["webhooks"])
    async def shopify_webhook(request: Request) -> JSONResponse:
        """Shopify `orders/create` and `orders/cancelled`, signed with the app's client secret."""
        return await ingress.shopify(request)

    @app.post("/webhooks/woocommerce", tags=["webhooks"])
    async def woocommerce_webhook(request: Request) -> JSONResponse:
        """WooCommerce `order.*` deliveries (`X-WC-Webhook-Signature`) and the unsigned activation
        ping. Authenticated deliveries are answered 200 even when refused (WooCommerce disables
        a failing webhook); refusals are recorded."""
        return await ingress.woocommerce(request)

    @app.post("/webhooks/bigcommerce", tags=["webhooks"])
    async def bigcommerce_webhook(request: Request) -> JSONResponse:
        """BigCommerce `store/order/*` callbacks (Standard Webhooks signature). New orders are
        kept and fetched from BigCommerce's API by the relay."""
        return await ingress.bigcommerce(request)

    @app.post("/webhooks/wms/{name}", tags=["webhooks"])
    async def wms_webhook(name: str, request: Request) -> JSONResponse:
        """Shipment reports from a warehouse (`X-Retail-Signature: sha256=<hex>`)."""
        return await ingress.wms(name, request)

    @app.post("/webhooks/carrier/{name}", tags=["webhooks"])
    async def carrier_webhook(name: str, request: Request) -> JSONResponse:
        """Tracking events from a carrier (`X-Retail-Signature: sha256=<hex>`)."""
        return await ingress.carrier(name, request)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", error=str(exc))
        return JSONResponse(
            {"reason": "internal_error", "detail": "unexpected error; logged"}, status_code=500
        )

    return app
