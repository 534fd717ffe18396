"""Tracing: one webhook-started order is one trace across the API, the inbox relay, the workflow
and its activities (real Temporal server, in-memory exporter); with tracing off nothing is
installed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

import tracing
from api.app import create_app
from api.relay import InboxRelay
from api.tracing_middleware import TracingMiddleware
from orchestration.client import connect
from settings import Settings
from tests.platform import platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from worker import connect_worker_client

CID = tracing.CORRELATION_ATTRIBUTE


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, exporting to memory; removed again afterwards (other tests run untraced)."""
    tracing.reset()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.reset()


def in_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [
        s for s in exporter.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id
    ]


def named(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def request_span(exporter: InMemorySpanExporter, route: str, webhook_id: str) -> ReadableSpan:
    found = [
        s
        for s in exporter.get_finished_spans()
        if s.name == f"POST {route}" and s.attributes and s.attributes.get(CID) == webhook_id
    ]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def assert_order_trace(exporter: InMemorySpanExporter, webhook_id: str) -> list[ReadableSpan]:
    """The webhook's request span is the root of StartWorkflow -> RunWorkflow -> activities, and
    every span downstream of the request carries the correlation id."""
    root = request_span(exporter, "/webhooks/shopify", webhook_id)
    assert root.kind == otel_trace.SpanKind.SERVER
    assert root.attributes is not None and root.attributes["http.response.status_code"] == 200
    assert root.context is not None
    spans = in_trace(exporter, root.context.trace_id)
    by_id = {s.context.span_id: s for s in spans if s.context is not None}

    def ancestors(s: ReadableSpan) -> list[str]:
        out = []
        while s.parent is not None and s.parent.span_id in by_id:
            s = by_id[s.parent.span_id]
            out.append(s.name)
        return out

    (start,) = named(spans, "StartWorkflow:OrderToCash")
    assert ancestors(start)[-1] == "POST /webhooks/shopify"
    assert "inbox relay" in ancestors(start)
    run = named(spans, "RunWorkflow:OrderToCash")
    assert run and all("StartWorkflow:OrderToCash" in ancestors(s) for s in run)
    activities = named(spans, "RunActivity:")
    kinds = {s.name for s in activities}
    assert {"RunActivity:erp.create_sales_order", "RunActivity:payment.authorize"} <= kinds, kinds
    # The interceptor's workflow spans take zero time, so activities hang off the start:
    # StartWorkflow -> StartActivity (scheduled by the workflow) -> RunActivity (the worker).
    for s in activities:
        chain = ancestors(s)
        assert chain[0] == s.name.replace("Run", "Start", 1) and "StartWorkflow:OrderToCash" in chain, chain
    for s in [start, *run, *activities]:
        assert s.attributes is not None and s.attributes.get(CID) == webhook_id, s.name
    return spans


async def test_a_webhook_started_order_is_one_trace_across_api_workflow_and_activities(
    spans: InMemorySpanExporter, client: Client, tmp_path: Path, database_url: str
) -> None:
    address = client.service_client.config.target_host
    settings = Settings(temporal_address=address, tracing="console")  # the installed provider is used
    traced = await connect(settings)
    assert any(isinstance(i, TracingInterceptor) for i in traced.config()["interceptors"])
    async with platform(traced, tmp_path, database_url, seed=seed_catalog, tracing="console") as p:
        order_id = 10**9 + uuid.uuid4().int % 10**9
        webhook_id = f"wh-{uuid.uuid4().hex[:12]}"
        r = await p.send_shopify(shopify_order(order_id, [("MUG-01", 1, "12.50")]), webhook_id=webhook_id)
        assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
        await p.wait_status(f"shopify-{order_id}", "Completed")
        spans_ = assert_order_trace(spans, webhook_id)
        # Secrets stay out of spans: no header, signature or body is recorded.
        for s in spans_:
            for key, value in (s.attributes or {}).items():
                assert "hmac" not in key.lower() and "signature" not in key.lower()
                assert "test-shopify-secret" not in str(value)

        # Relayed later (Temporal looked down at the time): the start still joins the webhook's trace.
        assert p.app is not None
        relay: InboxRelay = p.app.state.relay
        relay.temporal_ok = False
        later_id, later_hook = order_id + 1, f"wh-{uuid.uuid4().hex[:12]}"
        r = await p.send_shopify(shopify_order(later_id, [("MUG-01", 1, "12.50")]), webhook_id=later_hook)
        assert r.json()["status"] == "queued", r.text
        assert (await relay.run_once()).outcomes["relayed"] == 1
        await p.wait_status(f"shopify-{later_id}", "Completed")
        assert_order_trace(spans, later_hook)


async def test_with_tracing_off_no_tracer_or_interceptor_is_installed(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    tracing.reset()
    settings = Settings(temporal_address=client.service_client.config.target_host, database_url=database_url)
    assert settings.tracing == "off"
    assert tracing.configure(settings) is None and tracing.current() is None
    assert tracing.client_interceptors(settings) == []
    for c in (await connect(settings), await connect_worker_client(settings)):
        assert c.config()["interceptors"] == []
    app = create_app(settings, client)
    assert not any(m.cls is TracingMiddleware for m in app.user_middleware)
    # Nothing registered globally either: the API default is still OpenTelemetry's proxy.
    assert not isinstance(otel_trace.get_tracer_provider(), TracerProvider)
