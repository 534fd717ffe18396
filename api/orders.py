"""The order API: accept a canonical order, read one, request its cancellation.

``POST /v1/orders`` needs an ``Idempotency-Key`` (api/idempotency.py): a replay gets the same
answer, the same key with another body a 409. The order is started on Temporal at once when it
answers within ``webhook_inline_relay_timeout_s``; otherwise (Temporal down, slow) it is kept in
the webhook inbox like a webhook and answered 202 ``queued``: the relay starts it when Temporal
is back, so an accepted order is never lost.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import structlog
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

import tracing
from api.auth import ApiAuth, Principal
from api.errors import problem
from api.idempotency import Idempotency, check_key, request_sha256
from api.ingress import INBOX_ID_HEADER, is_json, json_body, safe_headers
from api.metrics import ORDERS_INGESTED, WEBHOOKS_REJECTED
from api.openapi import json_body_of
from api.relay import InboxRelay
from api.temporal import TemporalGateway, signal_order
from canonical import Order, OrderState
from orchestration.client import start_order, start_order_and_wait
from orchestration.models import CancelRequest
from settings import Settings
from store import inbox
from store.db import Store
from workflows.order_to_cash import OrderToCash

log = structlog.get_logger("api")

# Money arithmetic runs in a 28-digit decimal context: a bigger amount (e.g. "1e30") raises
# decimal.InvalidOperation, an ArithmeticError rather than a ValueError.
OUT_OF_RANGE = "an amount or quantity is too large to compute exactly"


MAX_REASON = 500


class CancelIn(BaseModel):
    """``POST /v1/orders/{order_key}/cancel`` body (optional)."""

    reason: str = Field(min_length=1, max_length=MAX_REASON)


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"path": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()]


def workflow_id_of(order_key: str) -> str:
    return order_key if order_key.startswith("order-") else f"order-{order_key}"


def parse_order(body: Any) -> Order:
    try:
        return Order.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        raise problem(422, "invalid_order", "the order is not valid", errors=validation_errors(exc)) from exc
    except ArithmeticError as exc:  # decimal.InvalidOperation: an amount beyond exact arithmetic
        errors = [{"path": "", "message": OUT_OF_RANGE}]
        raise problem(422, "invalid_order", "the order is not valid", errors=errors) from exc


def orders_router(
    settings: Settings,
    store: Store,
    gateway: TemporalGateway,
    relay: InboxRelay,
    auth: ApiAuth,
    idem: Idempotency,
) -> APIRouter:
    router = APIRouter(tags=["orders"])
    may_write = auth.require("orders:write")

    async def start_now(order: Order, cid: str) -> str | None:
        """Start the order's workflow; None when Temporal cannot take it right now."""
        timeout = settings.webhook_inline_relay_timeout_s
        if not relay.temporal_ok or timeout <= 0:
            return None
        try:
            client = await gateway.client()
            with tracing.correlated(cid, order_key=order.key):
                handle = await asyncio.wait_for(start_order(client, order, settings, cid), timeout)
        except RPCError as exc:
            if exc.status == RPCStatusCode.INVALID_ARGUMENT:
                raise problem(422, "invalid_order", f"Temporal refused the order: {exc.message}") from exc
            log.warning("order start failed; keeping it in the inbox", error=exc.message, order_key=order.key)
        except (TimeoutError, HTTPException) as exc:  # HTTPException: the gateway cannot connect
            log.warning("Temporal unavailable; keeping the order in the inbox", error=str(exc))
        else:
            return handle.id
        relay.temporal_ok = False  # the relay loop probes and hands the inbox over when it is back
        return None

    async def wait_accepted(order: Order, cid: str, ids: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        """Start with update-with-start and wait for the ERP (headless storefronts). None when
        Temporal cannot take it now: the caller keeps the order in the inbox as usual."""
        limit = settings.order_api_wait_s
        if not relay.temporal_ok:
            return None
        try:
            client = await gateway.client()
            with tracing.correlated(cid, order_key=order.key):
                got = await asyncio.wait_for(
                    start_order_and_wait(client, order, settings, cid, limit), limit + 5
                )
        except RPCError as exc:
            if exc.status == RPCStatusCode.INVALID_ARGUMENT:
                raise problem(422, "invalid_order", f"Temporal refused the order: {exc.message}") from exc
            log.warning("order start failed; keeping it in the inbox", error=exc.message, order_key=order.key)
            return None
        except (TimeoutError, HTTPException) as exc:
            log.warning("Temporal unavailable; keeping the order in the inbox", error=str(exc))
            return None
        if got is not None and got.erp_order_id:
            return 200, {"status": "accepted_by_erp", "erp_order_id": got.erp_order_id, **ids}
        if got is not None and got.attention_reason:
            why = f"the order waits for an operator ({got.attention_reason}); GET /v1/orders/{order.key}"
            return 202, {
                "status": "needs_attention",
                "attention_reason": got.attention_reason,
                "detail": why,
                **ids,
            }
        detail = f"the ERP has not accepted it within {limit:g}s; GET /v1/orders/{order.key} follows it"
        return 202, {"status": "accepted", "detail": detail, **ids}

    async def keep(order: Order, cid: str, request: Request, raw: bytes, dedupe: str) -> int:
        new = inbox.NewDelivery(
            source="api",
            topic="orders/create",
            delivery_id=None,
            event_id=None,
            dedupe_key=dedupe,
            business_key=None,
            workflow_id=order.workflow_id,
            action="start",
            signal=None,
            argument=order.model_dump(mode="json"),
            correlation_id=cid,
            headers=safe_headers(request),
            body=raw,
        )
        try:
            recorded = await asyncio.to_thread(inbox.record_delivery, store, new)
        except Exception as exc:  # neither started nor kept: the caller must retry
            log.exception("could not keep an API order", order_key=order.key)
            raise problem(503, "inbox_unavailable", "the order could not be stored; retry later") from exc
        return (recorded.original or recorded.entry).id

    @router.post(
        "/v1/orders",
        status_code=202,
        dependencies=[Depends(may_write)],
        openapi_extra=json_body_of(Order),
    )
    async def post_order(
        request: Request,
        idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
        content_type: str | None = Header(default=None),
        wait: Literal["accepted"] | None = Query(
            default=None, description="accepted: answer with the ERP order number if the ERP accepts in time"
        ),
    ) -> JSONResponse:
        principal: Principal = request.state.principal  # set by the may_write dependency
        """Accept a canonical order: 202 ``accepted`` (started) or ``queued`` (kept in the inbox
        while Temporal is unavailable). Duplicates (same channel and external id) find the
        running workflow; a replayed Idempotency-Key gets the first answer."""
        if not is_json(content_type):
            raise problem(415, "unsupported_media_type", "Content-Type must be application/json")
        key = check_key(idempotency_key, required=True)
        assert key is not None
        raw = await request.body()
        body = json_body(raw)
        order = parse_order(body)

        async def accept() -> tuple[int, dict[str, Any]]:
            ids = {"order_key": order.key, "workflow_id": order.workflow_id, "correlation_id": key}
            if wait == "accepted":
                answered = await wait_accepted(order, key, ids)
                if answered is not None:
                    ORDERS_INGESTED.labels(order.channel, "api").inc()
                    return answered
            started = await start_now(order, key)
            if started is not None:
                ORDERS_INGESTED.labels(order.channel, "api").inc()
                log.info(
                    "order accepted", order_key=order.key, workflow_id=started, api_key_id=principal.key_id
                )
                return 202, {"status": "accepted", **ids}
            dedupe = f"api|orders/create|{principal.key_id}|{key}|{request_sha256(body)}"
            inbox_id = await keep(order, key, request, raw, dedupe)
            log.info("order queued", order_key=order.key, inbox_id=inbox_id, api_key_id=principal.key_id)
            detail = "kept in the inbox; it is started as soon as Temporal answers"
            return 202, {"status": "queued", **ids, "detail": detail, "inbox_id": str(inbox_id)}

        response = await idem.run(
            principal=principal.key_id,
            endpoint="orders",
            key=key,
            body=body,
            resource=("order_key", order.key),
            handler=accept,
        )
        inbox_id = json.loads(bytes(response.body)).get("inbox_id")
        if inbox_id:
            response.headers[INBOX_ID_HEADER] = str(inbox_id)
        return response

    @router.get("/v1/orders/{order_key}", dependencies=[Depends(auth.require("orders:read"))])
    async def get_order(order_key: str) -> OrderState:
        """The order's state, from its workflow (a query)."""
        c = await gateway.client()
        wf_id = workflow_id_of(order_key)
        try:
            return await c.get_workflow_handle_for(OrderToCash.run, wf_id).query(OrderToCash.state)
        except WorkflowQueryFailedError as exc:
            raise problem(503, "query_failed", f"the order's workflow could not answer: {exc}") from exc
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise problem(404, "unknown_order", f"no order {order_key}") from exc
            raise problem(503, "temporal_unavailable", exc.message) from exc

    @router.post(
        "/v1/orders/{order_key}/cancel",
        status_code=202,
        dependencies=[Depends(may_write)],
        openapi_extra=json_body_of(CancelIn, required=False),
    )
    async def cancel_order(order_key: str, request: Request) -> dict[str, str]:
        """Request cancellation (``{"reason": "..."}``): compensated by the workflow; 409 once it
        has finished."""
        raw = await request.body()
        body = json_body(raw) if raw else {}
        reason = str(body.get("reason") or "cancelled through the API") if isinstance(body, dict) else ""
        if not reason:
            raise problem(400, "missing_reason", "body must be an object with a reason")
        if len(reason) > MAX_REASON:  # it travels in the workflow's history: keep it a reason
            raise problem(422, "invalid_request", f"the reason is longer than {MAX_REASON} characters")
        wf_id = workflow_id_of(order_key)
        c = await gateway.client()
        try:
            request_cancel = CancelRequest(reason=reason, source="api")
            outcome = await signal_order(c, wf_id, "request_cancel", request_cancel)
        except RPCError as exc:
            raise problem(503, "temporal_unavailable", f"Temporal refused the signal: {exc.message}") from exc
        if outcome == "missing":
            WEBHOOKS_REJECTED.labels("api", "unknown_order").inc()
            raise problem(404, "unknown_order", f"no order workflow {wf_id}")
        if outcome == "closed":
            raise problem(409, "order_closed", f"{wf_id} has already finished; nothing to cancel")
        return {"workflow_id": wf_id, "status": "cancel requested"}

    return router


__all__ = ["orders_router"]
