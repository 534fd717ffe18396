"""The returns API: request a return (checked at once against the order), and read one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import ApiAuth, Principal
from api.errors import problem
from api.idempotency import Idempotency, check_key
from api.ingress import is_json, json_body
from api.openapi import json_body_of
from api.temporal import TemporalGateway
from canonical.returns import (
    Receipt,
    ReturnRequest,
    ReturnState,
    check_return,
    lines_by_sku,
    return_workflow_id,
)
from orchestration.client import order_return_context, return_policy_from, start_return
from settings import Settings
from workflows.return_to_refund import ReturnToRefund


class ReturnLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, description="the SKU, or the order line id")
    quantity: int = Field(gt=0)


class ReturnIn(BaseModel):
    """``POST /v1/returns`` body."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1)
    order_external_id: str = Field(min_length=1)
    return_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="your RMA number; default: the Idempotency-Key",
    )
    lines: list[ReturnLineIn] = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=500)
    receipt: Receipt = "warehouse"
    location: str | None = None
    requested_by: str | None = None


def returns_router(
    settings: Settings, gateway: TemporalGateway, auth: ApiAuth, idem: Idempotency
) -> APIRouter:
    router = APIRouter(tags=["returns"])
    may_write = auth.require("returns:write")

    @router.post(
        "/v1/returns",
        status_code=202,
        dependencies=[Depends(may_write)],
        openapi_extra=json_body_of(ReturnIn),
    )
    async def post_return(
        request: Request,
        idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
        content_type: str | None = Header(default=None),
    ) -> JSONResponse:
        principal: Principal = request.state.principal  # set by the may_write dependency
        """Start a return. 422 says why it cannot be accepted (not shipped, more than shipped,
        outside the window); the same return id never starts a second return, and a replayed
        Idempotency-Key gets the first answer (another body with it: 409)."""
        if not is_json(content_type):
            raise problem(415, "unsupported_media_type", "Content-Type must be application/json")
        key = check_key(idempotency_key, required=False)
        body = json_body(await request.body())
        try:
            inp = ReturnIn.model_validate_json(json.dumps(body))
        except ValidationError as exc:
            errors = [{"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
            raise problem(422, "invalid_return", "the return is not valid", errors=errors) from exc
        return_id = inp.return_id or (f"api-{key}" if key else None)
        if return_id is None:
            raise problem(400, "missing_idempotency_key", "send return_id or the Idempotency-Key header")

        async def accept() -> tuple[int, dict[str, Any]]:
            return 202, await start(inp, return_id, key)

        if key is None:
            status, answer = await accept()
            return JSONResponse(answer, status)
        return await idem.run(
            principal=principal.key_id,
            endpoint="returns",
            key=key,
            body=body,
            resource=("return_key", f"{inp.channel}-{return_id}"),
            handler=accept,
        )

    async def start(inp: ReturnIn, return_id: str, correlation_id: str | None) -> dict[str, Any]:
        client = await gateway.client()
        order_key = f"{inp.channel}-{inp.order_external_id}"
        try:
            ctx = await order_return_context(client, order_key)
        except (RPCError, WorkflowQueryFailedError) as exc:
            raise problem(503, "temporal_unavailable", f"the order could not be read: {exc}") from exc
        if ctx is None:
            raise problem(404, "unknown_order", f"no order {order_key}")
        wanted: dict[str, int] = {}
        for ln in inp.lines:
            wanted[ln.sku] = wanted.get(ln.sku, 0) + ln.quantity
        try:
            req = ReturnRequest(
                channel=inp.channel,
                order_external_id=inp.order_external_id,
                return_id=return_id,
                source="api",
                lines=lines_by_sku(ctx.order, wanted),
                reason=inp.reason,
                requested_at=datetime.now(UTC),
                receipt=inp.receipt,
                location=inp.location,
                requested_by=inp.requested_by,
            )
        except (ValueError, ValidationError) as exc:
            raise problem(422, "not_returnable", str(exc)) from exc
        why = check_return(req, ctx, return_policy_from(settings, req.channel).window_days)
        if why:
            raise problem(422, "not_returnable", why)
        try:
            handle = await start_return(client, req, settings, correlation_id)
        except RPCError as exc:
            raise problem(503, "temporal_unavailable", f"Temporal refused the start: {exc.message}") from exc
        return {"status": "accepted", "return_key": req.key, "workflow_id": handle.id}

    @router.get("/v1/returns/{channel}/{return_id}", dependencies=[Depends(auth.require("returns:read"))])
    async def get_return(channel: str, return_id: str) -> ReturnState:
        client = await gateway.client()
        wf_id = return_workflow_id(channel, return_id)
        try:
            return await client.get_workflow_handle_for(ReturnToRefund.run, wf_id).query(ReturnToRefund.state)
        except WorkflowQueryFailedError as exc:
            raise problem(503, "query_failed", f"the return's workflow could not answer: {exc}") from exc
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise problem(404, "unknown_return", f"no return {wf_id}") from exc
            raise problem(503, "temporal_unavailable", exc.message) from exc

    return router


__all__ = ["returns_router"]
