"""Tryton's JSON-RPC over HTTP (``POST /<db>/rpc/``), with httpx: login, the session header,
one renewal when the session expired, and Tryton's errors as the platform's.

Facts: ../shared/contracts/tryton.md. The worker never imports trytond; this is the wire.

Errors: a reply ``{"error": [name, args]}`` whose name is a user-facing exception
(``UserError``, ``UserWarning``, validation and access errors) is the document's fault and
becomes PermanentError with Tryton's message; a refused session (HTTP 401) is renewed once;
Tryton unreachable, 5xx, 429 or a timeout is TransientError, so the activity retries and the
order waits until Tryton is back.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import json
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

import httpx
import structlog

from adapters.errors import PermanentError, TransientError

log = structlog.get_logger("tryton.rpc")
SYSTEM = "erp"

# Tryton's exception names (trytond.exceptions and model's validation errors) that say the
# request itself is wrong: retrying gives the same answer.
USER_ERRORS = (
    "UserError",
    "UserWarning",
    "AccessError",
    "ValidationError",
    "DomainValidationError",
    "RequiredValidationError",
    "SizeValidationError",
    "DigitsValidationError",
    "SelectionValidationError",
    "TimeValidationError",
    "ForbiddenCharValidationError",
    "RequiredError",
)


class TrytonLoginError(Exception):
    """The configured credentials are refused: raised at worker start, never retried."""


class TrytonRpc:
    """One Tryton database's JSON-RPC endpoint for one user; the session is shared by every
    call of the worker and renewed when Tryton says it expired."""

    def __init__(
        self,
        url: str,
        database: str,
        login: str,
        password: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        max_in_flight: int = 4,
    ) -> None:
        self.endpoint = f"{url.rstrip('/')}/{database}/rpc/"
        self.database = database
        self.login_name = login
        self._password = password
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._session: str | None = None
        self._lock = asyncio.Lock()
        # A bounded number of calls in flight: Tryton, not the worker, sets the pace.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._ids = itertools.count(1)
        self.context: dict[str, Any] = {}
        self.calls = 0  # JSON-RPC requests sent (bench: calls per order)
        # Per method: requests and seconds waited (bench: where an order's ERP time goes).
        self.by_method: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    async def aclose(self) -> None:
        await self._http.aclose()

    async def login(self) -> None:
        """Open a session and read the user's context (company, language). Wrong credentials
        raise TrytonLoginError with the reason."""
        try:
            result = await self._post(
                "common.db.login", [self.login_name, {"password": self._password}], None
            )
        except PermanentError as exc:
            raise TrytonLoginError(f"Tryton refused the login of {self.login_name!r}: {exc}") from exc
        if not isinstance(result, list) or len(result) < 2:
            raise TrytonLoginError(f"Tryton refused the login of {self.login_name!r}: {result!r}")
        user_id, token = result[0], result[1]
        raw = f"{self.login_name}:{user_id}:{token}".encode()
        self._session = "Session " + base64.b64encode(raw).decode()
        prefs = await self._post("model.res.user.get_preferences", [True, {}], self._session)
        self.context = {k: v for k, v in prefs.items() if k in ("company", "language", "companies")}

    async def call(self, method: str, *args: Any, ctx: dict[str, Any] | None = None) -> Any:
        """``method`` with ``args`` and the user's context (plus ``ctx``)."""
        if self._session is None:
            async with self._lock:
                if self._session is None:
                    await self.login()
        session = self._session
        context = {**self.context, **(ctx or {})}
        try:
            return await self._post(method, [*args, context], session)
        except _SessionExpired:
            async with self._lock:
                if self._session == session:
                    await self.login()
            return await self._post(method, [*args, context], self._session)

    async def model(self, model: str, method: str, *args: Any, ctx: dict[str, Any] | None = None) -> Any:
        """``model.<model>.<method>``: e.g. ``model("sale.sale", "quote", [id])``."""
        return await self.call(f"model.{model}.{method}", *args, ctx=ctx)

    async def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: list[str],
        *,
        order: list[Any] | None = None,
        limit: int | None = None,
        ctx: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self.model(
            model, "search_read", domain, 0, limit, order, fields, ctx=ctx
        )
        return rows

    async def _post(self, method: str, params: list[Any], session: str | None) -> Any:
        headers = {"Content-Type": "application/json"}
        if session:
            headers["Authorization"] = session
        body = json.dumps({"id": next(self._ids), "method": method, "params": params}, default=_encode)
        self.calls += 1
        try:
            async with self._in_flight:
                started = time.perf_counter()
                try:
                    resp = await self._http.post(self.endpoint, content=body, headers=headers)
                finally:
                    spent = self.by_method[method]
                    spent[0] += 1
                    spent[1] += time.perf_counter() - started
        except httpx.HTTPError as exc:
            raise TransientError(f"Tryton unreachable ({type(exc).__name__}: {exc})", system=SYSTEM) from exc
        if resp.status_code == 401 and session is not None:
            raise _SessionExpired
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientError(f"Tryton answered HTTP {resp.status_code} to {method}", system=SYSTEM)
        if resp.status_code >= 400:
            raise PermanentError(
                f"Tryton answered HTTP {resp.status_code} to {method}: {resp.text[:300]}",
                system=SYSTEM,
                reason="erp_rejected",
            )
        try:
            reply = json.loads(resp.text, object_hook=_decode)
        except ValueError as exc:
            raise TransientError(f"Tryton sent a reply that is not JSON to {method}", system=SYSTEM) from exc
        if reply.get("error") is not None:
            raise _error(method, reply["error"])
        return reply.get("result")


class _SessionExpired(Exception):
    pass


def _encode(value: Any) -> Any:
    """Tryton's JSON extensions (trytond/protocols/jsonrpc.py) for what JSON lacks."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


def _decode(obj: dict[str, Any]) -> Any:
    kind = obj.get("__class__")
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "date":
        return dt.date(obj["year"], obj["month"], obj["day"])
    if kind == "datetime":
        return dt.datetime(
            obj["year"],
            obj["month"],
            obj["day"],
            obj.get("hour", 0),
            obj.get("minute", 0),
            obj.get("second", 0),
            obj.get("microsecond", 0),
        )
    return obj


def _error(method: str, error: Any) -> Exception:
    name, args = (error[0], error[1]) if isinstance(error, list) and len(error) >= 2 else (str(error), None)
    message = _message(args) or str(name)
    if isinstance(name, str) and name.split(".")[-1] in USER_ERRORS:
        return PermanentError(f"Tryton: {message}", system=SYSTEM, reason="erp_rejected")
    if name == "LoginException" or name == "NotLogged":
        return _SessionExpired()
    # Anything else (a server-side exception, a lock timeout): Tryton's problem, worth a retry.
    log.warning("tryton_error", method=method, error=str(error)[:500])
    return TransientError(f"Tryton failed {method}: {message}", system=SYSTEM)


def _message(args: Any) -> str:
    if isinstance(args, list) and args:
        head = args[0]
        if isinstance(head, str):
            tail = args[1] if len(args) > 1 and isinstance(args[1], str) and args[1] else ""
            return f"{head} {tail}".strip()
    if isinstance(args, str):
        return args
    return ""
