"""Amazon SP-API over HTTP: Login with Amazon tokens, Orders v0 ``getOrders``, ``getOrder``,
``getOrderItems`` and ``confirmShipment``, Listings Items ``patchListingsItem`` and ``getListingsItem``.

Follows ``shared/contracts/amazon_sp_api.md``:

* **Auth** (§2): an LWA access token from ``POST {lwa_url}`` (``grant_type=refresh_token``),
  cached until a minute before ``expires_in`` and sent as ``x-amz-access-token``; no SigV4.
  ``invalid_grant`` means the seller must authorize again: :class:`PermanentError`
  (``amazon_reauthorize``). A 403 whose details say the token expired drops the cached token
  and is transient (the retry mints a new one).
* **Errors** (§3.5, §6): ``{"errors": [{"code", "message", "details"}]}``. 429 ``QuotaExceeded``
  carries no ``Retry-After``: the delay is ``1 / x-amzn-RateLimit-Limit`` last seen for the
  operation, else the default plan's rate (§6). 5xx and timeouts are transient; 400, 403 and
  other 4xx permanent, with Amazon's message and never a token (reasons ``amazon_invalid_input``,
  ``amazon_unauthorized``, ``amazon_not_found``; for the writes ``amazon_shipment_rejected``,
  ``amazon_order_not_found``, ``amazon_listing_rejected``).
* **Dates** go out in UTC with a ``Z`` (other offsets are rejected).

Nothing here retries or sleeps: Temporal retries the activity.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import httpx
import structlog

from adapters.errors import PermanentError, RateLimitedError, TransientError

SYSTEM = "amazon"
log = structlog.get_logger("amazon")
LWA_URL = "https://api.amazon.com/auth/o2/token"
RDT_PATH = "/tokens/2021-03-01/restrictedDataToken"
USER_AGENT = "RetailConnect/1.0 (Language=Python/3.11; Platform=Linux)"
MAX_PAGE = 100
# The default usage plans (requests per second), for a 429's delay when no header said better.
DEFAULT_RATES = {
    "getOrders": 0.0167,
    "getOrder": 0.5,
    "getOrderItems": 0.5,
    "confirmShipment": 2.0,
    "patchListingsItem": 5.0,
    "getListingsItem": 5.0,
}
_REASONS = {
    400: "amazon_invalid_input",
    401: "amazon_unauthorized",
    403: "amazon_unauthorized",
    404: "amazon_not_found",
}
_TOKEN_MARGIN_S = 60.0

Json = dict[str, Any]


def amz_time(at: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, whole seconds (what SP-API accepts everywhere)."""
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _errors(response: httpx.Response) -> tuple[str, str]:
    """(code, "message: details") from Amazon's error envelope, or the OAuth2 shape."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200].strip()
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        first = body["errors"][0] if isinstance(body["errors"][0], dict) else {}
        detail = str(first.get("details") or "")
        text = str(first.get("message") or "") + (f": {detail}" if detail else "")
        return str(first.get("code") or ""), text[:500]
    if isinstance(body, dict) and "error" in body:
        return str(body["error"]), str(body.get("error_description") or "")[:500]
    return "", ""


@dataclass(frozen=True)
class OrdersPage:
    orders: list[Json]
    next_token: str | None
    last_updated_before: str | None


class AmazonClient:
    """One seller's Orders API in one region. ``http`` is owned by the caller."""

    def __init__(
        self,
        endpoint: str,
        marketplace_ids: list[str],
        client_id: str,
        client_secret: str,
        refresh_token: str,
        http: httpx.AsyncClient,
        *,
        lwa_url: str = LWA_URL,
        clock: Any = time.monotonic,
        restricted_data: bool = True,
    ) -> None:
        if not marketplace_ids or len(marketplace_ids) > 50:
            raise ValueError("between 1 and 50 marketplace ids")
        self._root = endpoint.rstrip("/")
        self._marketplaces = ",".join(marketplace_ids)
        self.marketplace_ids = tuple(marketplace_ids)
        self._auth = {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token}
        self._lwa_url = lwa_url
        self._http = http
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (access token, expires at on the clock)
        # Restricted Data Token for the buyer's name, street and phone; None once Amazon refused
        # one (the app lacks the role): orders then come without that PII.
        self._restricted = restricted_data
        self._rdt: tuple[str, float] | None = None
        self._rates: dict[str, float] = {}

    def __repr__(self) -> str:  # never shows credentials
        return f"AmazonClient({self._root!r}, marketplaces={self._marketplaces!r})"

    async def _access_token(self) -> str:
        if self._token is not None and self._clock() < self._token[1]:
            return self._token[0]
        form = {"grant_type": "refresh_token", **self._auth}
        try:
            response = await self._http.post(self._lwa_url, data=form)
        except httpx.RequestError as exc:
            raise TransientError(f"LWA token: {type(exc).__name__}", system=SYSTEM) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"LWA token: HTTP {response.status_code}", system=SYSTEM)
        code, text = _errors(response)
        if response.status_code != 200:
            reason = "amazon_reauthorize" if code == "invalid_grant" else "amazon_unauthorized"
            raise PermanentError(
                f"LWA token: HTTP {response.status_code} {code} {text}".strip(), reason=reason, system=SYSTEM
            )
        body = response.json()
        token, ttl = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not isinstance(ttl, int | float):
            raise TransientError("LWA token: no access_token/expires_in in the answer", system=SYSTEM)
        self._token = (token, self._clock() + max(float(ttl) - _TOKEN_MARGIN_S, 0.0))
        return token

    async def _restricted_token(self) -> str | None:
        """An RDT covering getOrders/getOrder with ``buyerInfo`` and ``shippingAddress`` (generic
        paths: any order), cached like the access token; None when Amazon will not grant one."""
        if not self._restricted:
            return None
        if self._rdt is not None and self._clock() < self._rdt[1]:
            return self._rdt[0]
        body = {
            "restrictedResources": [
                {"method": "GET", "path": path, "dataElements": ["buyerInfo", "shippingAddress"]}
                for path in ("/orders/v0/orders", "/orders/v0/orders/{orderId}")
            ]
        }
        headers = {"x-amz-access-token": await self._access_token(), "user-agent": USER_AGENT}
        try:
            response = await self._http.post(f"{self._root}{RDT_PATH}", json=body, headers=headers)
        except httpx.RequestError as exc:
            raise TransientError(f"createRestrictedDataToken: {type(exc).__name__}", system=SYSTEM) from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientError(f"createRestrictedDataToken: HTTP {status}", system=SYSTEM)
        code, text = _errors(response)
        if status == 403 and "expired" in text:
            self._token = None
            raise TransientError(f"createRestrictedDataToken: HTTP 403 {text}", system=SYSTEM)
        if status != 200:
            # No Direct-to-Consumer Delivery role: go on without the PII (the address check holds
            # such orders for a person) rather than stop importing.
            log.warning("amazon_restricted_data_refused", status=status, code=code, detail=text)
            self._restricted = False
            return None
        answer = response.json()
        token, ttl = answer.get("restrictedDataToken"), answer.get("expiresIn")
        if not isinstance(token, str) or not isinstance(ttl, int | float):
            raise TransientError("createRestrictedDataToken: no token in the answer", system=SYSTEM)
        self._rdt = (token, self._clock() + max(float(ttl) - _TOKEN_MARGIN_S, 0.0))
        return token

    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Json | None = None,
        restricted: bool = False,
        reasons: dict[int, str] | None = None,
    ) -> httpx.Response:
        """One SP-API call; a 2xx answer is returned, anything else raised as the taxonomy.
        ``reasons`` overrides the permanent reason per status for this operation."""
        token = (await self._restricted_token() if restricted else None) or await self._access_token()
        headers = {"x-amz-access-token": token, "user-agent": USER_AGENT}
        try:
            response = await self._http.request(
                method, self._root + path, params=params, json=body, headers=headers
            )
        except httpx.RequestError as exc:
            raise TransientError(f"{operation}: {type(exc).__name__}: {exc}"[:500], system=SYSTEM) from exc
        limit = response.headers.get("x-amzn-RateLimit-Limit")
        if limit:
            with contextlib.suppress(ValueError):
                self._rates[operation] = float(limit)
        status = response.status_code
        if 200 <= status < 300:
            return response
        code, text = _errors(response)
        message = f"{operation}: HTTP {status} {code} {text}".strip()
        if status == 429:
            raise RateLimitedError(message, retry_after=self.retry_after(operation), system=SYSTEM)
        if status >= 500 or status == 408:
            raise TransientError(message, system=SYSTEM)
        if status == 403 and "expired" in text:
            self._token = self._rdt = None
            raise TransientError(message, system=SYSTEM)
        reason = (reasons or {}).get(status) or _REASONS.get(status, f"amazon_http_{status}")
        raise PermanentError(message, reason=reason, system=SYSTEM)

    def retry_after(self, operation: str) -> float:
        """Seconds until the operation's bucket holds a token again: ``1 / rate``, the rate from
        the last ``x-amzn-RateLimit-Limit`` seen for it, else the default plan (no Retry-After)."""
        rate = self._rates.get(operation) or DEFAULT_RATES.get(operation, 1.0)
        return min(1.0 / rate, 120.0) if rate > 0 else 120.0

    async def _get(
        self, operation: str, path: str, params: dict[str, str], *, restricted: bool = False
    ) -> Json:
        response = await self._request(operation, "GET", path, params=params, restricted=restricted)
        if response.status_code != 200:
            raise TransientError(f"{operation}: HTTP {response.status_code} without a payload", system=SYSTEM)
        try:
            body = response.json()
        except ValueError:
            raise TransientError(
                f"{operation}: HTTP 200 with a body that is not JSON", system=SYSTEM
            ) from None
        payload = body.get("payload") if isinstance(body, dict) else None
        if not isinstance(payload, dict):
            raise TransientError(f"{operation}: no payload in the answer", system=SYSTEM)
        return cast(Json, payload)

    async def orders_updated(
        self, after: datetime, before: datetime, next_token: str | None = None, page_size: int = MAX_PAGE
    ) -> OrdersPage:
        """One page of ``getOrders`` by ``LastUpdatedAfter``/``LastUpdatedBefore`` (``before`` at
        least two minutes in the past, says Amazon). A ``NextToken`` is sent with the marketplaces
        only: it fixes the filters of the first request."""
        params = {"MarketplaceIds": self._marketplaces}
        if next_token is None:
            params |= {
                "LastUpdatedAfter": amz_time(after),
                "LastUpdatedBefore": amz_time(before),
                "MaxResultsPerPage": str(min(max(page_size, 1), MAX_PAGE)),
            }
        else:
            params["NextToken"] = next_token
        payload = await self._get("getOrders", "/orders/v0/orders", params, restricted=True)
        orders = payload.get("Orders")
        if not isinstance(orders, list):
            raise TransientError("getOrders: no Orders in the payload", system=SYSTEM)
        token = payload.get("NextToken")
        echoed = payload.get("LastUpdatedBefore")
        return OrdersPage(
            [o for o in orders if isinstance(o, dict)],
            token if isinstance(token, str) and token else None,
            echoed if isinstance(echoed, str) else None,
        )

    async def order(self, order_id: str) -> Json | None:
        """``getOrder``; None for an order Amazon does not know (404)."""
        try:
            return await self._get(
                "getOrder", f"/orders/v0/orders/{_order_id(order_id)}", {}, restricted=True
            )
        except PermanentError as err:
            if err.reason == "amazon_not_found":
                return None
            raise

    async def order_items(self, order_id: str) -> list[Json]:
        """Every item of the order, across ``getOrderItems`` pages."""
        path = f"/orders/v0/orders/{_order_id(order_id)}/orderItems"
        items: list[Json] = []
        token: str | None = None
        for _ in range(100):  # an order has far fewer pages; a token that never ends is a bug
            payload = await self._get("getOrderItems", path, {"NextToken": token} if token else {})
            page = payload.get("OrderItems")
            if not isinstance(page, list):
                raise TransientError("getOrderItems: no OrderItems in the payload", system=SYSTEM)
            items.extend(i for i in page if isinstance(i, dict))
            nxt = payload.get("NextToken")
            token = nxt if isinstance(nxt, str) and nxt else None
            if token is None:
                return items
        raise PermanentError(
            f"getOrderItems {order_id}: paging does not end", reason="amazon_invalid_response", system=SYSTEM
        )

    # -- writes ------------------------------------------------------------------------------

    async def confirm_shipment(self, order_id: str, body: Json) -> None:
        """``confirmShipment`` (§4): 204 on success. A 400 is Amazon refusing this package (an
        order it confirmed itself, a quantity above what is unshipped, a missing field)."""
        await self._request(
            "confirmShipment",
            "POST",
            f"/orders/v0/orders/{_order_id(order_id)}/shipmentConfirmation",
            body=body,
            reasons={400: "amazon_shipment_rejected", 404: "amazon_order_not_found"},
        )

    async def patch_listing(self, seller_id: str, sku: str, marketplace_id: str, body: Json) -> Json:
        """``patchListingsItem`` (§5.1): the answer ``{sku, status, submissionId, issues}``;
        ``ACCEPTED`` means queued, not applied."""
        response = await self._request(
            "patchListingsItem",
            "PATCH",
            f"/listings/2021-08-01/items/{quote(seller_id, safe='')}/{quote(sku, safe='')}",
            params={"marketplaceIds": marketplace_id},
            body=body,
            reasons={400: "amazon_listing_rejected", 404: "amazon_listing_not_found"},
        )
        try:
            answer = response.json()
        except ValueError:
            raise TransientError("patchListingsItem: the answer is not JSON", system=SYSTEM) from None
        if not isinstance(answer, dict):
            raise TransientError("patchListingsItem: expected an object", system=SYSTEM)
        return cast(Json, answer)

    async def listing_quantities(
        self, seller_id: str, sku: str, marketplace_id: str
    ) -> dict[str, int] | None:
        """``getListingsItem`` with ``fulfillmentAvailability``: quantity per fulfillment channel
        code (camelCase on the way back); None for a SKU without a listing (404)."""
        try:
            response = await self._request(
                "getListingsItem",
                "GET",
                f"/listings/2021-08-01/items/{quote(seller_id, safe='')}/{quote(sku, safe='')}",
                params={"marketplaceIds": marketplace_id, "includedData": "fulfillmentAvailability"},
            )
        except PermanentError as err:
            if err.reason == "amazon_not_found":
                return None
            raise
        try:
            answer = response.json()
        except ValueError:
            raise TransientError("getListingsItem: the answer is not JSON", system=SYSTEM) from None
        rows = answer.get("fulfillmentAvailability") if isinstance(answer, dict) else None
        out: dict[str, int] = {}
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and isinstance(row.get("quantity"), int):
                out[str(row.get("fulfillmentChannelCode"))] = int(row["quantity"])
        return out


def _order_id(order_id: str) -> str:
    oid = order_id.strip()
    if not oid or not all(c.isalnum() or c == "-" for c in oid):
        raise PermanentError(
            f"not an Amazon order id: {order_id!r}", reason="amazon_invalid_input", system=SYSTEM
        )
    return oid
