"""A server span per HTTP request (only when tracing is on; see ``tracing``).

Records the method, the route template, the path and the status code; never headers, bodies or
query strings (signatures and secrets travel in headers, and a query may carry anything). An
incoming W3C ``traceparent`` becomes the parent, so a caller's trace continues here."""

from __future__ import annotations

from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import tracing


class TracingMiddleware:
    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope.get("method", "")
        path: str = scope.get("path", "")
        incoming = {k: v for k in ("traceparent", "tracestate") if (v := _header(scope, k.encode()))}
        token = context.attach(tracing.extract(incoming))
        status: dict[str, int] = {}

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            with self.tracer.start_as_current_span(
                f"{method} {path}",
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": path},
            ) as span:
                try:
                    await self.app(scope, receive, send_with_status)
                finally:
                    route = _route(scope)
                    if route:
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                    code = status.get("code")
                    if code is not None:
                        span.set_attribute("http.response.status_code", code)
                        if code >= 500:
                            span.set_status(Status(StatusCode.ERROR))
        finally:
            context.detach(token)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def _route(scope: Scope) -> str | None:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None
