"""``Idempotency-Key`` on the order and returns APIs.

The key is scoped to the caller's API key and the endpoint. The body is compared as canonical
JSON (key order and whitespace do not make a different request). Only accepted requests (2xx)
are kept; a refused one frees the key for a corrected request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from api.errors import problem
from settings import Settings
from store import idempotency
from store.db import Store

log = structlog.get_logger("api")

REPLAYED_HEADER = "Idempotent-Replayed"
Handler = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


def request_sha256(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def check_key(key: str | None, *, required: bool) -> str | None:
    """The header's value: 400 when required and missing, or longer than the store keeps."""
    if not key:
        if required:
            raise problem(400, "missing_idempotency_key", "the Idempotency-Key header is required")
        return None
    if len(key) > idempotency.KEY_MAX:
        too_long = f"the Idempotency-Key is longer than {idempotency.KEY_MAX} characters"
        raise problem(400, "invalid_idempotency_key", too_long)
    return key


class Idempotency:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    async def run(
        self,
        *,
        principal: str,
        endpoint: str,
        key: str,
        body: Any,
        resource: tuple[str, str],
        handler: Handler,
    ) -> JSONResponse:
        """Answer with ``handler`` once per key; a replay gets the same answer.

        ``resource`` names what the request is about, e.g. ``("order_key", "shopify-1001")``:
        a reuse of the key with another body is refused naming the stored request's one."""
        field, value = resource
        try:
            begun = await asyncio.to_thread(
                idempotency.begin,
                self.store,
                principal=principal,
                endpoint=endpoint,
                key=key,
                request_sha256=request_sha256(body),
                resource_key=value,
                retention=timedelta(seconds=self.settings.api_idempotency_retention_s),
                lock=timedelta(seconds=self.settings.api_idempotency_lock_s),
            )
        except SQLAlchemyError as exc:
            raise problem(503, "store_unavailable", "the request cannot be recorded right now") from exc
        if isinstance(begun, idempotency.Replay):
            return JSONResponse(begun.response, begun.status_code, headers={REPLAYED_HEADER: "true"})
        if isinstance(begun, idempotency.Reused):
            named: dict[str, Any] = {field: begun.resource_key}
            raise problem(
                409,
                "idempotency_key_reused",
                f"Idempotency-Key {key!r} was already used for {field.replace('_', ' ')} "
                f"{begun.resource_key} with a different body",
                **named,
            )
        if isinstance(begun, idempotency.InProgress):
            raise problem(
                409,
                "idempotency_key_in_use",
                f"a request with Idempotency-Key {key!r} is being processed; retry shortly",
                headers={"Retry-After": "1"},
            )
        try:
            status, answer = await handler()
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(idempotency.abandon, self.store, begun.record_id)
            raise
        try:
            await asyncio.to_thread(idempotency.complete, self.store, begun.record_id, status, answer)
        except SQLAlchemyError:  # accepted all the same; a replay within the lock is told to retry
            log.warning("could not record an idempotent answer", endpoint=endpoint)
        return JSONResponse(answer, status)


async def purge_loop(store: Store, stop: asyncio.Event, every_s: float = 3600.0) -> None:
    """Delete expired records now and then (expired ones are ignored meanwhile anyway)."""
    while not stop.is_set():
        try:
            n = await asyncio.to_thread(idempotency.purge_expired, store)
            if n:
                log.info("expired idempotency records purged", count=n)
        except Exception:
            log.exception("idempotency purge failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
