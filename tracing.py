"""OpenTelemetry tracing: one trace per order, from the webhook request through Temporal to
each activity (docs/observability.md, "Traces").

Off by default (``RETAIL_TRACING=off``): no tracer provider is built, no interceptor is added to
Temporal clients and no middleware to the API, so tracing costs nothing. With ``console`` or
``otlp`` one provider per process is built on first use and:

- the API wraps every request in a server span (``api.tracing_middleware``);
- every Temporal client gets ``temporalio.contrib.opentelemetry.TracingInterceptor``, which
  carries the context in Temporal headers: ``StartWorkflow`` -> ``RunWorkflow`` ->
  ``StartActivity`` -> ``RunActivity`` (workers built on the client inherit it);
- the order's correlation id travels as W3C baggage with that context, and a span processor
  copies it onto every span as ``retail.correlation_id`` (so workflow and activity spans carry
  it without any workflow code knowing about tracing).

The global OpenTelemetry provider is never set: the tracer is handed to the interceptor and the
middleware explicitly, so tests can install an in-memory exporter and remove it again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from opentelemetry import baggage, context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor

from settings import Settings

__all__ = [
    "CORRELATION_ATTRIBUTE",
    "Tracing",
    "client_interceptors",
    "configure",
    "correlated",
    "current",
    "extract",
    "inject",
    "install",
    "reset",
]

CORRELATION_ATTRIBUTE = "retail.correlation_id"
TRACER_NAME = "retail-connect"


class CorrelationSpanProcessor(SpanProcessor):
    """Copies the correlation id from the parent context's baggage onto each new span. Runs
    outside the workflow sandbox (the interceptor creates workflow spans through an extern)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        cid = baggage.get_baggage(CORRELATION_ATTRIBUTE, parent_context)
        if cid:
            span.set_attribute(CORRELATION_ATTRIBUTE, str(cid))

    def on_end(self, span: ReadableSpan) -> None:
        return None


@dataclass(frozen=True)
class Tracing:
    provider: TracerProvider
    tracer: trace.Tracer
    interceptor: TracingInterceptor


_current: Tracing | None = None


def _exporter(settings: Settings) -> SpanExporter:
    if settings.tracing == "console":
        return ConsoleSpanExporter()
    # Imported here: the OTLP exporter (and its HTTP stack) loads only when it is used.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.tracing_endpoint or None)  # empty: the OTEL_* defaults


def install(provider: TracerProvider) -> Tracing:
    """Use ``provider`` for this process's spans (tests pass one with an in-memory exporter)."""
    global _current
    provider.add_span_processor(CorrelationSpanProcessor())
    tracer = provider.get_tracer(TRACER_NAME)
    _current = Tracing(provider, tracer, TracingInterceptor(tracer))
    return _current


def configure(settings: Settings) -> Tracing | None:
    """This process's tracing per ``settings``: None when off; otherwise built once (the first
    caller's settings win, as the API and the worker share one process in ``retail dev``)."""
    if settings.tracing == "off":
        return None
    if _current is None:
        resource = Resource.create({"service.name": settings.tracing_service_name})
        provider = TracerProvider(resource=resource)
        # Batched: exporting never blocks a request or an activity.
        provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
        install(provider)
    return _current


def current() -> Tracing | None:
    return _current


def reset() -> None:
    """Flush and forget the provider (tests; process shutdown)."""
    global _current
    if _current is not None:
        _current.provider.shutdown()
    _current = None


def client_interceptors(settings: Settings) -> list[TracingInterceptor]:
    """What a Temporal client needs for tracing: nothing when it is off."""
    t = configure(settings)
    return [] if t is None else [t.interceptor]


@contextlib.contextmanager
def correlated(correlation_id: str, **attributes: str) -> Iterator[None]:
    """Tag the current span with the correlation id (and ``attributes``), and carry the id as
    baggage to everything started inside the block (Temporal calls included). A no-op span
    ignores it all when tracing is off."""
    span = trace.get_current_span()
    span.set_attribute(CORRELATION_ATTRIBUTE, correlation_id)
    for key, value in attributes.items():
        span.set_attribute(f"retail.{key}", value)
    token = context.attach(baggage.set_baggage(CORRELATION_ATTRIBUTE, correlation_id))
    try:
        yield
    finally:
        context.detach(token)


def inject() -> dict[str, str]:
    """The current span's W3C ``traceparent`` (and ``tracestate``), to keep with deferred work;
    empty when no span is recording."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.get_global_textmap().inject(carrier)
    return {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate")}


def extract(carrier: Mapping[str, str]) -> Context:
    """The context ``inject`` kept (or an incoming request's ``traceparent``)."""
    return propagate.get_global_textmap().extract(dict(carrier))
