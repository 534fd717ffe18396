"""The sandbox's HTTP face: the documented REST Admin API subset the platform calls back.

Everything under ``/admin/api/{version}/`` behaves as ``shared/contracts/shopify.md`` says:
``X-Shopify-Access-Token`` is required (401 with Shopify's body otherwise), the version
actually used is echoed in ``X-Shopify-API-Version`` (an unsupported one is served by the
oldest supported), every authenticated answer carries ``X-Shopify-Shop-Api-Call-Limit``, and
a full leaky bucket answers 429 with ``Retry-After``. Errors use the documented
``{"errors": "..."}`` / ``{"errors": {"field": ["..."]}}`` shapes. Lists page with cursors:
a ``Link`` header with ``rel="next"``/``rel="previous"`` URLs carrying an opaque
``page_info``, which admits only ``limit`` and ``fields`` beside it.

``/_sandbox/...`` is not Shopify: unauthenticated controls for the demo and manual testing
(place orders, cancel one), which fire the same webhooks as the shop's own methods.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandboxes.shopify.demo_orders import demo_catalog, generate_orders
from sandboxes.shopify.shop import (
    Json,
    SandboxShop,
    ShopError,
    invalid,
    not_found,
    parse_time,
)

API_PREFIX = "/admin/api/"
MAX_LIMIT = 250
DEFAULT_LIMIT = 50
UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
THROTTLED = (
    "Exceeded {rate} calls per second for api client. Reduce request rates to resume uninterrupted service."
)

SortKey = tuple[int, ...]
# Shopify charges a mutation 10 points (a query by the fields it selects); the sandbox serves
# one mutation only, so one fixed cost is honest enough.
MUTATION_COST = 10
_IDEMPOTENT = re.compile(r'@idempotent\s*\(\s*key\s*:\s*(?:"([^"]*)"|\$(\w+))\s*\)')
_SET_QUANTITIES = re.compile(r"\binventorySetQuantities\s*\(\s*input\s*:\s*\$(\w+)\s*\)")


def _error(status: int, errors: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=status, headers=headers)


def _order_id(raw: str) -> int:
    if not raw.isdigit():
        raise not_found()
    return int(raw)


async def _json_body(request: Request, root: str) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ShopError(400, {root: ["Required parameter missing or invalid"]}) from None
    if not isinstance(body, dict):
        raise ShopError(400, {root: ["Required parameter missing or invalid"]})
    return body


def _ids(filters: dict[str, str], key: str) -> list[int] | None:
    raw = filters.get(key)
    if raw is None or raw.strip() == "":
        return None
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise ShopError(400, {key: ["must be a comma-separated list of ids"]})
    return [int(p) for p in parts]


def _time(raw: str | None, key: str, shop: SandboxShop) -> datetime | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        return parse_time(raw, shop.tz)
    except ValueError:
        raise ShopError(400, {key: ["must be an ISO 8601 date and time"]}) from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ShopError(400, {"limit": [f"must be between 1 and {MAX_LIMIT}"]})
    return int(raw)


def _project(item: Json, fields: str | None) -> Json:
    if not fields:
        return item
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return {k: item[k] for k in wanted if k in item}


class _Pager:
    """Cursor pagination in Shopify's style over an in-memory list.

    The first request carries the filters; ``page_info`` (opaque: base64 of the filters, the
    direction and the sort key of the page edge) replaces them on later requests.
    """

    def __init__(self, request: Request, resource: str, version: str) -> None:
        self.request = request
        self.resource = resource
        self.version = version
        self.limit = _limit(request)
        self.fields = request.query_params.get("fields")
        raw = request.query_params.get("page_info")
        self.cursor: tuple[str, SortKey] | None = None
        if raw is None:
            self.filters: dict[str, str] = {
                k: v for k, v in request.query_params.items() if k not in ("limit", "fields")
            }
            return
        extra = sorted(k for k in request.query_params if k not in ("page_info", "limit", "fields"))
        if extra:
            raise ShopError(400, {"page_info": [f"cannot be combined with {', '.join(extra)}"]})
        try:
            token = json.loads(base64.urlsafe_b64decode(raw.encode("ascii") + b"=" * (-len(raw) % 4)))
            self.filters = {str(k): str(v) for k, v in token["f"].items()}
            direction = str(token["d"])
            key = tuple(int(x) for x in token["k"])
            if direction not in ("next", "previous"):
                raise ValueError(direction)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, UnicodeEncodeError):
            raise ShopError(400, {"page_info": ["Invalid value."]}) from None
        self.cursor = (direction, key)

    def _token(self, direction: str, key: SortKey) -> str:
        raw = json.dumps({"f": self.filters, "d": direction, "k": list(key)}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")

    def _link(self, direction: str, key: SortKey) -> str:
        params = {"limit": str(self.limit), "page_info": self._token(direction, key)}
        if self.fields:
            params["fields"] = self.fields
        base = str(self.request.base_url).rstrip("/")
        return f'<{base}{API_PREFIX}{self.version}/{self.resource}?{urlencode(params)}>; rel="{direction}"'

    def page(
        self, items: Sequence[Json], rank: Callable[[Json], SortKey]
    ) -> tuple[list[Json], dict[str, str]]:
        """The page of ``items`` (already filtered) in ``rank`` order, and the ``Link`` header."""
        ranked = sorted(((rank(it), it) for it in items), key=lambda pair: pair[0])
        if self.cursor is None:
            window = ranked[: self.limit]
        elif self.cursor[0] == "next":
            window = [p for p in ranked if p[0] > self.cursor[1]][: self.limit]
        else:
            window = [p for p in ranked if p[0] < self.cursor[1]][-self.limit :]
        links = []
        if window and any(p[0] < window[0][0] for p in ranked):
            links.append(self._link("previous", window[0][0]))
        if window and any(p[0] > window[-1][0] for p in ranked):
            links.append(self._link("next", window[-1][0]))
        headers = {"Link": ", ".join(links)} if links else {}
        return [_project(it, self.fields) for _, it in window], headers


_ORDER_SORTS = ("id", "created_at", "updated_at", "processed_at")
_FULFILLMENT_FILTERS = {
    "shipped": ("fulfilled",),
    "partial": ("partial",),
    "unshipped": (None,),
    "unfulfilled": (None, "partial"),
}


def _order_rank(filters: dict[str, str], shop: SandboxShop) -> Callable[[Json], SortKey]:
    field, _, direction = (filters.get("order") or "id desc").strip().partition(" ")
    direction = direction.strip().lower() or "desc"
    if field not in _ORDER_SORTS or direction not in ("asc", "desc"):
        raise ShopError(400, {"order": [f"must be one of {', '.join(_ORDER_SORTS)} with asc or desc"]})
    sign = 1 if direction == "asc" else -1

    def rank(order: Json) -> SortKey:
        if field == "id":
            value = int(order["id"])
        else:
            try:
                value = int(parse_time(str(order.get(field)), shop.tz).timestamp() * 1_000_000)
            except ValueError:
                value = 0
        return (sign * value, sign * int(order["id"]))

    return rank


def _order_matches(order: Json, filters: dict[str, str], shop: SandboxShop) -> bool:
    status = filters.get("status", "open")
    cancelled, closed = bool(order.get("cancelled_at")), bool(order.get("closed_at"))
    if status == "open" and (cancelled or closed):
        return False
    if (status == "closed" and not closed) or (status == "cancelled" and not cancelled):
        return False
    financial = filters.get("financial_status", "any")
    if financial != "any" and order.get("financial_status") != financial:
        return False
    fulfillment = filters.get("fulfillment_status", "any")
    if fulfillment != "any" and order.get("fulfillment_status") not in _FULFILLMENT_FILTERS[fulfillment]:
        return False
    ids = filters.get("ids")
    if ids and order["id"] not in {int(i) for i in ids.split(",") if i.strip().isdigit()}:
        return False
    since_id = filters.get("since_id")
    if since_id and order["id"] <= int(since_id):
        return False
    for field in ("created_at", "updated_at", "processed_at"):
        low = _time(filters.get(f"{field}_min"), f"{field}_min", shop)
        high = _time(filters.get(f"{field}_max"), f"{field}_max", shop)
        if low is None and high is None:
            continue
        try:
            at = parse_time(str(order.get(field)), shop.tz)
        except ValueError:
            return False
        if (low is not None and at < low) or (high is not None and at > high):
            return False
    return True


def _check_order_filters(filters: dict[str, str], shop: SandboxShop) -> None:
    if filters.get("status", "open") not in ("open", "closed", "cancelled", "any"):
        raise ShopError(400, {"status": ["must be open, closed, cancelled or any"]})
    if filters.get("fulfillment_status", "any") not in ("any", *_FULFILLMENT_FILTERS):
        raise ShopError(400, {"fulfillment_status": ["is not a fulfillment status filter"]})
    since_id = filters.get("since_id")
    if since_id is not None and not since_id.isdigit():
        raise ShopError(400, {"since_id": ["must be an id"]})
    _ids(filters, "ids")
    for field in ("created_at", "updated_at", "processed_at"):
        for bound in ("min", "max"):
            _time(filters.get(f"{field}_{bound}"), f"{field}_{bound}", shop)


def create_sandbox_app(state: SandboxShop) -> FastAPI:
    """The sandbox storefront's FastAPI app over ``state`` (see the module docstring)."""
    shop = state
    app = FastAPI(title="Shopify sandbox (Retail Connect)", version="1", openapi_url="/_sandbox/openapi.json")

    @app.exception_handler(ShopError)
    async def shop_error(request: Request, exc: ShopError) -> Response:
        return _error(exc.status, exc.errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        text = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, text)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _error(400, {"base": [str(e.get("msg")) for e in exc.errors()]})

    @app.middleware("http")
    async def admin_gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if not path.startswith(API_PREFIX):
            return await call_next(request)
        version = shop.resolve_version(path[len(API_PREFIX) :].split("/", 1)[0])
        if version is None:
            return _error(404, "Not Found")
        request.state.api_version = version
        token = request.headers.get("X-Shopify-Access-Token")
        if token is None or not shop.is_valid_token(token):
            return _error(401, UNAUTHORIZED, {"X-Shopify-API-Version": version})
        if path.endswith("/graphql.json"):
            # GraphQL has its own limit (query cost), answered by the endpoint itself.
            response = await call_next(request)
            response.headers["X-Shopify-API-Version"] = version
            return response
        admission = shop.rate_limiter.admit(token)
        limit = {
            "X-Shopify-Shop-Api-Call-Limit": admission.call_limit_header,
            "X-Shopify-API-Version": version,
        }
        if not admission.allowed:
            rate = f"{shop.rate_limiter.leak_per_s:g}"
            return _error(
                429, THROTTLED.format(rate=rate), {**limit, "Retry-After": admission.retry_after_header}
            )
        response = await call_next(request)
        response.headers.update(limit)
        return response

    def version_of(request: Request) -> str:
        return str(request.state.api_version)

    # -- orders ----------------------------------------------------------------------

    @app.get("/admin/api/{version}/orders.json")
    async def list_orders(version: str, request: Request) -> Response:
        pager = _Pager(request, "orders.json", version_of(request))
        _check_order_filters(pager.filters, shop)
        rank = _order_rank(pager.filters, shop)
        matching = [o for o in shop.orders() if _order_matches(o, pager.filters, shop)]
        page, headers = pager.page(matching, rank)
        return JSONResponse({"orders": page}, headers=headers)

    @app.get("/admin/api/{version}/orders/count.json")
    async def count_orders(version: str, request: Request) -> Response:
        filters = dict(request.query_params)
        _check_order_filters(filters, shop)
        return JSONResponse({"count": sum(1 for o in shop.orders() if _order_matches(o, filters, shop))})

    @app.get("/admin/api/{version}/orders/{order_id}.json")
    async def get_order(version: str, order_id: str, request: Request) -> Response:
        order = shop.order(_order_id(order_id))
        return JSONResponse({"order": _project(order, request.query_params.get("fields"))})

    @app.post("/admin/api/{version}/orders/{order_id}/cancel.json")
    async def cancel_order(version: str, order_id: str, request: Request) -> Response:
        oid = _order_id(order_id)
        body = await _json_body(request, "order") if await request.body() else {}
        reason = body.get("reason") or request.query_params.get("reason") or "other"
        return JSONResponse({"order": shop.cancel_order(oid, str(reason))})

    @app.get("/admin/api/{version}/orders/{order_id}/transactions.json")
    async def list_transactions(version: str, order_id: str) -> Response:
        return JSONResponse({"transactions": shop.transactions(_order_id(order_id))})

    # -- fulfillment -----------------------------------------------------------------

    @app.get("/admin/api/{version}/orders/{order_id}/fulfillment_orders.json")
    async def list_fulfillment_orders(version: str, order_id: str) -> Response:
        return JSONResponse({"fulfillment_orders": shop.fulfillment_orders(_order_id(order_id))})

    @app.get("/admin/api/{version}/orders/{order_id}/fulfillments.json")
    async def list_fulfillments(version: str, order_id: str) -> Response:
        return JSONResponse({"fulfillments": shop.fulfillments(_order_id(order_id))})

    @app.post("/admin/api/{version}/fulfillments.json")
    async def create_fulfillment(version: str, request: Request) -> Response:
        body = await _json_body(request, "fulfillment")
        return JSONResponse({"fulfillment": shop.create_fulfillment(body)}, status_code=201)

    # -- refunds ---------------------------------------------------------------------

    @app.get("/admin/api/{version}/orders/{order_id}/refunds.json")
    async def list_refunds(version: str, order_id: str) -> Response:
        return JSONResponse({"refunds": shop.refunds(_order_id(order_id))})

    @app.post("/admin/api/{version}/orders/{order_id}/refunds.json")
    async def create_refund(version: str, order_id: str, request: Request) -> Response:
        oid = _order_id(order_id)
        body = await _json_body(request, "refund")
        return JSONResponse({"refund": shop.create_refund(oid, body)}, status_code=201)

    # -- catalog, locations, inventory -------------------------------------------------

    @app.get("/admin/api/{version}/locations.json")
    async def list_locations(version: str) -> Response:
        return JSONResponse({"locations": [loc.as_json() for loc in shop.locations()]})

    @app.get("/admin/api/{version}/products.json")
    async def list_products(version: str, request: Request) -> Response:
        pager = _Pager(request, "products.json", version_of(request))
        ids = pager.filters.get("ids")
        wanted = {int(i) for i in ids.split(",") if i.strip().isdigit()} if ids else None
        products = [p for p in shop.products() if wanted is None or p["id"] in wanted]
        page, headers = pager.page(products, lambda p: (int(p["id"]),))
        return JSONResponse({"products": page}, headers=headers)

    @app.get("/admin/api/{version}/inventory_levels.json")
    async def list_inventory_levels(version: str, request: Request) -> Response:
        pager = _Pager(request, "inventory_levels.json", version_of(request))
        items, locs = _ids(pager.filters, "inventory_item_ids"), _ids(pager.filters, "location_ids")
        levels = shop.inventory_levels(items, locs)
        page, headers = pager.page(levels, lambda lv: (int(lv["inventory_item_id"]), int(lv["location_id"])))
        return JSONResponse({"inventory_levels": page}, headers=headers)

    @app.post("/admin/api/{version}/graphql.json")
    async def graphql(version: str, request: Request) -> Response:
        """Only ``inventorySetQuantities(input: $var) @idempotent(key: ...)``, with cost throttling."""
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None
        query = body.get("query") if isinstance(body, dict) else None
        variables = body.get("variables") if isinstance(body, dict) else None
        variables = variables if isinstance(variables, dict) else {}
        if not isinstance(query, str):
            return JSONResponse({"errors": [{"message": "Parse error: no query"}]}, status_code=400)
        mutation = _SET_QUANTITIES.search(query)
        if mutation is None or not query.lstrip().startswith("mutation"):
            return JSONResponse(
                {"errors": [{"message": "The sandbox serves only inventorySetQuantities(input: $variable)"}]}
            )
        token = str(request.headers.get("X-Shopify-Access-Token"))
        cost = shop.graphql_limiter.take(token, MUTATION_COST)
        if not cost.allowed:
            shop.graphql_throttled += 1
            return JSONResponse(
                {
                    "errors": [
                        {
                            "message": "Throttled",
                            "extensions": {
                                "code": "THROTTLED",
                                "documentation": "https://shopify.dev/api/usage/rate-limits",
                            },
                        }
                    ],
                    "extensions": cost.extensions(),
                },
                status_code=shop.graphql_throttle_status,
            )
        found = _IDEMPOTENT.search(query)
        key = (
            None
            if found is None
            else found.group(1)
            if found.group(1) is not None
            else variables.get(found.group(2))
        )
        api_version = version_of(request)
        if key is None and (api_version == "unstable" or api_version >= "2026-04"):
            return JSONResponse(
                {"errors": [{"message": "inventorySetQuantities requires the @idempotent directive"}]},
                headers={},
            )
        payload = shop.set_inventory_quantities(
            variables.get(mutation.group(1)), api_version, None if key is None else str(key)
        )
        return JSONResponse({"data": {"inventorySetQuantities": payload}, "extensions": cost.extensions()})

    @app.post("/admin/api/{version}/inventory_levels/set.json")
    async def set_inventory_level(version: str, request: Request) -> Response:
        body = await _json_body(request, "inventory_level")
        return JSONResponse({"inventory_level": shop.set_inventory_level(body)})

    # -- sandbox controls (not Shopify) ---------------------------------------------------

    @app.post("/_sandbox/orders", tags=["sandbox"])
    async def place_order(request: Request) -> Response:
        """Place one order: the body is a Shopify order payload (ids etc. filled in)."""
        body = await _json_body(request, "order")
        return JSONResponse({"order": shop.create_order(body.get("order", body))}, status_code=201)

    @app.post("/_sandbox/orders/generate", tags=["sandbox"])
    async def place_demo_orders(request: Request) -> Response:
        """Place ``count`` demo orders (``generate_orders``) from ``seed`` at ``start_number``."""
        body = await _json_body(request, "generate")
        count, seed = body.get("count", 1), body.get("seed", 1)
        start = body.get("start_number")
        if (
            not all(isinstance(v, int) and not isinstance(v, bool) for v in (count, seed))
            or not 0 < count <= 500
        ):
            raise invalid("count", "count (1..500) and seed must be integers")
        if start is None:
            start = max((int(o.get("order_number") or 1000) for o in shop.orders()), default=1000) + 1
        if not isinstance(start, int) or isinstance(start, bool):
            raise invalid("start_number", "must be an integer")
        skus = [(row["sku"], Decimal(row["price"])) for row in demo_catalog()]
        placed = [shop.create_order(o) for o in generate_orders(count, seed, skus, start_number=start)]
        return JSONResponse({"orders": [{"id": o["id"], "name": o["name"]} for o in placed]}, status_code=201)

    @app.post("/_sandbox/orders/{order_id}/cancel", tags=["sandbox"])
    async def cancel_as_merchant(order_id: str, request: Request) -> Response:
        """Cancel an order as the merchant would in Shopify's admin (``reason`` query param)."""
        oid = _order_id(order_id)
        return JSONResponse({"order": shop.cancel_order(oid, request.query_params.get("reason", "customer"))})

    return app
