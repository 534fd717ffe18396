"""An in-process fake of the Amazon SP-API Orders v0 subset the poller uses, following the
contract's fake checklist (``shared/contracts/amazon_sp_api.md`` §9):

* ``POST /auth/o2/token`` (LWA refresh-token grant; a bad refresh token is ``invalid_grant``);
* every API call needs ``x-amz-access-token`` (403 ``Unauthorized`` with the documented details
  when missing or expired); every answer carries ``x-amzn-RequestId``, 200s carry
  ``x-amzn-RateLimit-Limit``;
* a token bucket per operation (the default plans of §6, configurable): an empty one answers 429
  ``QuotaExceeded`` with no rate header and no ``Retry-After``; ``fail_next`` forces 429/500/503;
* ``getOrders`` validates as Amazon does (marketplaces, exactly one of ``CreatedAfter`` /
  ``LastUpdatedAfter``, ``*Before`` not after the clock minus ``min_before_s``, ``Z`` times,
  ``MaxResultsPerPage`` 1-100) with the generic ``InvalidInput`` message, wraps results in
  ``payload``, echoes ``LastUpdatedBefore``, returns orders in a shuffled order, and shows an
  order only ``lag_s`` after its update;
* ``NextToken`` fixes the listing at the first request (the orders that matched then); later
  pages show those orders as they are now, leaving out the ones updated past the window since;
* ``Pending`` orders have no ``OrderTotal``, no item prices and no ``ShippingAddress``;
  ``getOrderItems`` pages with ``NextToken`` (``item_page_size``); unknown orders are 404.

Not modelled: regions, RDTs and PII gating (no restricted fields are returned), confirmShipment,
listings and feeds.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

Json = dict[str, Any]
MARKETPLACE_US = "ATVPDKIKX0DER"
CLIENT_ID = "amzn1.application-oa2-client.sandbox"
CLIENT_SECRET = "sandbox-client-secret"
REFRESH_TOKEN = "Atzr|sandbox-refresh-token"
DEFAULT_PLANS = {
    "getOrders": (0.0167, 20),
    "getOrder": (0.5, 30),
    "getOrderItems": (0.5, 30),
    "createRestrictedDataToken": (1.0, 10),
}
_INVALID = "The input you have submitted is not valid. Please check your input and try again."


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str | None) -> datetime | None:
    if value is None or not value.endswith("Z"):
        raise ValueError(value)
    return datetime.fromisoformat(value[:-1] + "+00:00")


class _Bucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.level, self.at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level < 1:
            return False
        self.level -= 1
        return True


@dataclass(frozen=True)
class _Listing:
    ids: list[str]
    after: datetime
    before: datetime
    size: int


# Order fields Amazon answers only to a Restricted Data Token naming their data element.
RESTRICTED_ADDRESS_FIELDS = ("Name", "AddressLine1", "AddressLine2", "AddressLine3", "Phone", "AddressType")
RESTRICTED_BUYER_FIELDS = ("BuyerName", "BuyerTaxInfo", "PurchaseOrderNumber")


@dataclass
class AmazonSandbox:
    """The seller's orders and the fake's knobs; thread-safe (uvicorn serves from another task)."""

    marketplace_id: str = MARKETPLACE_US
    lag_s: float = 120.0
    min_before_s: float = 120.0
    item_page_size: int = 100
    plans: dict[str, tuple[float, int]] = field(default_factory=lambda: dict(DEFAULT_PLANS))
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    seed: int | None = None
    on_page: Callable[[int], None] | None = None
    """Called after each ``getOrders`` page is served, with its number (1 for the first)."""
    restricted_role: bool = True
    """The app holds the Direct-to-Consumer Delivery role: it may get Restricted Data Tokens."""

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self.orders: dict[str, Json] = {}
        self.items: dict[str, list[Json]] = {}
        self._tokens: dict[str, datetime] = {}
        self._rdts: dict[str, tuple[datetime, frozenset[str]]] = {}  # RDT -> (expiry, data elements)
        self._listings: dict[str, _Listing] = {}
        self._buckets = {op: _Bucket(*plan) for op, plan in self.plans.items()}
        self._fail: dict[str, list[int]] = {}
        self._random = random.Random(self.seed)
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.throttled: dict[str, int] = {}
        self.served_ids: list[list[str]] = []
        self.pages_served = 0

    # -- the seller's side (tests and the demo) ------------------------------------------------
    def add_order(self, order: Json, items: list[Json]) -> None:
        with self._lock:
            self.orders[order["AmazonOrderId"]] = order
            self.items[order["AmazonOrderId"]] = items

    def update_order(self, order_id: str, **changes: Any) -> Json:
        """Change an order as Amazon would (a status move, an edit): ``LastUpdateDate`` moves to now."""
        with self._lock:
            order = self.orders[order_id]
            order.update(changes)
            order["LastUpdateDate"] = iso(self.clock())
            return order

    def fail_next(self, operation: str, *statuses: int) -> None:
        """The next calls of ``operation`` answer these statuses (429, 500, 503), in order."""
        with self._lock:
            self._fail.setdefault(operation, []).extend(statuses)

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens = {t: self.clock() - timedelta(seconds=1) for t in self._tokens}

    # -- answers ---------------------------------------------------------------------------------
    def _visible(self, order: Json, after: datetime, before: datetime, now: datetime) -> bool:
        updated = datetime.fromisoformat(order["LastUpdateDate"].replace("Z", "+00:00"))
        return after <= updated <= before and updated <= now - timedelta(seconds=self.lag_s)

    def _public(self, order: Json, token: str | None) -> Json:
        out: Json = json.loads(json.dumps(order))
        if out.get("OrderStatus") == "Pending":
            for key in ("OrderTotal", "ShippingAddress"):
                out.pop(key, None)
        # Without a Restricted Data Token covering them the same call answers minus the PII.
        granted = self._rdts.get(token or "", (self.clock(), frozenset()))[1]
        address = out.get("ShippingAddress")
        if isinstance(address, dict) and "shippingAddress" not in granted:
            for key in RESTRICTED_ADDRESS_FIELDS:
                address.pop(key, None)
        buyer = out.get("BuyerInfo")
        if isinstance(buyer, dict) and "buyerInfo" not in granted:
            for key in RESTRICTED_BUYER_FIELDS:
                buyer.pop(key, None)
        return out

    def _gate(self, operation: str, token: str | None) -> JSONResponse | None:
        if not token:
            return _error(
                403,
                "Unauthorized",
                "Access to requested resource is denied.",
                "Access token is missing in the request header.",
            )
        expires = self._tokens.get(token)
        if expires is None and token in self._rdts:
            expires = self._rdts[token][0]
        if expires is None:
            return _error(
                403,
                "Unauthorized",
                "Access to requested resource is denied.",
                "The access token you provided is revoked, malformed or invalid.",
            )
        if expires <= self.clock():
            return _error(
                403,
                "Unauthorized",
                "Access to requested resource is denied.",
                "The access token you provided has expired.",
            )
        forced = self._fail.get(operation)
        if forced:
            status = forced.pop(0)
            if status == 429:
                self.throttled[operation] = self.throttled.get(operation, 0) + 1
                return _throttled()
            return _error(status, "InternalFailure", "We encountered an internal error. Please try again.")
        bucket = self._buckets.get(operation)
        if bucket is not None and not bucket.take():
            self.throttled[operation] = self.throttled.get(operation, 0) + 1
            return _throttled()
        self.calls.append((operation, {}))
        return None

    def token(self, form: dict[str, str]) -> JSONResponse:
        with self._lock:
            if form.get("grant_type") != "refresh_token":
                return JSONResponse(
                    {"error": "unsupported_grant_type", "error_description": "grant_type"}, 400
                )
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return JSONResponse(
                    {"error": "invalid_client", "error_description": "Client authentication failed"}, 401
                )
            if form.get("refresh_token") != REFRESH_TOKEN:
                return JSONResponse(
                    {
                        "error": "invalid_grant",
                        "error_description": "The request has an invalid grant parameter : refresh_token",
                    },
                    400,
                )
            access = f"Atza|{uuid.uuid4().hex}"
            self._tokens[access] = self.clock() + timedelta(seconds=3600)
            return JSONResponse(
                {
                    "access_token": access,
                    "token_type": "bearer",
                    "expires_in": 3600,
                    "refresh_token": REFRESH_TOKEN,
                }
            )

    def restricted_data_token(self, body: Any, token: str | None) -> JSONResponse:
        """``createRestrictedDataToken``: an RDT for the listed resources and data elements."""
        with self._lock:
            if (denied := self._gate("createRestrictedDataToken", token)) is not None:
                return denied
            resources = body.get("restrictedResources") if isinstance(body, dict) else None
            if not isinstance(resources, list) or not resources or len(resources) > 50:
                return _error(400, "InvalidRequest", _INVALID, "Resource not provided.")
            elements: set[str] = set()
            for r in resources:
                if (
                    not isinstance(r, dict)
                    or r.get("method") != "GET"
                    or not str(r.get("path", "")).startswith("/orders/v0/orders")
                ):
                    return _error(400, "InvalidRequest", _INVALID, "Resource not provided.")
                elements.update(e for e in r.get("dataElements") or [] if isinstance(e, str))
            if not self.restricted_role:
                return _error(403, "Unauthorized", "Access to requested resource is denied.", "")
            rdt = f"Atz.sprdt|{uuid.uuid4().hex}"
            self._rdts[rdt] = (self.clock() + timedelta(seconds=3600), frozenset(elements))
            return JSONResponse({"restrictedDataToken": rdt, "expiresIn": 3600})

    def get_orders(self, q: dict[str, str], token: str | None) -> JSONResponse:
        with self._lock:
            if (denied := self._gate("getOrders", token)) is not None:
                return denied
            if not q.get("MarketplaceIds") or self.marketplace_id not in q["MarketplaceIds"].split(","):
                return _error(400, "InvalidInput", _INVALID, "")
            now = self.clock()
            if "NextToken" in q:  # "<listing>.<offset>": the same token always answers the same page
                name, _, at = q["NextToken"].partition(".")
                found = self._listings.get(name)
                if found is None or not at.isdigit():
                    return _error(400, "InvalidInput", "Invalid NextToken", "")
                listing = found
                offset = int(at)
            else:
                try:
                    listing = self._new_listing(q, now)
                except ValueError:
                    return _error(400, "InvalidInput", _INVALID, "")
                name, offset = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="), 0
                self._listings[name] = listing
            page_ids = listing.ids[offset : offset + listing.size]
            self.served_ids.append(page_ids)
            orders = [
                self._public(self.orders[i], token)
                for i in page_ids
                if self._visible(self.orders[i], listing.after, listing.before, now + timedelta(days=1))
            ]
            payload: Json = {"Orders": orders, "LastUpdatedBefore": iso(listing.before)}
            if offset + listing.size < len(listing.ids):
                payload["NextToken"] = f"{name}.{offset + listing.size}"
            self.pages_served += 1
            served = self.pages_served
        if self.on_page is not None:
            self.on_page(served)
        return _ok({"payload": payload}, "getOrders", self.plans)

    def _new_listing(self, q: dict[str, str], now: datetime) -> _Listing:
        if "CreatedAfter" in q or "CreatedBefore" in q or "LastUpdatedAfter" not in q:
            raise ValueError("only the LastUpdated mode is modelled, and it needs LastUpdatedAfter")
        after = _parse(q["LastUpdatedAfter"])
        before = (
            _parse(q["LastUpdatedBefore"])
            if "LastUpdatedBefore" in q
            else now - timedelta(seconds=self.min_before_s)
        )
        assert after is not None and before is not None
        if before < after or before > now - timedelta(seconds=self.min_before_s):
            raise ValueError("LastUpdatedBefore must be after LastUpdatedAfter and 2 minutes in the past")
        size = int(q.get("MaxResultsPerPage", "100"))
        if not 1 <= size <= 100:
            raise ValueError("MaxResultsPerPage")
        ids = [i for i, o in self.orders.items() if self._visible(o, after, before, now)]
        self._random.shuffle(ids)  # the order is undocumented: never rely on it
        return _Listing(ids, after, before, size)

    def get_order(self, order_id: str, token: str | None) -> JSONResponse:
        with self._lock:
            if (denied := self._gate("getOrder", token)) is not None:
                return denied
            if order_id not in self.orders:
                return _error(404, "NotFound", "The requested order was not found.", order_id)
            return _ok({"payload": self._public(self.orders[order_id], token)}, "getOrder", self.plans)

    def get_items(self, order_id: str, next_token: str | None, token: str | None) -> JSONResponse:
        with self._lock:
            if (denied := self._gate("getOrderItems", token)) is not None:
                return denied
            if order_id not in self.orders:
                return _error(404, "NotFound", "The requested order was not found.", order_id)
            start = int(next_token) if next_token and next_token.isdigit() else 0
            items = json.loads(json.dumps(self.items[order_id]))
            if self.orders[order_id].get("OrderStatus") == "Pending":
                price_keys = ("Price", "Tax", "Discount")
                items = [{k: v for k, v in i.items() if not any(p in k for p in price_keys)} for i in items]
            page = items[start : start + self.item_page_size]
            payload: Json = {"AmazonOrderId": order_id, "OrderItems": page}
            if start + self.item_page_size < len(items):
                payload["NextToken"] = str(start + self.item_page_size)
            return _ok({"payload": payload}, "getOrderItems", self.plans)


def _headers() -> dict[str, str]:
    return {"x-amzn-RequestId": str(uuid.uuid4())}


def _ok(body: Json, operation: str, plans: dict[str, tuple[float, int]]) -> JSONResponse:
    headers = _headers()
    if operation in plans:
        headers["x-amzn-RateLimit-Limit"] = str(plans[operation][0])
    return JSONResponse(body, headers=headers)


def _error(status: int, code: str, message: str, details: str | None = None) -> JSONResponse:
    err: Json = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    return JSONResponse({"errors": [err]}, status_code=status, headers=_headers())


def _throttled() -> JSONResponse:
    return _error(429, "QuotaExceeded", "You exceeded your quota for the requested resource.", "")


def create_amazon_app(sandbox: AmazonSandbox) -> FastAPI:
    """The fake's HTTP face: the LWA token endpoint and the Orders v0 operations."""
    app = FastAPI(title="Amazon SP-API sandbox (Retail Connect)", docs_url=None, redoc_url=None)

    @app.post("/auth/o2/token")
    async def token(request: Request) -> Response:
        form = parse_qs((await request.body()).decode(), keep_blank_values=True)  # form-encoded
        return sandbox.token({k: v[0] for k, v in form.items()})

    @app.post("/tokens/2021-03-01/restrictedDataToken")
    async def restricted_data_token(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        return sandbox.restricted_data_token(body, request.headers.get("x-amz-access-token"))

    @app.get("/orders/v0/orders")
    async def get_orders(request: Request) -> Response:
        return sandbox.get_orders(dict(request.query_params), request.headers.get("x-amz-access-token"))

    @app.get("/orders/v0/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> Response:
        return sandbox.get_order(order_id, request.headers.get("x-amz-access-token"))

    @app.get("/orders/v0/orders/{order_id}/orderItems")
    async def get_items(order_id: str, request: Request) -> Response:
        return sandbox.get_items(
            order_id, request.query_params.get("NextToken"), request.headers.get("x-amz-access-token")
        )

    return app


# -- payloads shaped as the contract documents them (tests and the demo) ------------------------


def _m(amount: Decimal | str | int, currency: str) -> Json:
    return {"CurrencyCode": currency, "Amount": str(Decimal(amount).quantize(Decimal("0.01")))}


def amazon_order(
    order_id: str,
    lines: list[tuple[str, int, str]],
    *,
    updated: datetime,
    status: str = "Unshipped",
    currency: str = "USD",
    tax_rate: str = "0.0725",
    shipping: str = "4.99",
    promotion: str = "0",
    tax_included: bool = False,
    fulfillment: str = "MFN",
) -> tuple[Json, list[Json]]:
    """An order and its items: ``lines`` are (SKU, quantity, unit price); tax is ``tax_rate`` of
    each line after its promotion (the first line carries ``promotion``), shipping on the first."""
    rate = Decimal(tax_rate)
    q = Decimal("0.01")
    items: list[Json] = []
    total = Decimal(0)
    for n, (sku, qty, unit) in enumerate(lines):
        price = Decimal(unit) * qty
        promo = Decimal(promotion) if n == 0 else Decimal(0)
        ship = Decimal(shipping) if n == 0 else Decimal(0)
        if tax_included:
            tax = ((price - promo) * rate / (1 + rate)).quantize(q)
            ship_tax = (ship * rate / (1 + rate)).quantize(q)
            total += price - promo + ship
        else:
            tax = ((price - promo) * rate).quantize(q)
            ship_tax = (ship * rate).quantize(q)
            total += price - promo + ship + tax + ship_tax
        items.append(
            {
                "ASIN": f"B0{n:08d}",
                "SellerSKU": sku,
                "OrderItemId": f"{order_id[-7:]}{n:04d}",
                "Title": f"Product {sku}",
                "QuantityOrdered": qty,
                "QuantityShipped": 0,
                "ProductInfo": {"NumberOfItems": "1"},
                "ItemPrice": _m(price, currency),
                "ItemTax": _m(tax, currency),
                "ShippingPrice": _m(ship, currency),
                "ShippingTax": _m(ship_tax, currency),
                "ShippingDiscount": _m(0, currency),
                "ShippingDiscountTax": _m(0, currency),
                "PromotionDiscount": _m(promo, currency),
                "PromotionDiscountTax": _m(0, currency),
                "PromotionIds": ["PROMO-10"] if promo else [],
                "CODFee": None,
                "CODFeeDiscount": None,
                "IsGift": "false",
                "ConditionId": "New",
                "ConditionSubtypeId": "New",
                "ConditionNote": None,
                "IsTransparency": False,
                "SerialNumberRequired": False,
                "IossNumber": None,
                "TaxCollection": {
                    "Model": "MarketplaceFacilitator",
                    "ResponsibleParty": "Amazon Services, Inc.",
                },
                "BuyerRequestedCancel": {"IsBuyerRequestedCancel": "false", "BuyerCancelReason": ""},
            }
        )
    stamp = iso(updated)
    order: Json = {
        "AmazonOrderId": order_id,
        "SellerOrderId": order_id,
        "PurchaseDate": stamp,
        "LastUpdateDate": stamp,
        "OrderStatus": status,
        "FulfillmentChannel": fulfillment,
        "SalesChannel": "Amazon.com",
        "OrderChannel": None,
        "ShipServiceLevel": "Std US D2D Dom",
        "ShipmentServiceLevelCategory": "Standard",
        "OrderTotal": _m(total, currency),
        "NumberOfItemsShipped": 0,
        "NumberOfItemsUnshipped": sum(q for _, q, _ in lines),
        "PaymentMethod": "Other",
        "PaymentMethodDetails": ["Standard"],
        "MarketplaceId": MARKETPLACE_US,
        "OrderType": "StandardOrder",
        "IsBusinessOrder": False,
        "IsPrime": False,
        "IsPremiumOrder": False,
        "IsGlobalExpressEnabled": False,
        "IsReplacementOrder": False,
        "ReplacedOrderId": None,
        "IsSoldByAB": False,
        "IsIBA": False,
        "IsISPU": False,
        "IsAccessPointOrder": False,
        "HasRegulatedItems": False,
        "ShippingAddress": {
            "Name": "Jane Doe",
            "AddressLine1": "410 Terry Ave N",
            "Phone": "+1 206-555-0100",
            "City": "SEATTLE",
            "StateOrRegion": "WA",
            "PostalCode": "98101",
            "CountryCode": "US",
            "AddressType": "Residential",
        },
        "BuyerInfo": {"BuyerEmail": f"{order_id[-7:]}@marketplace.amazon.com", "BuyerName": "Jane Doe"},
    }
    return order, items
