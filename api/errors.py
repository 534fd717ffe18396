"""Problem responses: every rejection says why, and bad input is never a 500.

Every 4xx body is ``{"detail": {"reason": ..., "detail": ...}}``: the API's own problems, and
(through ``install``) FastAPI's request validation errors and Starlette's 404/405 too, so a
client reads one shape whatever refused it."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


def problem(
    status: int, reason: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> HTTPException:
    return HTTPException(
        status_code=status, detail={"reason": reason, "detail": detail, **extra}, headers=headers
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"path": ".".join(str(p) for p in err.get("loc", ())), "message": str(err.get("msg", ""))}
            for err in exc.errors()
        ]
        first = f"{errors[0]['path']}: {errors[0]['message']}" if errors else "the request is not valid"
        body = {"reason": "invalid_request", "detail": first, "errors": errors}
        return JSONResponse({"detail": body}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail
        if not isinstance(detail, dict):
            detail = {"reason": _reason(exc.status_code), "detail": str(detail)}
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)
