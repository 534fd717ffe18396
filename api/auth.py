"""API keys with scopes on the platform's own HTTP APIs (``/v1/...``).

Each route depends on ``auth.require(scope)``: the key comes from ``Authorization: Bearer <key>``
or ``X-API-Key``. No key, or one that is unknown, malformed or revoked: 401 with a
``WWW-Authenticate`` challenge and the same words for all (nothing to learn by probing). A valid
key without the route's scope: 403 naming the scope. Webhooks, ``/healthz`` and ``/metrics`` do
not depend on it (vendors sign their webhooks; Prometheus scrapes without credentials).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError

from api.errors import problem
from settings import Settings
from store import apikeys
from store.db import Store

log = structlog.get_logger("api")

REALM = 'Bearer realm="retail-connect"'
ANONYMOUS = "anonymous"  # the principal when RETAIL_API_AUTH=off
_CACHE_MAX = 1000
_TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per key (not per request)

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API key's id (``anonymous`` with auth off), its name and scopes."""

    key_id: str
    name: str
    scopes: frozenset[str]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_auth_setting(settings: Settings, host: str | None = None) -> None:
    """Refuse ``RETAIL_API_AUTH=off`` on anything but a loopback address: an order API open to
    the network by a forgotten setting is worse than one that does not start."""
    bind = host or settings.api_host
    if settings.api_auth == "off" and not is_loopback(bind):
        raise RuntimeError(
            f"RETAIL_API_AUTH=off is only allowed when the API listens on a loopback address, not {bind}"
        )


def _unauthorized(detail: str, error: str | None = None) -> Exception:
    challenge = REALM if error is None else f'{REALM}, error="{error}"'
    return problem(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


class ApiAuth:
    """Verifies keys against the store, with a short cache so a read-heavy API (availability)
    does not pay a database read per request; a revocation takes ``api_key_cache_s`` at most."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._cache: dict[str, tuple[apikeys.ApiKey, float]] = {}
        self._touched: dict[str, float] = {}

    async def verify(self, presented: str) -> apikeys.ApiKey | None:
        fingerprint = apikeys.digest(presented)
        now = time.monotonic()
        cached = self._cache.get(fingerprint)
        if cached is not None and now - cached[1] < self.settings.api_key_cache_s:
            key: apikeys.ApiKey | None = cached[0]
        else:
            try:
                key = await asyncio.to_thread(apikeys.authenticate, self.store, presented)
            except SQLAlchemyError as exc:
                raise problem(503, "store_unavailable", "API keys cannot be checked right now") from exc
            if key is None:  # unknown keys are not cached: a caller cannot fill the memory
                self._cache.pop(fingerprint, None)
            else:
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
                self._cache[fingerprint] = (key, now)
        if key is not None and now - self._touched.get(key.id, -_TOUCH_EVERY_S) >= _TOUCH_EVERY_S:
            self._touched[key.id] = now
            try:
                await asyncio.to_thread(apikeys.touch, self.store, key.id)
            except SQLAlchemyError:  # bookkeeping only: never refuse a request for it
                log.warning("could not record an API key's last use", key_id=key.id)
        return key

    def require(self, scope: str) -> Callable[..., Awaitable[Principal]]:
        """A FastAPI dependency: the caller's principal, if its key has ``scope``."""
        assert scope in apikeys.SCOPES, scope

        async def dependency(
            request: Request,
            bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
            header_key: Annotated[str | None, Security(_header)],
        ) -> Principal:
            if self.settings.api_auth == "off":
                principal = Principal(ANONYMOUS, "RETAIL_API_AUTH=off", frozenset(apikeys.SCOPES))
                request.state.principal = principal
                return principal
            presented = (bearer.credentials if bearer is not None else None) or header_key
            if not presented:
                raise _unauthorized("send an API key: Authorization: Bearer <key> or X-API-Key: <key>")
            key = await self.verify(presented.strip())
            if key is None:
                raise _unauthorized("the API key is not valid (unknown or revoked)", "invalid_token")
            if scope not in key.scopes:
                raise problem(
                    403,
                    "insufficient_scope",
                    f"this API key lacks the scope {scope}",
                    scope=scope,
                    headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
                )
            principal = Principal(key.id, key.name, frozenset(key.scopes))
            request.state.principal = principal
            return principal

        return dependency


__all__ = ["ANONYMOUS", "ApiAuth", "Principal", "check_auth_setting", "is_loopback"]
