"""The FastAPI application: `retail api` serves it; `retail dev` and the tests run it in-process."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from temporalio.client import Client

import tracing
from api.auth import ApiAuth, check_auth_setting
from api.errors import install as install_problems
from api.idempotency import Idempotency, purge_loop
from api.ingress import Ingress
from api.inventory import inventory_router
from api.inventory_metrics import InventorySyncCollector
from api.openapi import install as install_openapi
from api.orders import orders_router
from api.reconcile_metrics import ReconcileCollector
from api.relay import HttpClientFactory, InboxRelay
from api.returns import returns_router
from api.temporal import ClientFactory, TemporalGateway
from api.tracing_middleware import TracingMiddleware
from orchestration.metrics import register_visibility_collector
from settings import Settings
from store.db import Store
from store.migrate import upgrade

__all__ = ["TemporalGateway", "create_app"]

log = structlog.get_logger("api")


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
    check_auth_setting(settings)
    gateway = TemporalGateway(settings, client, client_factory)
    visibility = CollectorRegistry()
    owns_store = store is None
    app_store = store if store is not None else Store(settings.store_url)
    relay = InboxRelay(app_store, gateway, settings, http_client_factory=http_client_factory)
    ingress = Ingress(settings, app_store, relay)
    auth = ApiAuth(settings, app_store)
    idem = Idempotency(settings, app_store)
    visibility.register(ReconcileCollector(app_store))
    visibility.register(InventorySyncCollector(app_store))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if owns_store:
            await asyncio.to_thread(upgrade, settings.store_url)
        stop = asyncio.Event()
        loop = asyncio.create_task(relay.run(stop)) if relay_loop else None
        purge = asyncio.create_task(purge_loop(app_store, stop))
        if settings.api_auth == "off":
            log.warning("RETAIL_API_AUTH=off: the /v1 APIs accept calls without an API key (loopback only)")
        collector = register_visibility_collector(visibility, gateway.client, refresh_s=30.0)
        try:
            yield
        finally:
            await collector.aclose()
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(purge, 5)
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
    app.include_router(orders_router(settings, app_store, gateway, relay, auth, idem))
    app.include_router(inventory_router(settings, app_store, gateway, auth))
    app.include_router(returns_router(settings, gateway, auth, idem))
    app.state.auth = auth
    app.state.gateway = gateway
    app.state.store = app_store
    app.state.relay = relay
    if owns_store:
        # Also when the app is used without its lifespan (in-process tests): no pooled
        # connections outlive it.
        weakref.finalize(app, app_store.dispose)

    # -- health and metrics ---------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        # Events counted by this process, plus stuck-order gauges counted from Temporal visibility.
        return Response(generate_latest() + generate_latest(visibility), media_type=CONTENT_TYPE_LATEST)

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

    install_openapi(app)
    install_problems(app)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", error=str(exc))
        return JSONResponse(
            {"reason": "internal_error", "detail": "unexpected error; logged"}, status_code=500
        )

    return app
