"""BigCommerce V2 orders over HTTP: an order with the sub-resources the mapper needs.

Follows ``shared/contracts/bigcommerce_adobe_commerce.md``: ``GET
{base}/stores/{store_hash}/v2/orders/{id}`` and its ``/products``, ``/shipping_addresses`` and
``/coupons``, authenticated by ``X-Auth-Token``. Errors become the adapter taxonomy
(``adapters/errors.py``); retries belong to Temporal, so nothing here loops on a failure:

* ``429``: :class:`RateLimitedError`, retry after ``X-Rate-Limit-Time-Reset-Ms`` (the store's
  quota window; BigCommerce sends no ``Retry-After``). A 429 without it is load shedding:
  :data:`DEFAULT_RETRY_AFTER_S`.
* ``5xx``, ``408``, timeouts and connection errors, an unreadable body: :class:`TransientError`.
* other ``4xx``: :class:`PermanentError` with a reason (``unauthorized``, ``forbidden``,
  ``order_not_found``, ``not_found``, ``bad_request``, ``invalid_request``, ``http_<code>``)
  and BigCommerce's own message (v2 ``[{"status", "message"}]`` or v3 ``{"title", "errors"}``).

Collections are read page by page (``page``, ``limit``), and an empty one may come back as
``204 No Content``: both are BigCommerce V2 API behaviour beyond the contract's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import httpx

from adapters.errors import PermanentError, RateLimitedError, TransientError

SYSTEM = "bigcommerce"
DEFAULT_BASE_URL = "https://api.bigcommerce.com"
DEFAULT_RETRY_AFTER_S = 2.0
PAGE_LIMIT = 250
MAX_PAGES = 40
_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    422: "invalid_request",
}

Json = dict[str, Any]


@dataclass(frozen=True)
class FetchedOrder:
    """A V2 order and its sub-resources, as BigCommerce returned them (the mapper's input)."""

    order: Json
    products: list[Json]
    shipping_addresses: list[Json]
    coupons: list[Json]


def _vendor_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, list) and body and isinstance(body[0], dict):  # v2 error list
        return "; ".join(str(e.get("message", "")) for e in body if isinstance(e, dict))[:500]
    if isinstance(body, dict):  # v3 error object
        parts = [str(body.get("title") or body.get("message") or "")]
        errors = body.get("errors")
        if isinstance(errors, dict) and errors:
            parts.append(", ".join(f"{k}: {v}" for k, v in errors.items()))
        return " - ".join(p for p in parts if p)[:500]
    return ""


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("X-Rate-Limit-Time-Reset-Ms")
    try:
        ms = float(value) if value is not None else -1.0
    except ValueError:
        ms = -1.0
    return ms / 1000 if ms >= 0 else DEFAULT_RETRY_AFTER_S


class BigCommerceClient:
    """Reads orders from one store. ``http`` is shared and owned by the caller (timeouts, pooling)."""

    def __init__(
        self,
        base_url: str,
        store_hash: str,
        access_token: str,
        http: httpx.AsyncClient,
        *,
        page_limit: int = PAGE_LIMIT,
    ) -> None:
        if not store_hash or "/" in store_hash:
            raise ValueError(f"not a store hash: {store_hash!r}")
        if not 1 <= page_limit <= PAGE_LIMIT:
            raise ValueError(f"page_limit must be 1-{PAGE_LIMIT}")
        self._page_limit = page_limit
        self._root = f"{base_url.rstrip('/')}/stores/{store_hash}/v2"
        self._headers = {"X-Auth-Token": access_token, "Accept": "application/json"}
        self._http = http

    def __repr__(self) -> str:  # never shows the token
        return f"BigCommerceClient({self._root!r})"

    async def get_order(self, order_id: int | str) -> FetchedOrder:
        """The order with its products, shipping addresses and coupons.

        Raises ``PermanentError(reason="order_not_found")`` when the store has no such order.
        """
        oid = str(order_id).strip()
        if isinstance(order_id, bool) or not oid.isascii() or not oid.isdigit():
            raise PermanentError(
                f"not a BigCommerce order id: {order_id!r}", reason="invalid_request", system=SYSTEM
            )
        path = f"/orders/{oid}"
        try:
            order = await self._get(path)
        except PermanentError as err:
            if err.reason == "not_found":
                raise PermanentError(err.message, reason="order_not_found", system=SYSTEM) from err
            raise
        if not isinstance(order, dict):
            raise TransientError(f"GET {path}: expected an order object", system=SYSTEM)
        return FetchedOrder(
            order=cast(Json, order),
            products=await self._collection(f"{path}/products"),
            shipping_addresses=await self._collection(f"{path}/shipping_addresses"),
            coupons=await self._collection(f"{path}/coupons"),
        )

    async def _get(self, path: str, params: dict[str, int] | None = None) -> Any:
        """The decoded JSON body, or None for 204 No Content."""
        try:
            response = await self._http.get(self._root + path, params=params, headers=self._headers)
        except httpx.RequestError as exc:  # timeouts, connection errors, bad encodings
            raise TransientError(f"GET {path}: {type(exc).__name__}: {exc}"[:500], system=SYSTEM) from exc
        status = response.status_code
        if status == 204:
            return None
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                raise TransientError(
                    f"GET {path}: HTTP {status} with a body that is not JSON", system=SYSTEM
                ) from None
        detail = _vendor_message(response)
        message = f"GET {path}: HTTP {status}" + (f" {detail}" if detail else "")
        if status == 429:
            raise RateLimitedError(message, retry_after=_retry_after(response), system=SYSTEM)
        if status >= 500 or status == 408:
            raise TransientError(message, system=SYSTEM)
        if 400 <= status < 500:
            raise PermanentError(message, reason=_REASONS.get(status, f"http_{status}"), system=SYSTEM)
        raise PermanentError(message, reason=f"http_{status}", system=SYSTEM)

    async def _collection(self, path: str) -> list[Json]:
        items: list[Json] = []
        seen: set[Any] = set()
        for page in range(1, MAX_PAGES + 1):
            body = await self._get(path, {"page": page, "limit": self._page_limit})
            if body is None:
                return items
            if not isinstance(body, list) or not all(isinstance(x, dict) for x in body):
                raise TransientError(f"GET {path}: expected a list of objects", system=SYSTEM)
            ids = [x.get("id") for x in body]
            if any(i is not None and i in seen for i in ids):
                raise PermanentError(
                    f"GET {path}: page {page} repeats items (paging not honoured)",
                    reason="invalid_response",
                    system=SYSTEM,
                )
            seen.update(i for i in ids if i is not None)
            items.extend(cast(list[Json], body))
            if len(body) < self._page_limit:
                return items
        raise PermanentError(
            f"GET {path}: more than {MAX_PAGES * self._page_limit} items",
            reason="too_many_items",
            system=SYSTEM,
        )
