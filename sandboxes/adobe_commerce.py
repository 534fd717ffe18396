"""An in-process fake of the Adobe Commerce (Magento 2) REST orders API the poller uses, following
``shared/contracts/bigcommerce_adobe_commerce.md`` §B and Magento's search semantics:

* ``GET /rest/{store}/V1/orders`` with ``searchCriteria`` filter groups (ANDed; ``eq``, ``gteq``,
  ``lteq``, ``gt``, ``lt``), ``sortOrders``, ``pageSize`` and ``currentPage`` (past the end it
  answers the last page again, as Magento does), answering ``{"items", "search_criteria",
  "total_count"}``; ``GET /rest/{store}/V1/orders/{entity_id}``;
* ``Authorization: Bearer <token>``; otherwise 401 ``The consumer isn't authorized to access
  %resources.``; unknown orders 404 with Magento's message; amounts are JSON numbers;
* no rate limit by default (as Magento); ``rate_limit`` models Fastly in front of Adobe Commerce
  Cloud (429 with ``Retry-After``); ``fail_next`` forces statuses;
* ``updated_at`` moves on every change (``update_order``); ``on_page`` runs after each search page;
* ``POST /rest/{store}/V1/order/{entity_id}/ship`` (the contract's body: ``items`` with
  ``order_item_id``/``qty``, ``tracks`` with ``track_number``/``title``/``carrier_code``,
  ``notify``, plus Magento's ``comment``): refused with Magento's "Shipment Document Validation
  Error(s)" 400 for an order that does not allow a shipment (``canceled``, ``closed``,
  ``complete``, ``holded``), an unknown item, or more than is left to ship; no ``items`` ships
  everything left; answers the new shipment's ``entity_id`` as a JSON string; items'
  ``qty_shipped`` follow, and the order becomes ``complete`` once everything is shipped and
  invoiced (``qty_invoiced``), else stays ``processing`` (as Magento does);
* ``GET /rest/{store}/V1/shipments`` with ``searchCriteria`` (e.g. ``order_id``), each shipment
  with its ``items``, ``tracks`` and ``comments``;
* ``POST /rest/{store}/V1/orders/{entity_id}/cancel``: ``true``, or ``false`` when Magento's
  ``canCancel`` says no (state ``canceled``, ``complete``, ``closed``, ``holded``,
  ``payment_review``, or every item invoiced); cancels what is not shipped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

Json = dict[str, Any]
TOKEN = "sandbox-integration-token"
_UNAUTHORIZED = {
    "message": "The consumer isn't authorized to access %resources.",
    "parameters": {"resources": "Magento_Sales::actions_view"},
}
_NOT_FOUND = {"message": "The entity that was requested doesn't exist. Verify the entity and try again."}


def magento_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _matches(value: Any, condition: str, wanted: str) -> bool:
    v = "" if value is None else str(value)
    if condition in ("eq", ""):
        return v == wanted
    both_numbers = v.lstrip("-").isdigit() and wanted.lstrip("-").isdigit()
    a: Any = int(v) if both_numbers else v
    b: Any = int(wanted) if both_numbers else wanted
    return bool({"gteq": a >= b, "lteq": a <= b, "gt": a > b, "lt": a < b}.get(condition, False))


def _sort_key(fld: str) -> Callable[[Json], tuple[bool, str]]:
    def key(o: Json) -> tuple[bool, str]:
        v = o.get(fld)
        return (v is None, f"{v:020d}" if isinstance(v, int) else str(v))

    return key


def _criteria(q: dict[str, str]) -> tuple[list[list[tuple[str, str, str]]], list[tuple[str, str]], int, int]:
    groups: dict[int, dict[int, dict[str, str]]] = {}
    sorts: dict[int, dict[str, str]] = {}
    for key, value in q.items():
        parts = key.replace("]", "").split("[")
        if parts[:2] == ["searchCriteria", "filter_groups"] and len(parts) == 6:
            groups.setdefault(int(parts[2]), {}).setdefault(int(parts[4]), {})[parts[5]] = value
        elif parts[:2] == ["searchCriteria", "sortOrders"] and len(parts) == 4:
            sorts.setdefault(int(parts[2]), {})[parts[3]] = value
    filters = [
        [(f["field"], f.get("value", ""), f.get("condition_type", "eq")) for _, f in sorted(g.items())]
        for _, g in sorted(groups.items())
    ]
    order = [(s["field"], s.get("direction", "ASC").upper()) for _, s in sorted(sorts.items())]
    size = int(q.get("searchCriteria[pageSize]", "0") or 0)
    page = int(q.get("searchCriteria[currentPage]", "1") or 1)
    return filters, order, size, page


@dataclass
class AdobeCommerceSandbox:
    token: str = TOKEN
    rate_limit: tuple[float, int] | None = None
    """(requests per second, burst): a Fastly-style limit; None (Magento's default) for none."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    on_page: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self.orders: dict[int, Json] = {}
        self._fail: list[int] = []
        self._level = float(self.rate_limit[1]) if self.rate_limit else 0.0
        self._at = time.monotonic()
        self.pages_served = 0
        self.requests: list[dict[str, str]] = []
        self.shipments: dict[int, Json] = {}
        self.ship_requests: list[tuple[int, Json]] = []

    def add_order(self, order: Json) -> Json:
        with self._lock:
            self.orders[int(order["entity_id"])] = order
            return order

    def update_order(self, entity_id: int, **changes: Any) -> Json:
        with self._lock:
            order = self.orders[entity_id]
            order.update(changes)
            order["updated_at"] = magento_time(self.clock())
            return order

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self._fail.extend(statuses)

    def _gate(self, authorization: str | None) -> JSONResponse | None:
        if authorization != f"Bearer {self.token}":
            return JSONResponse(_UNAUTHORIZED, status_code=401)
        if self._fail:
            status = self._fail.pop(0)
            headers = {"Retry-After": "1"} if status == 429 else {}
            return JSONResponse(
                {"message": "Too Many Requests" if status == 429 else "Internal Error"}, status, headers
            )
        if self.rate_limit is not None:
            rate, burst = self.rate_limit
            now = time.monotonic()
            self._level = min(burst, self._level + (now - self._at) * rate)
            self._at = now
            if self._level < 1:
                wait = max(1, int((1 - self._level) / rate + 0.999))
                return JSONResponse({"message": "Too Many Requests"}, 429, {"Retry-After": str(wait)})
            self._level -= 1
        return None

    def search(self, q: dict[str, str], authorization: str | None) -> JSONResponse:
        with self._lock:
            if (denied := self._gate(authorization)) is not None:
                return denied
            self.requests.append(q)
            filters, order, size, page = _criteria(q)
            found = [
                o
                for o in self.orders.values()
                if all(any(_matches(o.get(f), c, v) for f, v, c in group) for group in filters)
            ]
            for fld, direction in reversed(order):  # stable sorts, least significant key first
                found.sort(key=_sort_key(fld), reverse=direction == "DESC")
            total = len(found)
            if size > 0 and found:
                last = max((total - 1) // size + 1, 1)
                page = min(max(page, 1), last)  # Magento answers the last page past the end
                found = found[(page - 1) * size : page * size]
            body = {
                "items": json.loads(json.dumps(found)),
                "search_criteria": {"filter_groups": [], "page_size": size or None, "current_page": page},
                "total_count": total,
            }
            self.pages_served += 1
            served = self.pages_served
        if self.on_page is not None:
            self.on_page(served)
        return JSONResponse(body)

    def _order(self, entity_id: str, authorization: str | None) -> dict[str, Any] | JSONResponse:
        """The order, or the answer when the token is refused or there is no such order."""
        if (denied := self._gate(authorization)) is not None:
            return denied
        order = self.orders.get(int(entity_id)) if entity_id.isdigit() else None
        return order if order is not None else JSONResponse(_NOT_FOUND, status_code=404)

    def get(self, entity_id: str, authorization: str | None) -> JSONResponse:
        with self._lock:
            order = self._order(entity_id, authorization)
            if isinstance(order, JSONResponse):
                return order
            return JSONResponse(json.loads(json.dumps(order)))

    # -- writes ---------------------------------------------------------------------------------
    def order_shipments(self, entity_id: int) -> list[Json]:
        with self._lock:
            return [
                json.loads(json.dumps(sh)) for sh in self.shipments.values() if sh["order_id"] == entity_id
            ]

    def search_shipments(self, q: dict[str, str], authorization: str | None) -> JSONResponse:
        with self._lock:
            if (denied := self._gate(authorization)) is not None:
                return denied
            filters, order, size, page = _criteria(q)
            found = [
                sh
                for sh in self.shipments.values()
                if all(any(_matches(sh.get(f), c, v) for f, v, c in group) for group in filters)
            ]
            for fld, direction in reversed(order):
                found.sort(key=_sort_key(fld), reverse=direction == "DESC")
            total = len(found)
            if size > 0 and found:
                page = min(max(page, 1), max((total - 1) // size + 1, 1))
                found = found[(page - 1) * size : page * size]
            return JSONResponse(
                {
                    "items": json.loads(json.dumps(found)),
                    "search_criteria": {"filter_groups": [], "page_size": size or None, "current_page": page},
                    "total_count": total,
                }
            )

    def ship(self, entity_id: str, body: Any, authorization: str | None) -> JSONResponse:
        with self._lock:
            order = self._order(entity_id, authorization)
            if isinstance(order, JSONResponse):
                return order
            if not isinstance(body, dict):
                return JSONResponse({"message": "Decoding error: the request body is not an object."}, 400)
            problem = self._ship_problem(order, body)
            if problem is not None:
                return JSONResponse({"message": f"Shipment Document Validation Error(s):\n{problem}"}, 400)
            self.ship_requests.append((order["entity_id"], json.loads(json.dumps(body))))
            by_id = {it["item_id"]: it for it in order["items"]}
            wanted = {int(r["order_item_id"]): int(r["qty"]) for r in body.get("items") or []} or {
                it["item_id"]: _left(it) for it in order["items"] if _left(it) > 0
            }
            sid = 900000 + len(self.shipments) + 1
            shipment: Json = {
                "entity_id": sid,
                "increment_id": f"{sid:09d}",
                "order_id": order["entity_id"],
                "store_id": order.get("store_id", 1),
                "created_at": magento_time(self.clock()),
                "total_qty": sum(wanted.values()),
                "items": [
                    {
                        "entity_id": sid * 100 + n,
                        "parent_id": sid,
                        "order_item_id": item,
                        "sku": by_id[item]["sku"],
                        "name": by_id[item]["name"],
                        "qty": qty,
                    }
                    for n, (item, qty) in enumerate(wanted.items())
                ],
                "tracks": [
                    {
                        "entity_id": sid * 100 + n,
                        "parent_id": sid,
                        "order_id": order["entity_id"],
                        "track_number": t.get("track_number"),
                        "title": t.get("title"),
                        "carrier_code": t.get("carrier_code"),
                    }
                    for n, t in enumerate(body.get("tracks") or [])
                ],
                "comments": (
                    [
                        {
                            "entity_id": sid,
                            "parent_id": sid,
                            "comment": body["comment"].get("comment"),
                            "is_visible_on_front": body["comment"].get("is_visible_on_front", 0),
                        }
                    ]
                    if isinstance(body.get("comment"), dict)
                    else []
                ),
            }
            self.shipments[sid] = shipment
            for item, qty in wanted.items():
                by_id[item]["qty_shipped"] = by_id[item].get("qty_shipped", 0) + qty
            done = all(_left(it) == 0 for it in order["items"])
            invoiced = all(it.get("qty_invoiced", 0) >= it["qty_ordered"] for it in order["items"])
            state = "complete" if done and invoiced else "processing"
            self.update_order(order["entity_id"], state=state, status=state)
            return JSONResponse(str(sid))

    @staticmethod
    def _ship_problem(order: Json, body: Json) -> str | None:
        if order.get("state") in ("canceled", "closed", "complete", "holded"):
            return "The order does not allow a shipment to be created."
        by_id = {it["item_id"]: it for it in order["items"]}
        rows = body.get("items") or []
        if not isinstance(rows, list):
            return "items must be a list."
        seen: set[int] = set()
        for row in rows:
            item = row.get("order_item_id") if isinstance(row, dict) else None
            qty = row.get("qty") if isinstance(row, dict) else None
            if not isinstance(item, int) or item not in by_id or item in seen:
                return f"The order item {item!r} is not an item of this order."
            seen.add(item)
            if isinstance(qty, bool) or not isinstance(qty, int | float) or qty <= 0:
                return "You can't create a shipment without products."
            if qty > _left(by_id[item]):
                return f"The quantity to ship for {by_id[item]['sku']} is more than is left to ship."
        if not rows and not any(_left(it) > 0 for it in order["items"]):
            return "The order does not allow a shipment to be created."
        for t in body.get("tracks") or []:
            if not isinstance(t, dict) or not t.get("track_number") or not t.get("carrier_code"):
                return "A track needs a track_number and a carrier_code."
        return None

    def cancel(self, entity_id: str, authorization: str | None) -> JSONResponse:
        with self._lock:
            order = self._order(entity_id, authorization)
            if isinstance(order, JSONResponse):
                return order
            blocked = ("canceled", "complete", "closed", "holded", "payment_review")
            all_invoiced = all(it.get("qty_invoiced", 0) >= it["qty_ordered"] for it in order["items"])
            if order.get("state") in blocked or all_invoiced:
                return JSONResponse(False)
            for it in order["items"]:
                it["qty_canceled"] = _left(it)
            shipped = any(it.get("qty_shipped", 0) > 0 for it in order["items"])
            state = "complete" if shipped else "canceled"  # what shipped stays shipped
            self.update_order(order["entity_id"], state=state, status=state)
            return JSONResponse(True)


def _left(item: Json) -> int:
    return int(item["qty_ordered"] - item.get("qty_shipped", 0) - item.get("qty_canceled", 0))


def create_adobe_commerce_app(sandbox: AdobeCommerceSandbox) -> FastAPI:
    app = FastAPI(title="Adobe Commerce sandbox (Retail Connect)", docs_url=None, redoc_url=None)

    @app.get("/rest/{store}/V1/orders")
    async def search(store: str, request: Request) -> Response:
        return sandbox.search(dict(request.query_params), request.headers.get("authorization"))

    @app.get("/rest/{store}/V1/shipments")
    async def shipments(store: str, request: Request) -> Response:
        return sandbox.search_shipments(dict(request.query_params), request.headers.get("authorization"))

    @app.post("/rest/{store}/V1/order/{entity_id}/ship")
    async def ship(store: str, entity_id: str, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        return sandbox.ship(entity_id, body, request.headers.get("authorization"))

    @app.post("/rest/{store}/V1/orders/{entity_id}/cancel")
    async def cancel(store: str, entity_id: str, request: Request) -> Response:
        return sandbox.cancel(entity_id, request.headers.get("authorization"))

    @app.get("/rest/{store}/V1/orders/{entity_id}")
    async def get(store: str, entity_id: str, request: Request) -> Response:
        return sandbox.get(entity_id, request.headers.get("authorization"))

    return app


# -- payloads shaped as the contract documents them (tests and the demo) ------------------------


def adobe_order(
    entity_id: int,
    lines: list[tuple[str, int, str]],
    *,
    updated: datetime,
    state: str = "processing",
    currency: str = "USD",
    tax_percent: str = "8.25",
    shipping: str = "5.00",
    discount: str = "0",
    tax_included: bool = False,
    paid: bool = True,
    guest: bool = False,
) -> Json:
    """An order: ``lines`` are (SKU, quantity, unit price in the store's price basis); the first
    line carries ``discount``; shipping is taxed at the same rate; amounts are JSON numbers."""
    q = Decimal("0.01")
    rate = Decimal(tax_percent) / 100
    items: list[Json] = []
    sub_ex = sub_inc = tax_sum = Decimal(0)
    for n, (sku, qty, unit) in enumerate(lines):
        u = Decimal(unit)
        disc = Decimal(discount) if n == 0 else Decimal(0)
        if tax_included:
            price_inc, price_ex = u, (u / (1 + rate)).quantize(q)
            tax = ((price_inc * qty - disc) * rate / (1 + rate)).quantize(q)
        else:
            price_ex, price_inc = u, (u * (1 + rate)).quantize(q)
            tax = ((price_ex * qty - disc) * rate).quantize(q)
        sub_ex += price_ex * qty
        sub_inc += price_inc * qty
        tax_sum += tax
        items.append(
            {
                "item_id": entity_id * 100 + n,
                "order_id": entity_id,
                "parent_item_id": None,
                "sku": sku,
                "name": f"Product {sku}",
                "product_id": 1000 + n,
                "product_type": "simple",
                "qty_ordered": qty,
                "qty_invoiced": 0,
                "qty_shipped": 0,
                "qty_refunded": 0,
                "qty_canceled": 0,
                "price": float(price_ex),
                "base_price": float(price_ex),
                "price_incl_tax": float(price_inc),
                "row_total": float(price_ex * qty),
                "row_total_incl_tax": float(price_inc * qty),
                "tax_amount": float(tax),
                "tax_percent": float(Decimal(tax_percent)),
                "discount_amount": float(disc),
                "discount_percent": 0,
            }
        )
    ship = Decimal(shipping)
    if tax_included:
        ship_inc, ship_ex = ship, (ship / (1 + rate)).quantize(q)
        grand = sub_inc - Decimal(discount) + ship_inc
    else:
        ship_ex, ship_inc = ship, (ship * (1 + rate)).quantize(q)
        grand = sub_ex - Decimal(discount) + ship_ex + tax_sum + (ship_inc - ship_ex)
    tax_total = tax_sum + ship_inc - ship_ex
    stamp = magento_time(updated)
    address = {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "company": "",
        "street": ["12 Analytical Row", "Floor 2"],
        "city": "Austin",
        "region": "Texas",
        "region_code": "TX",
        "region_id": 57,
        "postcode": "78701",
        "country_id": "US",
        "telephone": "+1 512 555 0100",
        "email": "ada@example.com",
    }
    return {
        "entity_id": entity_id,
        "increment_id": f"{entity_id:09d}",
        "state": state,
        "status": state,
        "store_id": 1,
        "created_at": stamp,
        "updated_at": stamp,
        "customer_id": None if guest else 42,
        "customer_is_guest": 1 if guest else 0,
        "customer_email": "ada@example.com",
        "customer_firstname": "Ada",
        "customer_lastname": "Lovelace",
        "order_currency_code": currency,
        "base_currency_code": currency,
        "global_currency_code": currency,
        "base_to_order_rate": 1,
        "grand_total": float(grand),
        "base_grand_total": float(grand),
        "subtotal": float(sub_ex),
        "subtotal_incl_tax": float(sub_inc),
        "tax_amount": float(tax_total),
        "discount_amount": -float(Decimal(discount)),
        "shipping_amount": float(ship_ex),
        "shipping_incl_tax": float(ship_inc),
        "shipping_description": "Flat Rate - Fixed",
        "total_paid": float(grand) if paid else 0.0,
        "total_refunded": 0.0,
        "total_qty_ordered": sum(qty for _, qty, _ in lines),
        "ext_order_id": None,
        "items": items,
        "billing_address": {"address_type": "billing", **address},
        "payment": {
            "method": "braintree" if paid else "checkmo",
            "amount_ordered": float(grand),
            "amount_paid": float(grand) if paid else 0.0,
            "last_trans_id": "txn-1" if paid else None,
            "additional_information": [],
        },
        "status_histories": [],
        "extension_attributes": {
            "shipping_assignments": [
                {
                    "shipping": {
                        "address": {"address_type": "shipping", **address},
                        "method": "flatrate_flatrate",
                        "total": {"shipping_amount": float(ship_ex)},
                    },
                    "items": [],
                }
            ],
            "applied_taxes": [],
            "item_applied_taxes": [],
        },
    }
