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
  ``getOrderItems`` pages with ``NextToken`` (``item_page_size``); unknown orders are 404;
* ``confirmShipment`` (§4): validates the required fields (``carrierName`` with ``Other``,
  ``packageReferenceId`` a positive numeric string, known ``orderItemId``s, positive
  quantities), accepts only MFN orders that are neither ``Pending`` nor ``Canceled`` and only up
  to the unshipped quantity, answers 204 with no body; the same ``packageReferenceId`` replaces
  that package, a new one adds one; ``QuantityShipped``, ``NumberOfItems*``, ``OrderStatus``
  (``PartiallyShipped``/``Shipped``) and ``LastUpdateDate`` follow; ``auto_confirmed`` orders
  (label bought through Amazon) answer 400;
* ``patchListingsItem`` / ``getListingsItem`` (§5.1): ``marketplaceIds``, ``productType`` and
  patches required; ``add``/``replace``/``merge``/``delete`` on
  ``/attributes/fulfillment_availability`` (``replace`` wipes the handling time and restock
  date, ``merge`` keeps them); ``ACCEPTED`` with a new ``submissionId``, ``INVALID`` with issues
  for a negative quantity or a missing ``fulfillment_channel_code``, ``VALID`` and nothing kept
  under ``VALIDATION_PREVIEW``; the quantity applies ``listing_delay_s`` later; read back in
  camelCase; the static sandbox's ``BadSKU`` answers 400.

Not modelled: regions, feeds, v2026-01-01.
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
    "confirmShipment": (2.0, 10),
    "patchListingsItem": (5.0, 5),
    "getListingsItem": (5.0, 10),
}
SELLER_ID = "A1SANDBOXSELLER"
LISTING_OPS = frozenset({"add", "replace", "merge", "delete"})
AVAILABILITY = "/attributes/fulfillment_availability"
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
    seller_id: str = SELLER_ID
    listing_delay_s: float = 0.0
    """How long after ``patchListingsItem`` accepted a quantity it shows (processing is async)."""
    auto_confirmed: set[str] = field(default_factory=set)
    """Orders whose label was bought through Amazon: confirmed by Amazon, confirmShipment is 400."""

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
        self.packages: dict[str, dict[str, Json]] = {}  # order -> packageReferenceId -> detail
        self.confirmations: list[tuple[str, Json]] = []  # every accepted confirmShipment body
        self.listings: dict[str, list[Json]] = {}  # SKU -> fulfillment_availability (snake_case)
        self.listing_patches: list[tuple[str, Json]] = []  # every accepted patch body, per SKU
        self._queued: list[tuple[datetime, str, list[Json]]] = []

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

    def set_listing(self, sku: str, availability: list[Json]) -> None:
        """A listing as the seller set it in Seller Central (snake_case attribute rows)."""
        with self._lock:
            self.listings[sku] = json.loads(json.dumps(availability))

    def listing_quantity(self, sku: str, channel_code: str = "DEFAULT") -> int | None:
        """The quantity Amazon shows for the SKU now (accepted patches applied once due)."""
        with self._lock:
            self._apply_due()
            for row in self.listings.get(sku, []):
                if row.get("fulfillment_channel_code") == channel_code:
                    return int(row["quantity"]) if isinstance(row.get("quantity"), int) else None
            return None

    def tracking_numbers(self, order_id: str) -> list[str]:
        with self._lock:
            return [p["trackingNumber"] for p in self.packages.get(order_id, {}).values()]

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

    # -- confirmShipment ------------------------------------------------------------------------
    def confirm_shipment(self, order_id: str, body: Any, token: str | None) -> Response:
        with self._lock:
            if (denied := self._gate("confirmShipment", token)) is not None:
                return denied
            order = self.orders.get(order_id)
            if order is None:
                return _error(404, "NotFound", "The requested order was not found.", order_id)
            checked = self._check_confirmation(order_id, order, body)
            if isinstance(checked, str):
                return _error(400, "InvalidInput", "Invalid Input", checked)
            ref, detail = checked
            self.packages.setdefault(order_id, {})[ref] = detail  # the same id edits that package
            self.confirmations.append((order_id, json.loads(json.dumps(body))))
            shipped: dict[str, int] = {}
            for package in self.packages[order_id].values():
                for row in package["orderItems"]:
                    shipped[row["orderItemId"]] = shipped.get(row["orderItemId"], 0) + row["quantity"]
            ordered = 0
            for item in self.items[order_id]:
                item["QuantityShipped"] = shipped.get(item["OrderItemId"], 0)
                ordered += int(item["QuantityOrdered"])
            total_shipped = sum(shipped.values())
            self.update_order(
                order_id,
                NumberOfItemsShipped=total_shipped,
                NumberOfItemsUnshipped=ordered - total_shipped,
                OrderStatus="Shipped" if total_shipped >= ordered else "PartiallyShipped",
            )
            headers = _headers()
            if "confirmShipment" in self.plans:
                headers["x-amzn-RateLimit-Limit"] = str(self.plans["confirmShipment"][0])
            return Response(status_code=204, headers=headers)

    def _check_confirmation(self, order_id: str, order: Json, body: Any) -> tuple[str, Json] | str:
        """(packageReferenceId, the package) or what is wrong with the request."""
        if not isinstance(body, dict):
            return "the body must be a JSON object"
        if body.get("marketplaceId") != order.get("MarketplaceId"):
            return f"marketplaceId {body.get('marketplaceId')!r} is not the order's marketplace"
        detail = body.get("packageDetail")
        if not isinstance(detail, dict):
            return "packageDetail is required"
        for required in ("packageReferenceId", "carrierCode", "trackingNumber", "shipDate", "orderItems"):
            if detail.get(required) in (None, "", []):
                return f"packageDetail.{required} is required"
        ref = detail["packageReferenceId"]
        if not isinstance(ref, str) or not ref.isdigit() or int(ref) <= 0:
            return "packageDetail.packageReferenceId must be a positive number written as a string"
        if detail["carrierCode"] == "Other" and not detail.get("carrierName"):
            return "packageDetail.carrierName is required when carrierCode is Other"
        try:
            datetime.fromisoformat(str(detail["shipDate"]).replace("Z", "+00:00"))
        except ValueError:
            return "packageDetail.shipDate must be ISO 8601"
        if order.get("FulfillmentChannel") != "MFN":
            return "only seller-fulfilled (MFN) orders can be confirmed"
        if order.get("OrderStatus") in ("Pending", "PendingAvailability", "Canceled"):
            return f"an order in status {order.get('OrderStatus')} cannot be confirmed"
        if order_id in self.auto_confirmed:
            return "this order was confirmed by Amazon with the label bought through Amazon"
        ordered = {i["OrderItemId"]: int(i["QuantityOrdered"]) for i in self.items[order_id]}
        rows = detail["orderItems"]
        if not isinstance(rows, list):
            return "packageDetail.orderItems must be a list"
        wanted: dict[str, int] = {}
        for n, row in enumerate(rows):
            item, qty = (
                (row.get("orderItemId"), row.get("quantity")) if isinstance(row, dict) else (None, None)
            )
            if not isinstance(item, str) or item not in ordered:
                return f"packageDetail.orderItems[{n}].orderItemId {item!r} is not an item of the order"
            if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
                return f"packageDetail.orderItems[{n}].quantity must be a positive integer"
            wanted[item] = wanted.get(item, 0) + qty
        others: dict[str, int] = {}
        for other_ref, package in self.packages.get(order_id, {}).items():
            if other_ref != ref:
                for row in package["orderItems"]:
                    others[row["orderItemId"]] = others.get(row["orderItemId"], 0) + row["quantity"]
        for item, qty in wanted.items():
            unshipped = ordered[item] - others.get(item, 0)
            if qty > unshipped:
                return f"orderItemId {item}: {qty} is more than the {unshipped} unshipped"
        package = json.loads(json.dumps(detail))
        package["orderItems"] = [{"orderItemId": i, "quantity": q} for i, q in wanted.items()]
        return ref, package

    # -- Listings Items ---------------------------------------------------------------------------
    def patch_listing(
        self, seller: str, sku: str, q: dict[str, str], body: Any, token: str | None
    ) -> Response:
        with self._lock:
            if (denied := self._gate("patchListingsItem", token)) is not None:
                return denied
            if seller != self.seller_id:
                return _error(403, "Unauthorized", "Access to requested resource is denied.", "")
            if self.marketplace_id not in (q.get("marketplaceIds") or "").split(","):
                return _error(400, "InvalidInput", _INVALID, "marketplaceIds")
            if sku == "BadSKU":  # the static sandbox's 400 case
                return _error(400, "BAD_REQUEST", "Invalid input", "Invalid input")
            patches = body.get("patches") if isinstance(body, dict) else None
            if not isinstance(body, dict) or not body.get("productType"):
                return _error(400, "InvalidInput", "Invalid input", "productType is required")
            if not isinstance(patches, list) or not patches:
                return _error(400, "InvalidInput", "Invalid input", "at least one patch is required")
            issues: list[Json] = []
            for n, patch in enumerate(patches):
                if not isinstance(patch, dict) or patch.get("op") not in LISTING_OPS:
                    return _error(400, "InvalidInput", "Invalid input", f"patches[{n}].op")
                path = str(patch.get("path") or "")
                if path.count("/") != 2 or not path.startswith("/attributes/"):
                    return _error(400, "InvalidInput", "Invalid input", f"patches[{n}].path: top-level only")
                if patch["op"] != "delete" and not isinstance(patch.get("value"), list):
                    return _error(
                        400, "InvalidInput", "Invalid input", f"patches[{n}].value must be an array"
                    )
                if path == AVAILABILITY:
                    issues += _availability_issues(patch)
            submission = uuid.uuid4().hex
            if issues:
                return _ok(
                    {"sku": sku, "status": "INVALID", "submissionId": submission, "issues": issues},
                    "patchListingsItem",
                    self.plans,
                )
            if q.get("mode") == "VALIDATION_PREVIEW":
                return _ok(
                    {"sku": sku, "status": "VALID", "submissionId": submission, "issues": []},
                    "patchListingsItem",
                    self.plans,
                )
            due = self.clock() + timedelta(seconds=self.listing_delay_s)
            wanted = [p for p in patches if p.get("path") == AVAILABILITY]
            self._queued.append((due, sku, json.loads(json.dumps(wanted))))
            self.listing_patches.append((sku, json.loads(json.dumps(body))))
            self._apply_due()
            return _ok(
                {"sku": sku, "status": "ACCEPTED", "submissionId": submission, "issues": []},
                "patchListingsItem",
                self.plans,
            )

    def _apply_due(self) -> None:
        now = self.clock()
        due = [q for q in self._queued if q[0] <= now]
        self._queued = [q for q in self._queued if q[0] > now]
        for _, sku, patches in due:
            rows = self.listings.setdefault(sku, [])
            for patch in patches:
                value = [r for r in patch.get("value") or [] if isinstance(r, dict)]
                codes = {r.get("fulfillment_channel_code") for r in value}
                if patch["op"] in ("add", "replace"):
                    rows[:] = json.loads(json.dumps(value))  # the whole attribute: other members go
                elif patch["op"] == "delete":
                    rows[:] = [r for r in rows if value and r.get("fulfillment_channel_code") not in codes]
                else:  # merge: the members sent change, the others (handling time, restock date) stay
                    for new in value:
                        old = next(
                            (
                                r
                                for r in rows
                                if r.get("fulfillment_channel_code") == new["fulfillment_channel_code"]
                            ),
                            None,
                        )
                        if old is None:
                            rows.append(dict(new))
                        else:
                            old.update(new)

    def get_listing(self, seller: str, sku: str, q: dict[str, str], token: str | None) -> Response:
        with self._lock:
            if (denied := self._gate("getListingsItem", token)) is not None:
                return denied
            if seller != self.seller_id:
                return _error(403, "Unauthorized", "Access to requested resource is denied.", "")
            if self.marketplace_id not in (q.get("marketplaceIds") or "").split(","):
                return _error(400, "InvalidInput", _INVALID, "marketplaceIds")
            self._apply_due()
            if sku not in self.listings:
                return _error(
                    404, "NotFound", f"SKU '{sku}' not found in marketplace {self.marketplace_id}", ""
                )
            out: Json = {"sku": sku}
            if "fulfillmentAvailability" in (q.get("includedData") or "").split(","):
                out["fulfillmentAvailability"] = [
                    {_camel(k): v for k, v in row.items()} for row in self.listings[sku]
                ]
            return _ok(out, "getListingsItem", self.plans)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p.title() for p in rest)


def _availability_issues(patch: Json) -> list[Json]:
    """The issues Amazon reports for a bad ``fulfillment_availability`` value (status INVALID)."""
    issues: list[Json] = []

    def issue(message: str) -> None:
        issues.append(
            {
                "code": "4000001",
                "message": message,
                "severity": "ERROR",
                "attributeNames": ["fulfillment_availability"],
                "categories": ["INVALID_ATTRIBUTE"],
            }
        )

    for row in patch.get("value") or []:
        if not isinstance(row, dict) or not row.get("fulfillment_channel_code"):
            issue("'fulfillment_channel_code' is required but not supplied.")
            continue
        qty = row.get("quantity")
        if qty is not None and (isinstance(qty, bool) or not isinstance(qty, int) or qty < 0):
            issue(f"The value '{qty}' for 'quantity' must be a whole number of 0 or more.")
    return issues


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


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


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

    @app.post("/orders/v0/orders/{order_id}/shipmentConfirmation")
    async def confirm_shipment(order_id: str, request: Request) -> Response:
        return sandbox.confirm_shipment(
            order_id, _json_body(await request.body()), request.headers.get("x-amz-access-token")
        )

    @app.patch("/listings/2021-08-01/items/{seller_id}/{sku}")
    async def patch_listing(seller_id: str, sku: str, request: Request) -> Response:
        return sandbox.patch_listing(
            seller_id,
            sku,
            dict(request.query_params),
            _json_body(await request.body()),
            request.headers.get("x-amz-access-token"),
        )

    @app.get("/listings/2021-08-01/items/{seller_id}/{sku}")
    async def get_listing(seller_id: str, sku: str, request: Request) -> Response:
        return sandbox.get_listing(
            seller_id, sku, dict(request.query_params), request.headers.get("x-amz-access-token")
        )

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
