"""Adobe Commerce (Magento 2) REST orders over HTTP: search by ``updated_at``, one order by number,
the order's shipments, ship and cancel.

Follows ``shared/contracts/bigcommerce_adobe_commerce.md`` §B: ``{base}/rest/{store_code}/V1/orders``
with ``searchCriteria`` filter groups, ``Authorization: Bearer <integration or admin token>``,
errors ``{"message", "parameters"}``. From Magento's Web API reference (beyond the contract's
text): the search answers ``{"items", "search_criteria", "total_count"}``; ``condition_type``
``eq|gteq|lteq``; filter groups are ANDed; ``searchCriteria[sortOrders][n][field|direction]``,
``searchCriteria[pageSize]`` and ``[currentPage]`` page the result; a ``currentPage`` past the
end answers the last page again (so a page never ends the listing by being empty).

**Paging by key, not by page number.** Offsets shift when an order already listed is updated
past the window while we page (it leaves the result and the next page starts one order later:
an order would be skipped). Pages are therefore asked by key: ``updated_at >= last seen`` in
``(updated_at, entity_id)`` order, dropping what was already seen at that time; ``currentPage``
only steps through a run of more than a page of orders updated in the same second (also when the
cursor has just moved into such a second and its first page holds only orders already seen:
``total_count`` says whether more follow).

Writes (the contract's ``POST /V1/order/{orderId}/ship`` and, from Magento's Web API reference,
``POST /V1/orders/{id}/cancel`` answering a boolean and ``GET /V1/shipments`` with the same
``searchCriteria``) address the order by ``entity_id``.

Errors become the adapter taxonomy: 429 (Fastly on Adobe Commerce Cloud) rate limited after
``Retry-After``; 5xx and timeouts transient; 401, 404 and other 4xx permanent with Magento's
message (``%1`` placeholders filled from ``parameters``), never the token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import httpx

from adapters.errors import PermanentError, RateLimitedError, TransientError

SYSTEM = "adobe_commerce"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_RETRY_AFTER_S = 2.0
MAX_PAGE = 300

Json = dict[str, Any]


def magento_time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return at.astimezone(UTC).strftime(TIME_FORMAT)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if not isinstance(body, dict):
        return ""
    text = str(body.get("message") or "")
    params = body.get("parameters")
    if isinstance(params, list):
        for n, value in enumerate(params, 1):
            text = text.replace(f"%{n}", str(value))
    elif isinstance(params, dict):
        for name, value in params.items():
            text = text.replace(f"%{name}", str(value))
    return text[:500]


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after ``(updated_at, entity_id)``; ``page`` > 1 only inside
    a run of orders updated in the same second."""

    updated_at: str
    entity_id: int
    page: int = 1

    def encode(self) -> str:
        return json.dumps([self.updated_at, self.entity_id, self.page])

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        at, eid, page = json.loads(raw)
        return cls(str(at), int(eid), int(page))


@dataclass(frozen=True)
class SearchPage:
    orders: list[Json]
    cursor: Cursor | None


def _filters(groups: list[tuple[str, str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, (fld, value, condition) in enumerate(groups):
        base = f"searchCriteria[filter_groups][{n}][filters][0]"
        out |= {f"{base}[field]": fld, f"{base}[value]": value, f"{base}[condition_type]": condition}
    return out


class AdobeCommerceClient:
    """One store view's orders. ``http`` is owned by the caller."""

    def __init__(self, base_url: str, store_code: str, token: str, http: httpx.AsyncClient) -> None:
        if not store_code or "/" in store_code:
            raise ValueError(f"not a store code: {store_code!r}")
        self._root = f"{base_url.rstrip('/')}/rest/{store_code}/V1"
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._http = http

    def __repr__(self) -> str:
        return f"AdobeCommerceClient({self._root!r})"

    async def _request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Json | None = None
    ) -> Any:
        """One call; the decoded JSON of a 200 (an object, or a scalar for ship and cancel)."""
        try:
            response = await self._http.request(
                method, self._root + path, params=params, json=body, headers=self._headers
            )
        except httpx.RequestError as exc:
            raise TransientError(
                f"{method} {path}: {type(exc).__name__}: {exc}"[:500], system=SYSTEM
            ) from exc
        status = response.status_code
        if status == 200:
            try:
                return response.json()
            except ValueError:
                raise TransientError(
                    f"{method} {path}: HTTP 200 with a body that is not JSON", system=SYSTEM
                ) from None
        message = f"{method} {path}: HTTP {status} {_message(response)}".strip()
        if status == 429:
            raise RateLimitedError(message, retry_after=_retry_after(response), system=SYSTEM)
        if status >= 500 or status == 408:
            raise TransientError(message, system=SYSTEM)
        reasons = {
            400: "adobe_commerce_bad_request",
            401: "adobe_commerce_unauthorized",
            404: "adobe_commerce_not_found",
        }
        raise PermanentError(
            message, reason=reasons.get(status, f"adobe_commerce_http_{status}"), system=SYSTEM
        )

    async def _get(self, path: str, params: dict[str, str]) -> Json:
        body = await self._request("GET", path, params=params)
        if not isinstance(body, dict):
            raise TransientError(f"GET {path}: expected an object", system=SYSTEM)
        return cast(Json, body)

    async def orders_updated(
        self, since: datetime, until: datetime, cursor: Cursor | None, page_size: int
    ) -> SearchPage:
        """One page of the orders updated in [since, until], oldest update first."""
        size = min(max(page_size, 1), MAX_PAGE)
        start = cursor.updated_at if cursor else magento_time(since)
        page = cursor.page if cursor else 1
        params = _filters([("updated_at", start, "gteq"), ("updated_at", magento_time(until), "lteq")]) | {
            "searchCriteria[sortOrders][0][field]": "updated_at",
            "searchCriteria[sortOrders][0][direction]": "ASC",
            "searchCriteria[sortOrders][1][field]": "entity_id",
            "searchCriteria[sortOrders][1][direction]": "ASC",
            "searchCriteria[pageSize]": str(size),
            "searchCriteria[currentPage]": str(page),
        }
        body = await self._get("/orders", params)
        items = body.get("items") or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise TransientError("GET /orders: items is not a list of orders", system=SYSTEM)

        def key(o: Json) -> tuple[str, int]:
            return (str(o.get("updated_at") or ""), int(o.get("entity_id") or 0))

        after = (cursor.updated_at, cursor.entity_id) if cursor else ("", -1)
        fresh = [o for o in items if key(o) > after]
        if not fresh:
            total = body.get("total_count")
            if cursor is not None and len(items) == size and isinstance(total, int) and page * size < total:
                # A full page of orders seen already, all updated in the cursor's second: the
                # cursor moved into a second shared by more than a page of orders (a bulk update,
                # shipments written back at once). The rest of that second is on the next page;
                # ending here would skip them.
                return SearchPage([], Cursor(start, cursor.entity_id, page + 1))
            return SearchPage([], None)  # past the end (Magento repeats its last page) or done
        if len(items) < size:
            return SearchPage(fresh, None)
        last = key(fresh[-1])
        if last[0] == start:  # a full page inside one second: step on by page number
            return SearchPage(fresh, Cursor(start, last[1], page + 1))
        return SearchPage(fresh, Cursor(last[0], last[1]))

    async def order_by_number(self, increment_id: str) -> Json | None:
        """The order with this ``increment_id`` (the contract's search example), or None."""
        params = _filters([("increment_id", increment_id, "eq")]) | {"searchCriteria[pageSize]": "1"}
        items = (await self._get("/orders", params)).get("items") or []
        return (
            cast(Json, items[0]) if isinstance(items, list) and items and isinstance(items[0], dict) else None
        )

    # -- writes (and the reads they look before) ----------------------------------------------

    async def shipments(self, entity_id: int) -> list[Json]:
        """The order's shipments with their items, tracks and comments (``GET /V1/shipments``)."""
        params = _filters([("order_id", str(entity_id), "eq")]) | {"searchCriteria[pageSize]": str(MAX_PAGE)}
        items = (await self._get("/shipments", params)).get("items") or []
        if not isinstance(items, list):
            raise TransientError("GET /shipments: items is not a list", system=SYSTEM)
        return [i for i in items if isinstance(i, dict)]

    async def ship(self, entity_id: int, body: Json) -> str:
        """``POST /V1/order/{id}/ship``: the new shipment's entity id (Magento answers it as a
        JSON string or number)."""
        answer = await self._request("POST", f"/order/{entity_id}/ship", body=body)
        if isinstance(answer, bool) or not isinstance(answer, str | int) or not str(answer).strip():
            raise TransientError(f"POST /order/{entity_id}/ship: no shipment id in {answer!r}", system=SYSTEM)
        return str(answer).strip()

    async def cancel(self, entity_id: int) -> bool:
        """``POST /V1/orders/{id}/cancel``: Magento answers ``true``, or ``false`` when the order
        cannot be cancelled (already cancelled, invoiced, complete, closed, on hold)."""
        answer = await self._request("POST", f"/orders/{entity_id}/cancel")
        if not isinstance(answer, bool):
            raise TransientError(f"POST /orders/{entity_id}/cancel: expected true or false", system=SYSTEM)
        return answer
