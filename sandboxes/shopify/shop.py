"""The sandbox shop's state: orders, fulfillment orders, fulfillments, refunds and inventory.

An in-memory test and demo double of one Shopify store, shaped like the REST representation
in ``shared/contracts/shopify.md`` (integer ids, money as decimal strings, timestamps with
the shop's UTC offset). Every change happens under one re-entrant lock, so the shop can be
used from the sandbox's HTTP handlers, from test code and from other threads at once; what
it hands out are deep copies, never its own records.

Changes fire events (``orders/create``, ``orders/updated``, ``orders/cancelled``,
``fulfillments/create``, ``fulfillments/update``, ``refunds/create``,
``inventory_levels/update``) to subscribers such as
:class:`~sandboxes.shopify.webhooks.WebhookDeliverer`, in the order they
happened, each with the resource's JSON frozen at trigger time (Shopify retries deliver the
original payload).

Refusals raise :class:`ShopError`, carrying the HTTP status and the ``{"errors": ...}`` body
Shopify would answer with.
"""

from __future__ import annotations

import copy
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from canonical.money import minor_units, quantum
from sandboxes.shopify.ratelimit import (
    DEFAULT_BUCKET_SIZE,
    DEFAULT_COST_MAXIMUM,
    DEFAULT_COST_RESTORE_PER_S,
    DEFAULT_LEAK_PER_S,
    CostBucket,
    LeakyBucket,
)

Json = dict[str, Any]
ErrorBody = str | dict[str, list[str]]
EventListener = Callable[["ShopEvent"], None]

DEFAULT_DOMAIN = "retail-connect-sandbox.myshopify.com"
DEFAULT_ACCESS_TOKEN = "shpat_sandbox_access_token"
DEFAULT_LOCATIONS = ("WH-EAST", "WH-WEST")
DEFAULT_TZ = timezone(timedelta(hours=-5))
SUPPORTED_API_VERSIONS = ("2025-01", "2025-04", "2025-07", "2025-10", "2026-01", "2026-04", "unstable")
CANCEL_REASONS = frozenset({"customer", "fraud", "inventory", "declined", "other", "staff"})
RESTOCK_TYPES = frozenset({"no_restock", "cancel", "return", "legacy_restock"})
_VERSION = re.compile(r"^(?:\d{4}-(?:01|04|07|10)|unstable)$")
_OPEN_FO = ("open", "in_progress")

TOPIC_ORDER_CREATE = "orders/create"
TOPIC_ORDER_UPDATED = "orders/updated"
TOPIC_ORDER_CANCELLED = "orders/cancelled"
TOPIC_FULFILLMENT_CREATE = "fulfillments/create"
TOPIC_FULFILLMENT_UPDATE = "fulfillments/update"
TOPIC_REFUND_CREATE = "refunds/create"
TOPIC_INVENTORY_UPDATE = "inventory_levels/update"


class ShopError(Exception):
    """A refusal in Shopify's terms: the HTTP status and the ``errors`` value of the body.

    ``errors`` is a string (``"Not Found"``) or field -> messages (422 validation), the two
    documented REST shapes.
    """

    def __init__(self, status: int, errors: ErrorBody) -> None:
        super().__init__(f"{status}: {errors}")
        self.status = status
        self.errors = errors

    @property
    def body(self) -> Json:
        return {"errors": self.errors}


def not_found() -> ShopError:
    return ShopError(404, "Not Found")


def invalid(field: str, message: str) -> ShopError:
    return ShopError(422, {field: [message]})


@dataclass(frozen=True)
class ShopEvent:
    """Something that happened in the shop, as a webhook would carry it.

    ``body`` is the resource's JSON at trigger time: every delivery of the event (duplicates
    and retries included) sends exactly these bytes.
    """

    event_id: str
    topic: str
    triggered_at: datetime
    body: bytes
    order_id: int | None
    sequence: int


@dataclass(frozen=True)
class Location:
    id: int
    name: str

    def as_json(self) -> Json:
        return {
            "id": self.id,
            "name": self.name,
            "active": True,
            "legacy": False,
            "country_code": "US",
            "admin_graphql_api_id": f"gid://shopify/Location/{self.id}",
        }


@dataclass
class _Item:
    """A SKU the shop sells: one product with one variant, tracked by one inventory item."""

    sku: str
    title: str
    price: str
    product_id: int
    variant_id: int
    inventory_item_id: int


def _int(value: Any) -> int | None:
    """An integer id from JSON (an int, or a string of digits); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def parse_time(value: str, tz: tzinfo = DEFAULT_TZ) -> datetime:
    """An ISO-8601 timestamp; one without an offset is read in the shop's time zone."""
    at = datetime.fromisoformat(value.strip())
    return at if at.tzinfo is not None else at.replace(tzinfo=tz)


class SandboxShop:
    """One Shopify store in memory: the state behind the sandbox's Admin API and webhooks.

    ``clock`` gives the time stamped on changes (``updated_at`` etc.); ``monotonic`` drives
    the rate limiter. Both are injectable so tests are exact. ``seed`` makes event ids
    reproducible.
    """

    def __init__(
        self,
        *,
        domain: str = DEFAULT_DOMAIN,
        access_tokens: Iterable[str] = (DEFAULT_ACCESS_TOKEN,),
        locations: Sequence[str] = DEFAULT_LOCATIONS,
        default_location: str | None = None,
        currency: str = "USD",
        timezone: tzinfo = DEFAULT_TZ,
        api_versions: Sequence[str] = SUPPORTED_API_VERSIONS,
        bucket_size: int = DEFAULT_BUCKET_SIZE,
        leak_per_s: float = DEFAULT_LEAK_PER_S,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        seed: int = 0,
        graphql_cost_maximum: float = DEFAULT_COST_MAXIMUM,
        graphql_restore_per_s: float = DEFAULT_COST_RESTORE_PER_S,
        graphql_throttle_status: int = 200,
    ) -> None:
        if not locations:
            raise ValueError("a shop needs at least one location")
        minor_units(currency)
        for v in api_versions:
            if not _VERSION.match(v):
                raise ValueError(f"{v!r} is not a Shopify API version (YYYY-01/04/07/10 or unstable)")
        self.domain = domain
        self.shop_id = 60_000_000_000 + random.Random(domain).randrange(1_000_000_000)
        self.currency = currency
        self.tz = timezone
        self.api_versions = tuple(sorted(v for v in api_versions if v != "unstable")) + tuple(
            v for v in api_versions if v == "unstable"
        )
        self.rate_limiter = LeakyBucket(bucket_size, leak_per_s, monotonic)
        self.graphql_limiter = CostBucket(graphql_cost_maximum, graphql_restore_per_s, monotonic)
        # Shopify answers THROTTLED with HTTP 200 as a rule; 429 is reported too (the contract).
        self.graphql_throttle_status = graphql_throttle_status
        self.graphql_throttled = 0  # THROTTLED answers given (tests, the demo's summary)
        self.adjustment_groups: list[Json] = []  # every applied inventorySetQuantities, in order
        self._idempotent: dict[str, tuple[str, Json]] = {}  # @idempotent key -> (input, payload)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._tokens = set(access_tokens)
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._next_ids: dict[str, int] = {}
        self._locations = [Location(self._new_id("location", 71_000_000_000), name) for name in locations]
        default = default_location or self._locations[0].name
        self._default_location = self._location_named(default)
        if self._default_location is None:
            raise ValueError(f"default location {default!r} is not one of {list(locations)}")
        self._orders: dict[int, Json] = {}
        self._fulfillment_orders: dict[int, Json] = {}
        self._fulfillments: dict[int, Json] = {}
        self._refunds: dict[int, Json] = {}
        self._transactions: dict[int, list[Json]] = {}
        self._items: dict[str, _Item] = {}
        self._levels: dict[tuple[int, int], Json] = {}
        self._listeners: list[EventListener] = []
        self._events: list[ShopEvent] = []

    # -- plumbing ----------------------------------------------------------------------

    def _new_id(self, kind: str, base: int) -> int:
        n = self._next_ids.get(kind, 0) + 1
        self._next_ids[kind] = n
        return base + n

    def _now(self) -> datetime:
        return self._clock().astimezone(self.tz).replace(microsecond=0)

    def _iso(self, at: datetime) -> str:
        return at.astimezone(self.tz).isoformat(timespec="seconds")

    def _money(self, amount: Decimal) -> str:
        return str(amount.quantize(quantum(self.currency)))

    def _bag(self, amount: Decimal) -> Json:
        money = {"amount": self._money(amount), "currency_code": self.currency}
        return {"shop_money": money, "presentment_money": dict(money)}

    def _location_named(self, name: str) -> Location | None:
        return next((loc for loc in self._locations if loc.name == name), None)

    def _location(self, location_id: int) -> Location | None:
        return next((loc for loc in self._locations if loc.id == location_id), None)

    def _order(self, order_id: int) -> Json:
        order = self._orders.get(order_id)
        if order is None:
            raise not_found()
        return order

    def _emit(self, topic: str, resource: Json, order_id: int | None, at: datetime) -> None:
        event = ShopEvent(
            event_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            topic=topic,
            triggered_at=at.astimezone(UTC),
            body=json.dumps(resource, separators=(",", ":")).encode("utf-8"),
            order_id=order_id,
            sequence=len(self._events) + 1,
        )
        self._events.append(event)
        for listener in list(self._listeners):
            listener(event)

    # -- access, versions, locations ----------------------------------------------------

    def is_valid_token(self, token: str | None) -> bool:
        return bool(token) and token in self._tokens

    def add_access_token(self, token: str) -> None:
        with self._lock:
            self._tokens.add(token)

    def resolve_version(self, requested: str) -> str | None:
        """The API version that serves ``requested``; None when it is not a version at all.

        A supported version serves itself; any other well-formed one (removed, or not yet
        released) is served by the oldest supported version, as Shopify does.
        """
        if not _VERSION.match(requested):
            return None
        if requested in self.api_versions:
            return requested
        return self.api_versions[0]

    def locations(self) -> list[Location]:
        return list(self._locations)

    def location_id(self, name: str) -> int:
        loc = self._location_named(name)
        if loc is None:
            raise KeyError(f"no location named {name!r}")
        return loc.id

    # -- events -------------------------------------------------------------------------

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` with every later event (under the shop's lock: keep it quick).

        Returns the function that unsubscribes it.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def events(self) -> list[ShopEvent]:
        with self._lock:
            return list(self._events)

    # -- catalog and inventory ----------------------------------------------------------

    def register_sku(self, sku: str, *, title: str | None = None, price: str | None = None) -> int:
        """Make ``sku`` known (one product, one variant); returns its inventory item id."""
        if not sku:
            raise ValueError("a SKU is required")
        with self._lock:
            item = self._items.get(sku)
            if item is None:
                item = _Item(
                    sku=sku,
                    title=title or sku,
                    price=price or "0.00",
                    product_id=self._new_id("product", 8_900_000_000_000),
                    variant_id=self._new_id("variant", 45_900_000_000_000),
                    inventory_item_id=self._new_id("inventory_item", 47_900_000_000_000),
                )
                self._items[sku] = item
            return item.inventory_item_id

    def inventory_item_id(self, sku: str) -> int | None:
        with self._lock:
            item = self._items.get(sku)
            return item.inventory_item_id if item else None

    def sku_of(self, inventory_item_id: int) -> str | None:
        with self._lock:
            return next(
                (i.sku for i in self._items.values() if i.inventory_item_id == inventory_item_id), None
            )

    def products(self) -> list[Json]:
        """Products as ``GET products.json`` shows them (one variant each)."""
        with self._lock:
            return [
                {
                    "id": i.product_id,
                    "title": i.title,
                    "handle": re.sub(r"[^a-z0-9]+", "-", i.title.lower()).strip("-"),
                    "status": "active",
                    "admin_graphql_api_id": f"gid://shopify/Product/{i.product_id}",
                    "variants": [
                        {
                            "id": i.variant_id,
                            "product_id": i.product_id,
                            "title": "Default Title",
                            "sku": i.sku,
                            "price": i.price,
                            "inventory_item_id": i.inventory_item_id,
                            "inventory_management": "shopify",
                            "admin_graphql_api_id": f"gid://shopify/ProductVariant/{i.variant_id}",
                        }
                    ],
                }
                for i in self._items.values()
            ]

    def seed_catalog(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Register products from rows with ``sku``, ``title`` and ``price`` (e.g. ``demo_catalog()``)."""
        for row in rows:
            self.register_sku(str(row["sku"]), title=row.get("title"), price=row.get("price"))

    def seed_stock(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Set levels from rows with ``sku``, ``location`` (name) and ``on_hand`` (``demo_stock()``)."""
        for row in rows:
            self.set_available(str(row["sku"]), str(row["location"]), int(row["on_hand"]))

    def set_available(self, sku: str, location: str, available: int) -> Json:
        """Set a SKU's available quantity at a location by name (registers the SKU)."""
        with self._lock:
            loc = self._location_named(location)
            if loc is None:
                raise invalid("location_id", f"no location named {location!r}")
            return self.set_inventory_level(
                {"inventory_item_id": self.register_sku(sku), "location_id": loc.id, "available": available}
            )

    def set_inventory_level(self, body: Mapping[str, Any]) -> Json:
        """``POST inventory_levels/set.json``: an absolute set (naturally idempotent)."""
        ids: dict[str, int] = {}
        for key in ("location_id", "inventory_item_id", "available"):
            if body.get(key) is None:
                raise invalid(key, "is required")
            value = _int(body.get(key))
            if value is None:
                raise invalid(key, "must be an integer")
            ids[key] = value
        with self._lock:
            if self._location(ids["location_id"]) is None:
                raise invalid("location_id", f"location {ids['location_id']} does not exist")
            if self.sku_of(ids["inventory_item_id"]) is None:
                raise invalid(
                    "inventory_item_id", f"inventory item {ids['inventory_item_id']} does not exist"
                )
            now = self._now()
            item_id, location_id = ids["inventory_item_id"], ids["location_id"]
            level = {
                "inventory_item_id": item_id,
                "location_id": location_id,
                "available": ids["available"],
                "updated_at": self._iso(now),
                "admin_graphql_api_id": (
                    f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={item_id}"
                ),
            }
            self._levels[(item_id, location_id)] = level
            self._emit(TOPIC_INVENTORY_UPDATE, level, None, now)
            return copy.deepcopy(level)

    def inventory_levels(
        self, inventory_item_ids: Iterable[int] | None = None, location_ids: Iterable[int] | None = None
    ) -> list[Json]:
        """``GET inventory_levels.json``: levels of these items and/or at these locations."""
        items = set(inventory_item_ids) if inventory_item_ids is not None else None
        locs = set(location_ids) if location_ids is not None else None
        if items is None and locs is None:
            raise invalid("base", "inventory_item_ids or location_ids must be given")
        with self._lock:
            return [
                copy.deepcopy(level)
                for (item_id, loc_id), level in sorted(self._levels.items())
                if (items is None or item_id in items) and (locs is None or loc_id in locs)
            ]

    def available(self, sku: str, location: str) -> int | None:
        """The available quantity of ``sku`` at ``location`` (by name); None when never set."""
        with self._lock:
            item, loc = self._items.get(sku), self._location_named(location)
            if item is None or loc is None:
                return None
            level = self._levels.get((item.inventory_item_id, loc.id))
            return int(level["available"]) if level else None

    def adjust_available(self, sku: str, location: str, delta: int) -> Json:
        """Move a SKU's available by ``delta`` at a location, as a POS sale (negative) or a manual
        edit in the Shopify admin would: the platform hears of it only by reading or comparing."""
        with self._lock:
            current = self.available(sku, location) or 0
            return self.set_available(sku, location, current + delta)

    def pos_sale(self, sku: str, location: str, quantity: int = 1) -> Json:
        """Sell ``quantity`` units at a store's till (Shopify POS): available drops at that location,
        even below zero (Shopify lets a location oversell), and ``inventory_levels/update`` fires.
        No order reaches the platform for it; the level is all it hears."""
        if quantity < 1:
            raise ValueError("a sale is of at least one unit")
        return self.adjust_available(sku, location, -quantity)

    def set_inventory_quantities(self, data: Any, api_version: str, idempotency_key: str | None) -> Json:
        """The ``inventorySetQuantities`` mutation's payload (``inventoryAdjustmentGroup``,
        ``userErrors``) for ``data`` (the ``input`` variable).

        Compare-and-set: up to 2026-01 every quantity needs ``compareQuantity`` unless
        ``ignoreCompareQuantity`` is true; from 2026-04 every quantity must carry
        ``changeFromQuantity`` (``null`` skips the check). Any userError changes nothing (all or
        nothing). A level the shop never had compares as 0. A known ``@idempotent`` key with the
        same input answers the original payload without applying again; with another input it is
        ``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``.
        """
        fingerprint = json.dumps(data, sort_keys=True, default=str)
        with self._lock:
            if idempotency_key is not None and idempotency_key in self._idempotent:
                seen, payload = self._idempotent[idempotency_key]
                if seen == fingerprint:
                    return copy.deepcopy(payload)
                return _payload(
                    [
                        _user_error(
                            "IDEMPOTENCY_KEY_PARAMETER_MISMATCH", ["input"], "key reused with other input"
                        )
                    ]
                )
            payload = self._set_quantities(data, api_version)
            if idempotency_key is not None:
                self._idempotent[idempotency_key] = (fingerprint, copy.deepcopy(payload))
            return payload

    def _set_quantities(self, data: Any, api_version: str) -> Json:
        if not isinstance(data, dict) or not isinstance(data.get("quantities"), list):
            return _payload([_user_error(None, ["input"], "quantities are required")])
        new_style = api_version == "unstable" or api_version >= "2026-04"
        ignore = bool(data.get("ignoreCompareQuantity")) and not new_style
        errors: list[Json] = []
        if data.get("name") not in ("available", "on_hand"):
            errors.append(
                _user_error("INVALID_NAME", ["input", "name"], "The quantity name must be 'available'")
            )
        if not isinstance(data.get("reason"), str) or not data["reason"]:
            errors.append(
                _user_error("INVALID_REASON", ["input", "reason"], "The specified reason is invalid.")
            )
        changes: list[tuple[tuple[int, int], int, int]] = []
        for n, q in enumerate(data["quantities"]):
            path = ["input", "quantities", str(n)]
            item = _gid(q.get("inventoryItemId") if isinstance(q, dict) else None, "InventoryItem")
            loc = _gid(q.get("locationId") if isinstance(q, dict) else None, "Location")
            qty = q.get("quantity") if isinstance(q, dict) else None
            if item is None or self.sku_of(item) is None:
                errors.append(_user_error("INVALID_INVENTORY_ITEM", [*path, "inventoryItemId"], "not found"))
                continue
            if loc is None or self._location(loc) is None:
                errors.append(_user_error("INVALID_LOCATION", [*path, "locationId"], "not found"))
                continue
            if not isinstance(qty, int) or isinstance(qty, bool) or qty < 0:
                errors.append(
                    _user_error("INVALID_QUANTITY_NEGATIVE", [*path, "quantity"], "can't be negative")
                )
                continue
            level = self._levels.get((item, loc))
            persisted = int(level["available"]) if level else 0
            field = "changeFromQuantity" if new_style else "compareQuantity"
            if new_style and field not in q:
                errors.append(
                    _user_error(None, [*path, field], "changeFromQuantity must be given (null opts out)")
                )
                continue
            expected = q.get(field)
            if not new_style and expected is None and not ignore:
                errors.append(
                    _user_error(
                        "COMPARE_QUANTITY_REQUIRED",
                        [*path, field],
                        "The compareQuantity argument must be given to each quantity or ignored using "
                        "ignoreCompareQuantity.",
                    )
                )
                continue
            if expected is not None and not ignore and int(expected) != persisted:
                code = "CHANGE_FROM_QUANTITY_STALE" if new_style else "COMPARE_QUANTITY_STALE"
                errors.append(
                    _user_error(code, [*path, field], f"The {field} value does not match persisted value.")
                )
                continue
            changes.append(((item, loc), persisted, qty))
        if errors:
            return _payload(errors)
        now = self._now()
        group_id = self._new_id("inventory_adjustment_group", 90_000_000_000)
        recorded: list[Json] = []
        for (item, loc), before, after in changes:
            level = {
                "inventory_item_id": item,
                "location_id": loc,
                "available": after,
                "updated_at": self._iso(now),
                "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{loc}?inventory_item_id={item}",
            }
            self._levels[(item, loc)] = level
            self._emit(TOPIC_INVENTORY_UPDATE, level, None, now)
            recorded.append({"name": data["name"], "delta": after - before, "quantityAfterChange": after})
        group = {
            "id": f"gid://shopify/InventoryAdjustmentGroup/{group_id}",
            "reason": data["reason"],
            "referenceDocumentUri": data.get("referenceDocumentUri"),
            "changes": recorded,
        }
        self.adjustment_groups.append(copy.deepcopy(group))
        return {"inventoryAdjustmentGroup": group, "userErrors": []}

    # -- orders -------------------------------------------------------------------------

    def create_order(self, payload: Mapping[str, Any] | None = None) -> Json:
        """Place an order (e.g. a ``generate_orders`` payload); fires ``orders/create``.

        Missing ids, numbers and timestamps are filled in; ``updated_at`` is always now.
        Shopify-side records follow: one fulfillment order at the order's location (or the
        default one) for the lines that need shipping, and a ``sale`` (``paid``) or
        ``authorization`` (``authorized``) transaction for the total.
        """
        order: Json = copy.deepcopy(dict(payload or {}))
        with self._lock:
            now = self._now()
            order_id = _int(order.get("id")) if order.get("id") is not None else None
            if order.get("id") is not None and order_id is None:
                raise invalid("id", "must be an integer")
            if order_id is None:
                order_id = self._new_id("order", 5_900_000_000_000)
            if order_id in self._orders:
                raise invalid("id", "has already been taken")
            order["id"] = order_id
            number = _int(order.get("order_number"))
            if number is None:
                number = (
                    max((int(o.get("order_number") or 1000) for o in self._orders.values()), default=1000) + 1
                )
                order["order_number"] = number
            order.setdefault("name", f"#{number}")
            order.setdefault("admin_graphql_api_id", f"gid://shopify/Order/{order_id}")
            order.setdefault("created_at", self._iso(now))
            order.setdefault("processed_at", order["created_at"])
            order["updated_at"] = self._iso(now)
            for key, default in (
                ("cancelled_at", None),
                ("cancel_reason", None),
                ("closed_at", None),
                ("currency", self.currency),
                ("financial_status", "paid"),
                ("fulfillment_status", None),
                ("line_items", []),
                ("fulfillments", []),
                ("refunds", []),
                ("payment_gateway_names", ["manual"]),
            ):
                order.setdefault(key, default)
            for line in order["line_items"]:
                if _int(line.get("id")) is None:
                    line["id"] = self._new_id("line_item", 13_900_000_000_000)
                line.setdefault("quantity", 1)
                line.setdefault("fulfillable_quantity", line["quantity"])
                line.setdefault("fulfillment_status", None)
                if line.get("sku"):
                    self.register_sku(str(line["sku"]), title=line.get("title"), price=line.get("price"))
            self._orders[order_id] = order
            self._open_fulfillment_order(order, now)
            self._opening_transactions(order, now)
            self._emit(TOPIC_ORDER_CREATE, order, order_id, now)
            return copy.deepcopy(order)

    def _open_fulfillment_order(self, order: Json, now: datetime) -> None:
        location = self._location(_int(order.get("location_id")) or 0) or self._default_location
        assert location is not None
        fo_id = self._new_id("fulfillment_order", 6_900_000_000_000)
        lines = []
        for line in order["line_items"]:
            if line.get("requires_shipping") is False or int(line["quantity"]) <= 0:
                continue
            sku = line.get("sku")
            lines.append(
                {
                    "id": self._new_id("fulfillment_order_line_item", 15_900_000_000_000),
                    "shop_id": self.shop_id,
                    "fulfillment_order_id": fo_id,
                    "line_item_id": line["id"],
                    "inventory_item_id": self.inventory_item_id(str(sku)) if sku else None,
                    "quantity": int(line["quantity"]),
                    "fulfillable_quantity": int(line["quantity"]),
                    "variant_id": line.get("variant_id"),
                }
            )
        if not lines:
            return
        self._fulfillment_orders[fo_id] = {
            "id": fo_id,
            "shop_id": self.shop_id,
            "order_id": order["id"],
            "assigned_location_id": location.id,
            "request_status": "unsubmitted",
            "status": "open",
            "supported_actions": ["create_fulfillment", "move"],
            "destination": copy.deepcopy(order.get("shipping_address")),
            "line_items": lines,
            "fulfill_at": self._iso(now),
            "fulfillment_holds": [],
            "merchant_requests": [],
            "assigned_location": {"location_id": location.id, "name": location.name, "country_code": "US"},
            "created_at": self._iso(now),
            "updated_at": self._iso(now),
        }

    def _opening_transactions(self, order: Json, now: datetime) -> None:
        kind = {"paid": "sale", "partially_paid": "sale", "authorized": "authorization"}.get(
            str(order.get("financial_status"))
        )
        txns: list[Json] = []
        total = _decimal(order.get("total_price"))
        if kind is not None and total is not None and total > 0:
            gateways = order.get("payment_gateway_names") or ["manual"]
            txns.append(self._transaction(order, kind, total, str(gateways[0]), None, now))
        self._transactions[order["id"]] = txns

    def _transaction(
        self, order: Json, kind: str, amount: Decimal, gateway: str, parent_id: int | None, now: datetime
    ) -> Json:
        txn_id = self._new_id("transaction", 7_100_000_000_000)
        return {
            "id": txn_id,
            "order_id": order["id"],
            "kind": kind,
            "status": "success",
            "amount": self._money(amount),
            "currency": order.get("currency", self.currency),
            "gateway": gateway,
            "parent_id": parent_id,
            "authorization": f"sandbox-{txn_id}" if kind in ("authorization", "sale") else None,
            "processed_at": self._iso(now),
            "created_at": self._iso(now),
            "test": True,
            "error_code": None,
            "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{txn_id}",
        }

    def update_order(self, order_id: int, changes: Mapping[str, Any]) -> Json:
        """Change top-level fields of an order (not its id); fires ``orders/updated``."""
        if "id" in changes:
            raise invalid("id", "cannot be changed")
        with self._lock:
            order = self._order(order_id)
            now = self._now()
            order.update(copy.deepcopy(dict(changes)))
            order["updated_at"] = self._iso(now)
            self._emit(TOPIC_ORDER_UPDATED, order, order_id, now)
            return copy.deepcopy(order)

    def cancel_order(self, order_id: int, reason: str = "other") -> Json:
        """``POST orders/{id}/cancel.json``; fires ``orders/cancelled`` and ``orders/updated``.

        Refused (422) for an order already cancelled, or one fulfilled in whole or in part
        (Shopify stopped allowing that in 2018). An uncaptured authorization is voided.
        """
        if reason not in CANCEL_REASONS:
            raise invalid("reason", f"must be one of {', '.join(sorted(CANCEL_REASONS))}")
        with self._lock:
            order = self._order(order_id)
            if order.get("cancelled_at"):
                raise invalid("base", "Order has already been cancelled")
            if any(f.get("status") == "success" for f in order.get("fulfillments") or []):
                raise invalid("base", "Cannot cancel an order that has been fulfilled or partially fulfilled")
            now = self._now()
            order["cancelled_at"] = self._iso(now)
            order["cancel_reason"] = reason
            order["updated_at"] = self._iso(now)
            for line in order["line_items"]:
                line["fulfillable_quantity"] = 0
            for fo in self._fulfillment_orders.values():
                if fo["order_id"] == order_id and fo["status"] in _OPEN_FO:
                    fo["status"] = "closed"
                    fo["updated_at"] = self._iso(now)
            if order.get("financial_status") == "authorized":
                order["financial_status"] = "voided"
                for auth in [t for t in self._transactions.get(order_id, []) if t["kind"] == "authorization"]:
                    self._transactions[order_id].append(
                        self._transaction(
                            order, "void", Decimal(auth["amount"]), auth["gateway"], auth["id"], now
                        )
                    )
            self._emit(TOPIC_ORDER_CANCELLED, order, order_id, now)
            self._emit(TOPIC_ORDER_UPDATED, order, order_id, now)
            return copy.deepcopy(order)

    def order(self, order_id: int) -> Json:
        with self._lock:
            return copy.deepcopy(self._order(order_id))

    def orders(self) -> list[Json]:
        with self._lock:
            return [copy.deepcopy(o) for o in self._orders.values()]

    def transactions(self, order_id: int) -> list[Json]:
        with self._lock:
            self._order(order_id)
            return copy.deepcopy(self._transactions.get(order_id, []))

    # -- fulfillment --------------------------------------------------------------------

    def fulfillment_orders(self, order_id: int) -> list[Json]:
        with self._lock:
            self._order(order_id)
            return [
                copy.deepcopy(fo) for fo in self._fulfillment_orders.values() if fo["order_id"] == order_id
            ]

    def fulfillments(self, order_id: int) -> list[Json]:
        with self._lock:
            return copy.deepcopy(self._order(order_id).get("fulfillments") or [])

    def create_fulfillment(self, body: Mapping[str, Any]) -> Json:
        """``POST fulfillments.json`` (fulfillment-order based); fires ``fulfillments/create``.

        All fulfillment orders must belong to one order and one location; omitting
        ``fulfillment_order_line_items`` fulfils everything that remains. Nothing changes
        unless the whole request is valid.
        """
        request = body.get("fulfillment")
        if not isinstance(request, dict):
            raise ShopError(400, {"fulfillment": ["Required parameter missing or invalid"]})
        groups = request.get("line_items_by_fulfillment_order")
        if not isinstance(groups, list) or not groups:
            raise invalid("line_items_by_fulfillment_order", "must contain at least one fulfillment order")
        tracking = request.get("tracking_info") or {}
        if not isinstance(tracking, dict):
            raise invalid("tracking_info", "must be an object")
        with self._lock:
            picks: list[tuple[Json, Json, int]] = []  # fulfillment order, its line, quantity
            for g, group in enumerate(groups):
                fo_id = _int(group.get("fulfillment_order_id")) if isinstance(group, dict) else None
                fo = self._fulfillment_orders.get(fo_id) if fo_id is not None else None
                if fo is None or not isinstance(group, dict):
                    raise invalid(
                        "fulfillment_order_id", f"fulfillment order {fo_id} does not exist (group {g})"
                    )
                if fo["status"] not in _OPEN_FO:
                    raise invalid(
                        "base", f"Fulfillment order {fo['id']} has an unfulfillable status= {fo['status']}."
                    )
                wanted = group.get("fulfillment_order_line_items")
                if wanted is None:
                    picks += [
                        (fo, li, li["fulfillable_quantity"])
                        for li in fo["line_items"]
                        if li["fulfillable_quantity"]
                    ]
                    continue
                if not isinstance(wanted, list):
                    raise invalid("fulfillment_order_line_items", "must be a list")
                for w in wanted:
                    li_id = _int(w.get("id")) if isinstance(w, dict) else None
                    line = next((li for li in fo["line_items"] if li["id"] == li_id), None)
                    qty = _int(w.get("quantity")) if isinstance(w, dict) else None
                    if line is None:
                        raise invalid(
                            "fulfillment_order_line_items",
                            f"line item {li_id} is not in fulfillment order {fo['id']}",
                        )
                    already = sum(q for f, li, q in picks if li is line)
                    if qty is None or qty <= 0 or qty + already > line["fulfillable_quantity"]:
                        raise invalid(
                            "fulfillment_order_line_items",
                            f"Invalid fulfillment order line item quantity requested: {qty} of line {li_id}"
                            f" ({line['fulfillable_quantity']} fulfillable)",
                        )
                    picks.append((fo, line, qty))
            if not picks:
                raise invalid("base", "Nothing left to fulfill in these fulfillment orders")
            if (
                len({fo["order_id"] for fo, _, _ in picks}) > 1
                or len({fo["assigned_location_id"] for fo, _, _ in picks}) > 1
            ):
                raise invalid(
                    "base",
                    "All fulfillment orders must belong to the same order"
                    " and be assigned to the same location",
                )
            fo0 = picks[0][0]
            order = self._order(fo0["order_id"])
            now = self._now()
            shipped: dict[int, int] = {}
            for fo, line, qty in picks:
                line["fulfillable_quantity"] -= qty
                shipped[line["line_item_id"]] = shipped.get(line["line_item_id"], 0) + qty
                fo["status"] = (
                    "in_progress" if any(li["fulfillable_quantity"] for li in fo["line_items"]) else "closed"
                )
                fo["updated_at"] = self._iso(now)
            number = str(tracking["number"]) if tracking.get("number") not in (None, "") else None
            url = str(tracking["url"]) if tracking.get("url") else None
            fulfillment_id = self._new_id("fulfillment", 4_900_000_000_000)
            line_items = []
            for line in order["line_items"]:
                qty = shipped.get(line["id"], 0)
                if not qty:
                    continue
                line["fulfillable_quantity"] = max(0, int(line.get("fulfillable_quantity", 0)) - qty)
                line["fulfillment_status"] = "fulfilled" if line["fulfillable_quantity"] == 0 else "partial"
                line_items.append({**copy.deepcopy(line), "quantity": qty})
            fulfillment = {
                "id": fulfillment_id,
                "order_id": order["id"],
                "status": "success",
                "shipment_status": None,
                "service": "manual",
                "location_id": fo0["assigned_location_id"],
                "tracking_company": tracking.get("company"),
                "tracking_number": number,
                "tracking_numbers": [number] if number else [],
                "tracking_url": url,
                "tracking_urls": [url] if url else [],
                "name": f"{order.get('name', '#' + str(order['id']))}.{len(order['fulfillments']) + 1}",
                "created_at": self._iso(now),
                "updated_at": self._iso(now),
                "line_items": line_items,
                "origin_address": request.get("origin_address"),
                "receipt": {},
                "admin_graphql_api_id": f"gid://shopify/Fulfillment/{fulfillment_id}",
            }
            self._fulfillments[fulfillment_id] = fulfillment
            order["fulfillments"].append(fulfillment)
            shippable = [li for li in order["line_items"] if li.get("requires_shipping") is not False]
            order["fulfillment_status"] = (
                "fulfilled"
                if all(int(li.get("fulfillable_quantity", 0)) == 0 for li in shippable)
                else "partial"
            )
            order["updated_at"] = self._iso(now)
            self._emit(TOPIC_FULFILLMENT_CREATE, fulfillment, order["id"], now)
            self._emit(TOPIC_ORDER_UPDATED, order, order["id"], now)
            return copy.deepcopy(fulfillment)

    def fulfil_in_admin(
        self, order_id: int, *, tracking_number: str | None = None, company: str | None = None
    ) -> list[Json]:
        """The merchant ships everything still open from Shopify's admin (or a fulfillment app
        Shopify itself drives): one fulfillment per location, each firing ``fulfillments/create``."""
        with self._lock:
            open_fos = [
                fo
                for fo in self._fulfillment_orders.values()
                if fo["order_id"] == order_id and fo["status"] in _OPEN_FO
            ]
            if not open_fos:
                raise invalid("base", "Nothing left to fulfill for this order")
            by_location: dict[int, list[Json]] = {}
            for fo in open_fos:
                group = {"fulfillment_order_id": fo["id"]}
                by_location.setdefault(fo["assigned_location_id"], []).append(group)
            tracking = {"number": tracking_number, "company": company} if tracking_number else {}
            return [
                self.create_fulfillment(
                    {"fulfillment": {"line_items_by_fulfillment_order": groups, "tracking_info": tracking}}
                )
                for _, groups in sorted(by_location.items())
            ]

    def update_shipment_status(self, fulfillment_id: int, shipment_status: str) -> Json:
        """The carrier's progress as Shopify records it (``in_transit``, ``delivered``, ...) on a
        fulfillment; fires ``fulfillments/update``."""
        with self._lock:
            fulfillment = self._fulfillments.get(fulfillment_id)
            if fulfillment is None:
                raise not_found()
            now = self._now()
            fulfillment["shipment_status"] = shipment_status
            fulfillment["updated_at"] = self._iso(now)
            order = self._order(fulfillment["order_id"])
            for f in order["fulfillments"]:
                if f["id"] == fulfillment_id:
                    f.update(shipment_status=shipment_status, updated_at=fulfillment["updated_at"])
            self._emit(TOPIC_FULFILLMENT_UPDATE, fulfillment, order["id"], now)
            return copy.deepcopy(fulfillment)

    # -- refunds ------------------------------------------------------------------------

    def refunds(self, order_id: int) -> list[Json]:
        with self._lock:
            return copy.deepcopy(self._order(order_id).get("refunds") or [])

    def create_refund(self, order_id: int, body: Mapping[str, Any]) -> Json:
        """``POST orders/{id}/refunds.json``; fires ``refunds/create`` and ``orders/updated``.

        Each refund transaction needs the ``parent_id`` of a successful ``sale`` or
        ``capture`` of the order and may not take more than is left of it. Refund line items
        restocked (``return``/``cancel`` with a ``location_id``) go back to that location.
        """
        request = body.get("refund")
        if not isinstance(request, dict):
            raise ShopError(400, {"refund": ["Required parameter missing or invalid"]})
        with self._lock:
            order = self._order(order_id)
            currency = request.get("currency") or order.get("currency", self.currency)
            if currency != order.get("currency", self.currency):
                raise invalid("currency", f"{currency} is not the order's currency {order.get('currency')}")
            now = self._now()
            txns = self._transactions.setdefault(order_id, [])
            planned: list[tuple[Json, Decimal]] = []
            raw_txns = request.get("transactions") or []
            if not isinstance(raw_txns, list):
                raise invalid("transactions", "must be a list")
            for raw in raw_txns:
                if not isinstance(raw, dict) or raw.get("kind", "refund") != "refund":
                    raise invalid("transactions", "only kind=refund transactions can be created here")
                parent_id = _int(raw.get("parent_id"))
                parent = next(
                    (
                        t
                        for t in txns
                        if t["id"] == parent_id
                        and t["kind"] in ("sale", "capture")
                        and t["status"] == "success"
                    ),
                    None,
                )
                if parent is None:
                    raise invalid(
                        "transactions",
                        f"parent_id {parent_id} is not a successful sale or capture of this order",
                    )
                amount = _decimal(raw.get("amount"))
                if amount is None or amount <= 0 or amount != amount.quantize(quantum(str(currency))):
                    raise invalid(
                        "transactions", f"amount {raw.get('amount')!r} is not a positive {currency} amount"
                    )
                refunded = sum(
                    (
                        Decimal(t["amount"])
                        for t in txns
                        if t["kind"] == "refund" and t["parent_id"] == parent["id"]
                    ),
                    Decimal(0),
                ) + sum((a for p, a in planned if p is parent), Decimal(0))
                left = Decimal(parent["amount"]) - refunded
                if amount > left:
                    raise invalid(
                        "transactions",
                        f"Refund amount {amount} is greater than the {left} left"
                        f" on transaction {parent['id']}",
                    )
                planned.append((parent, amount))
            refund_lines = self._refund_lines(order, request.get("refund_line_items") or [])
            if not planned and not refund_lines:
                raise invalid("base", "A refund needs transactions or refund_line_items")
            refund_id = self._new_id("refund", 9_100_000_000_000)
            created = [self._transaction(order, "refund", a, p["gateway"], p["id"], now) for p, a in planned]
            txns.extend(created)
            for rli in refund_lines:
                rli["id"] = self._new_id("refund_line_item", 10_900_000_000_000)
                self._restock(rli, now)
            refund = {
                "id": refund_id,
                "order_id": order_id,
                "created_at": self._iso(now),
                "processed_at": self._iso(now),
                "note": request.get("note"),
                "restock": any(r["restock_type"] in ("return", "cancel") for r in refund_lines),
                "user_id": None,
                "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
                "refund_line_items": refund_lines,
                "refund_shipping_lines": [],
                "transactions": copy.deepcopy(created),
                "order_adjustments": [],
                "duties": [],
                "total_duties_set": self._bag(Decimal(0)),
                "additional_fees": [],
                "return": None,
            }
            self._refunds[refund_id] = refund
            order["refunds"].append(refund)
            paid = sum((Decimal(t["amount"]) for t in txns if t["kind"] in ("sale", "capture")), Decimal(0))
            back = sum((Decimal(t["amount"]) for t in txns if t["kind"] == "refund"), Decimal(0))
            if created:
                order["financial_status"] = "refunded" if back >= paid else "partially_refunded"
            order["updated_at"] = self._iso(now)
            self._emit(TOPIC_REFUND_CREATE, refund, order_id, now)
            self._emit(TOPIC_ORDER_UPDATED, order, order_id, now)
            return copy.deepcopy(refund)

    def _refund_lines(self, order: Json, raw_lines: Any) -> list[Json]:
        if not isinstance(raw_lines, list):
            raise invalid("refund_line_items", "must be a list")
        refunded: dict[int, int] = {}
        for r in order.get("refunds") or []:
            for rli in r.get("refund_line_items") or []:
                refunded[rli["line_item_id"]] = refunded.get(rli["line_item_id"], 0) + int(rli["quantity"])
        result: list[Json] = []
        for raw in raw_lines:
            line_id = _int(raw.get("line_item_id")) if isinstance(raw, dict) else None
            line = next((li for li in order["line_items"] if li["id"] == line_id), None)
            if line is None or not isinstance(raw, dict):
                raise invalid("refund_line_items", f"line item {line_id} is not in this order")
            qty = _int(raw.get("quantity"))
            left = int(line["quantity"]) - refunded.get(line["id"], 0)
            if qty is None or qty <= 0 or qty > left:
                raise invalid(
                    "refund_line_items", f"quantity {qty} of line item {line_id}: {left} can be refunded"
                )
            refunded[line["id"]] = refunded.get(line["id"], 0) + qty
            restock = raw.get("restock_type", "no_restock")
            if restock not in RESTOCK_TYPES:
                raise invalid(
                    "refund_line_items", f"restock_type {restock!r} is not one of {sorted(RESTOCK_TYPES)}"
                )
            location_id = _int(raw.get("location_id"))
            if location_id is not None and self._location(location_id) is None:
                raise invalid("refund_line_items", f"location {location_id} does not exist")
            subtotal = (_decimal(line.get("price")) or Decimal(0)) * qty
            result.append(
                {
                    "line_item_id": line["id"],
                    "quantity": qty,
                    "restock_type": restock,
                    "location_id": location_id,
                    "subtotal": float(subtotal),
                    "subtotal_set": self._bag(subtotal),
                    "total_tax": 0.0,
                    "total_tax_set": self._bag(Decimal(0)),
                    "line_item": copy.deepcopy(line),
                }
            )
        return result

    def _restock(self, rli: Json, now: datetime) -> None:
        sku = rli["line_item"].get("sku")
        if rli["restock_type"] not in ("return", "cancel") or rli["location_id"] is None or not sku:
            return
        item_id = self.register_sku(str(sku))
        key = (item_id, int(rli["location_id"]))
        level = self._levels.get(key)
        available = (int(level["available"]) if level else 0) + int(rli["quantity"])
        self._levels[key] = {
            "inventory_item_id": item_id,
            "location_id": key[1],
            "available": available,
            "updated_at": self._iso(now),
            "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{key[1]}?inventory_item_id={item_id}",
        }
        self._emit(TOPIC_INVENTORY_UPDATE, self._levels[key], None, now)


def _user_error(code: str | None, field: list[str], message: str) -> Json:
    return {"code": code, "field": field, "message": message}


def _payload(errors: list[Json]) -> Json:
    return {"inventoryAdjustmentGroup": None, "userErrors": errors}


def _gid(value: Any, kind: str) -> int | None:
    """The numeric id of ``gid://shopify/<kind>/<id>``; None when it is not one."""
    prefix = f"gid://shopify/{kind}/"
    if not isinstance(value, str) or not value.startswith(prefix) or not value[len(prefix) :].isdigit():
        return None
    return int(value[len(prefix) :])


def _decimal(value: Any) -> Decimal | None:
    """A decimal from a JSON string or number; None when it is not one."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return result if result.is_finite() else None
