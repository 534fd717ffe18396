"""The Shopify channel over the REST Admin API: ``ChannelPort`` plus order sync and inventory.

Follows ``shared/contracts/shopify.md``. Decisions stated once here:

* **Errors say whether to retry, and this class never retries.** 429 is
  :class:`RateLimitedError` with the ``Retry-After`` delay; 5xx, 408/409, timeouts and
  connection failures are :class:`TransientError`; 401/402/403/404/422/423 and other 4xx are
  :class:`PermanentError` with a ``shopify_*`` reason. Temporal does the retrying.
* **Idempotency without idempotency keys.** Shopify's REST API takes no key for
  fulfillments, refunds or cancellations, so each call looks before it writes:

  - a fulfillment carries a *marker* in its tracking number (the shipment's first tracking
    number, which a carrier never reuses, or the shipment id when it has none); quantities
    already fulfilled under that marker are not fulfilled again, so a retry after a lost
    answer (or after some of several fulfillments went through) creates only what is
    missing;
  - a refund's ``note`` ends with ``[<idempotency key>]``; a refund with that note is the
    answer to a retry (a different amount under the same key is refused);
  - an order already cancelled is not cancelled again.

  Two *concurrent* calls for the same shipment or refund could both write; Temporal does
  not run one activity twice at once, which is what this relies on.
* **Shipments to fulfillment orders.** A shipment's lines (Shopify line item ids) are taken
  from open fulfillment orders, those at the shipment's location first; Shopify requires
  one location per fulfillment, so lines spread over locations become one fulfillment per
  location, each with the marker. The tracking company is the shipment's carrier.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import structlog

from adapters.channels.port import ChannelOrder, ChannelOrderPage, order_summary
from adapters.channels.shopify.mapping import order_from_shopify
from adapters.errors import CompareMismatchError, PermanentError, RateLimitedError, TransientError
from canonical import ChannelAvailability, Money, Shipment
from canonical.documents import ChannelAck
from canonical.returns import ReturnNotice

log = structlog.get_logger(__name__)

SYSTEM = "shopify"
DEFAULT_API_VERSION = "2025-07"
PAGE_SIZE = 250
CANCEL_REASONS = frozenset({"customer", "fraud", "inventory", "declined", "other", "staff"})
DEFAULT_RETRY_AFTER_S = 2.0
INVENTORY_APIS = ("graphql", "rest")
# Compare-and-set: a stale compare value is one of these codes (or a userError on that field).
_STALE_CODES = frozenset({"COMPARE_QUANTITY_STALE", "CHANGE_FROM_QUANTITY_STALE"})
_COMPARE_FIELDS = frozenset({"compareQuantity", "changeFromQuantity"})
# A fixed namespace so the same push (key and variables) always gets the same @idempotent UUID.
_IDEMPOTENT_NS = uuid.UUID("5b0f3c1e-7a4d-5c8e-9f21-3d6a0b7e4c11")
SET_QUANTITIES_MUTATION = """mutation SetAvailable($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id reason referenceDocumentUri changes { name delta quantityAfterChange } }
    userErrors { code field message }
  }
}"""
_DONE_FULFILLMENT = frozenset({"cancelled", "error", "failure"})
_PERMANENT_REASONS = {
    400: "shopify_bad_request",
    401: "shopify_unauthorized",
    402: "shopify_payment_required",
    403: "shopify_forbidden",
    404: "shopify_not_found",
    406: "shopify_bad_request",
    422: "shopify_invalid",
    423: "shopify_locked",
}

Json = dict[str, Any]

# Starts the note of every refund notify_return records: its refunds/create webhook is the
# platform's own return coming back, not a new return to book.
PLATFORM_REFUND_NOTE = "Retail Connect return"


def is_platform_refund(refund: Mapping[str, Any]) -> bool:
    """Whether a Shopify refund (API object or ``refunds/create`` body) was recorded by
    :meth:`ShopifyAdminChannel.notify_return` (no transactions, our note)."""
    note = refund.get("note")
    return isinstance(note, str) and note.startswith(PLATFORM_REFUND_NOTE) and not refund.get("transactions")


@dataclass
class ItemSkus:
    """Inventory item id -> SKU as ``products.json`` last listed them, and the items it listed
    without a SKU. Pass one to several :class:`ShopifyAdminChannel` instances (the inbox relay
    makes one per call) to keep it between them."""

    by_item: dict[int, str] = field(default_factory=dict)
    without_sku: set[int] = field(default_factory=set)
    listed_at: float | None = None  # time.monotonic() of the last full listing

    def age_s(self) -> float | None:
        return None if self.listed_at is None else time.monotonic() - self.listed_at


@dataclass(frozen=True)
class InventoryLevel:
    inventory_item_id: int
    location_id: int
    available: int
    updated_at: str | None


def _errors_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text[:300]
    errors = body.get("errors", body) if isinstance(body, dict) else body
    return (errors if isinstance(errors, str) else json.dumps(errors, separators=(",", ":")))[:300]


def _retry_after(response: httpx.Response) -> float:
    raw = response.headers.get("Retry-After")
    try:
        value = float(raw) if raw is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S
    return value if value >= 0 else DEFAULT_RETRY_AFTER_S


def _money(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


class ShopifyAdminChannel:
    """``ChannelPort`` for one Shopify store over the REST Admin API.

    ``base_url`` is the store's origin (``https://{shop}.myshopify.com``); requests go to
    ``{base_url}/admin/api/{api_version}/...`` with ``X-Shopify-Access-Token``. Pass ``http``
    to share a client (e.g. an ``httpx.ASGITransport`` one in tests); otherwise one is made
    with ``timeout_s`` and closed by :meth:`aclose`. ``location_ids`` and
    ``inventory_item_ids`` map the platform's location names and SKUs to Shopify ids; names
    not given are looked up (``locations.json``, ``products.json``) once and cached.
    ``inventory_location`` is where :meth:`push_inventory` publishes sellable quantities;
    ``inventory_api`` how: ``graphql`` (``inventorySetQuantities`` with compare-and-set, the
    default) or ``rest`` (``inventory_levels/set.json``, absolute and blind; the fallback).
    ``item_skus`` is the reverse lookup (:meth:`sku_of`), shared when given.
    """

    def __init__(
        self,
        base_url: str,
        access_token: str,
        api_version: str = DEFAULT_API_VERSION,
        http: httpx.AsyncClient | None = None,
        location_ids: Mapping[str, int] | None = None,
        inventory_item_ids: Mapping[str, int] | None = None,
        *,
        name: str = "shopify",
        timeout_s: float = 10.0,
        notify_customer: bool = False,
        inventory_location: str | int | None = None,
        inventory_api: str = "graphql",
        item_skus: ItemSkus | None = None,
    ) -> None:
        if not access_token:
            raise ValueError("an access token is required")
        if inventory_api not in INVENTORY_APIS:
            raise ValueError(f"inventory_api must be one of {INVENTORY_APIS}, not {inventory_api!r}")
        self.inventory_api = inventory_api
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.notify_customer = notify_customer
        self.inventory_location = inventory_location
        self._origin = urlsplit(self.base_url)[:2]
        self._token = access_token
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout_s)
        self._locations: dict[str, int] | None = dict(location_ids) if location_ids else None
        self._items: dict[str, int] = dict(inventory_item_ids or {})
        self.item_skus = item_skus if item_skus is not None else ItemSkus()
        self.last_call_limit: tuple[int, int] | None = None
        """The latest ``X-Shopify-Shop-Api-Call-Limit`` as (used, bucket size)."""

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> ShopifyAdminChannel:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- HTTP and the error taxonomy ------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}/admin/api/{self.api_version}/{path}"

    async def _request(
        self, method: str, url: str, *, params: Mapping[str, str] | None = None, body: Json | None = None
    ) -> httpx.Response:
        what = f"{method} {urlsplit(url).path}"
        headers = {"X-Shopify-Access-Token": self._token, "Accept": "application/json"}
        try:
            response = await self._http.request(method, url, params=params, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientError(f"shopify {what} timed out: {type(exc).__name__}", system=SYSTEM) from exc
        except httpx.HTTPError as exc:
            raise TransientError(
                f"shopify {what} failed: {type(exc).__name__}: {exc}", system=SYSTEM
            ) from exc
        self._note_call_limit(response)
        status = response.status_code
        if status < 300:
            return response
        detail = f"shopify {what}: HTTP {status} {_errors_text(response)}"
        if status == 429:
            # GraphQL throttling may come as a 429 without Retry-After: then the cost extensions say.
            wait = (
                _retry_after(response)
                if "Retry-After" in response.headers
                else _graphql_wait(_body(response))
            )
            raise RateLimitedError(detail, retry_after=wait, system=SYSTEM)
        if status >= 500 or status in (408, 409):
            raise TransientError(detail, system=SYSTEM)
        raise PermanentError(detail, reason=_PERMANENT_REASONS.get(status, "shopify_rejected"), system=SYSTEM)

    def _note_call_limit(self, response: httpx.Response) -> None:
        used, _, size = response.headers.get("X-Shopify-Shop-Api-Call-Limit", "").partition("/")
        if used.isdigit() and size.isdigit():
            self.last_call_limit = (int(used), int(size))

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> Json:
        return self._json(await self._request("GET", self._url(path), params=params))

    async def _post(self, path: str, body: Json) -> Json:
        return self._json(await self._request("POST", self._url(path), body=body))

    @staticmethod
    def _json(response: httpx.Response) -> Json:
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientError(
                f"shopify {response.request.url.path}: answer is not JSON", system=SYSTEM
            ) from exc
        if not isinstance(body, dict):
            raise TransientError(f"shopify {response.request.url.path}: unexpected answer", system=SYSTEM)
        return body

    async def _pages(self, path: str, params: Mapping[str, str], key: str) -> AsyncIterator[Json]:
        """Every item of a paginated list, following ``Link: <...>; rel="next"``."""
        response = await self._request("GET", self._url(path), params=params)
        while True:
            for item in self._json(response).get(key) or []:
                yield item
            nxt = response.links.get("next", {}).get("url")
            if not nxt:
                return
            self._same_origin(nxt)
            response = await self._request("GET", nxt)

    def _same_origin(self, url: str) -> None:
        if urlsplit(url)[:2] != self._origin:
            # Never send the access token anywhere but the store.
            raise PermanentError(
                f"shopify pagination link leaves {self.base_url}", reason="shopify_bad_link", system=SYSTEM
            )

    @staticmethod
    def _order_id(external_order_id: str) -> str:
        oid = external_order_id.strip()
        if not oid.isdigit():
            raise PermanentError(
                f"{external_order_id!r} is not a Shopify order id", reason="shopify_invalid", system=SYSTEM
            )
        return oid

    # -- ChannelPort ----------------------------------------------------------------------

    async def notify_fulfillment(
        self, external_order_id: str, shipment: Shipment, idempotency_key: str
    ) -> ChannelAck:
        """Create the fulfillment(s) for ``shipment`` with tracking, unless they exist."""
        oid = self._order_id(external_order_id)
        if shipment.digital:
            return await self._fulfil_digital(oid, shipment, idempotency_key)
        marker = shipment.tracking_numbers[0] if shipment.tracking_numbers else shipment.shipment_id
        existing = (await self._get(f"orders/{oid}/fulfillments.json")).get("fulfillments") or []
        mine = [
            f
            for f in existing
            if f.get("status") not in _DONE_FULFILLMENT
            and marker in (f.get("tracking_numbers") or [f.get("tracking_number")])
        ]
        done: Counter[int] = Counter()
        for f in mine:
            for li in f.get("line_items") or []:
                done[int(li["id"])] += int(li.get("quantity") or 0)
        remaining = +(self._line_quantities(shipment) - done)
        refs = [str(f["id"]) for f in mine]
        if remaining:
            fulfillment_orders = (await self._get(f"orders/{oid}/fulfillment_orders.json")).get(
                "fulfillment_orders"
            ) or []
            for groups in self._allocate(fulfillment_orders, remaining, shipment).values():
                created = await self._post(
                    "fulfillments.json",
                    {
                        "fulfillment": {
                            "line_items_by_fulfillment_order": groups,
                            "tracking_info": {"number": marker, "company": shipment.carrier},
                            "notify_customer": self.notify_customer,
                            "message": f"shipment {shipment.shipment_id} from {shipment.location}"
                            f" [{idempotency_key}]",
                        }
                    },
                )
                refs.append(str(created["fulfillment"]["id"]))
        return ChannelAck(channel=self.name, reference=",".join(refs))

    async def _fulfil_digital(self, oid: str, shipment: Shipment, idempotency_key: str) -> ChannelAck:
        """Fulfil, without tracking, what is still open of the digital lines. What is not open
        is done already: Shopify fulfils gift cards itself, lines that need no shipping may have
        no fulfillment order, and a retry finds its own fulfillment made. So a replay is a no-op."""
        need = self._line_quantities(shipment)
        fulfillment_orders = (await self._get(f"orders/{oid}/fulfillment_orders.json")).get(
            "fulfillment_orders"
        ) or []
        refs: list[str] = []
        for groups in self._allocate(fulfillment_orders, need, shipment, all_or_nothing=False).values():
            created = await self._post(
                "fulfillments.json",
                {
                    "fulfillment": {
                        "line_items_by_fulfillment_order": groups,
                        "notify_customer": self.notify_customer,
                        "message": f"digital delivery [{idempotency_key}]",
                    }
                },
            )
            refs.append(str(created["fulfillment"]["id"]))
        return ChannelAck(channel=self.name, reference=",".join(refs) or "nothing open to fulfil")

    @staticmethod
    def _line_quantities(shipment: Shipment) -> Counter[int]:
        """Units per Shopify line item id; a line id that is not one is refused."""
        need: Counter[int] = Counter()
        for line in shipment.lines:
            if not line.line_id.isdigit():
                raise PermanentError(
                    f"shipment {shipment.shipment_id}: line {line.line_id!r} is not a Shopify line item id",
                    reason="shopify_invalid",
                    system=SYSTEM,
                )
            need[int(line.line_id)] += line.quantity
        return need

    def _allocate(
        self,
        fulfillment_orders: list[Json],
        remaining: Counter[int],
        shipment: Shipment,
        *,
        all_or_nothing: bool = True,
    ) -> dict[int, list[Json]]:
        """Fulfillment order lines covering ``remaining``, grouped by location; all or nothing
        unless told otherwise."""
        wanted_location = (self._locations or {}).get(shipment.location)

        def preference(fo: Json) -> tuple[int, int]:
            at = fo.get("assigned_location") or {}
            here = fo.get("assigned_location_id") == wanted_location or at.get("name") == shipment.location
            return (0 if here else 1, int(fo["id"]))

        left = Counter(remaining)
        by_location: dict[int, dict[int, list[Json]]] = {}
        for fo in sorted(fulfillment_orders, key=preference):
            if fo.get("status") not in ("open", "in_progress"):
                continue
            for li in fo.get("line_items") or []:
                line_item_id = int(li["line_item_id"])
                take = min(left[line_item_id], int(li.get("fulfillable_quantity") or 0))
                if take <= 0:
                    continue
                left[line_item_id] -= take
                groups = by_location.setdefault(int(fo["assigned_location_id"]), {})
                groups.setdefault(int(fo["id"]), []).append({"id": int(li["id"]), "quantity": take})
        short = +left
        if short and all_or_nothing:
            missing = ", ".join(f"{qty} of line {line}" for line, qty in sorted(short.items()))
            raise PermanentError(
                f"shipment {shipment.shipment_id}: Shopify has nothing open to fulfil for {missing}",
                reason="shopify_nothing_to_fulfill",
                system=SYSTEM,
            )
        return {
            loc: [
                {"fulfillment_order_id": fo_id, "fulfillment_order_line_items": items}
                for fo_id, items in fos.items()
            ]
            for loc, fos in by_location.items()
        }

    async def refund_payment(
        self, external_order_id: str, amount: Money, reason: str, idempotency_key: str
    ) -> ChannelAck:
        """Refund ``amount`` against the order's sales/captures, once per idempotency key."""
        oid = self._order_id(external_order_id)
        if amount.amount <= 0:
            raise PermanentError(
                f"refund of {amount} for order {oid}: the amount must be positive",
                reason="invalid_amount",
                system=SYSTEM,
            )
        if not idempotency_key:
            raise PermanentError("an idempotency key is required", reason="invalid_request", system=SYSTEM)
        tag = f"[{idempotency_key}]"
        for refund in (await self._get(f"orders/{oid}/refunds.json")).get("refunds") or []:
            if tag in str(refund.get("note") or ""):
                recorded = sum(
                    (
                        _money(t.get("amount"))
                        for t in refund.get("transactions") or []
                        if t.get("kind") == "refund"
                    ),
                    Decimal(0),
                )
                if recorded != amount.amount:
                    raise PermanentError(
                        f"idempotency key {idempotency_key!r} already refunded {recorded} {amount.currency}"
                        f" on order {oid} (refund {refund.get('id')}), not {amount}",
                        reason="idempotency_conflict",
                        system=SYSTEM,
                    )
                return ChannelAck(channel=self.name, reference=str(refund["id"]))
        txns = (await self._get(f"orders/{oid}/transactions.json")).get("transactions") or []
        parents = [t for t in txns if t.get("kind") in ("sale", "capture") and t.get("status") == "success"]
        for t in parents:
            if t.get("currency") not in (None, amount.currency):
                raise PermanentError(
                    f"order {oid} was paid in {t.get('currency')}, the refund is in {amount.currency}",
                    reason="currency_mismatch",
                    system=SYSTEM,
                )
        left_by_parent: list[tuple[Json, Decimal]] = []
        for t in sorted(parents, key=lambda t: int(t["id"])):
            back = sum(
                (
                    _money(r.get("amount"))
                    for r in txns
                    if r.get("kind") == "refund"
                    and r.get("status") == "success"
                    and r.get("parent_id") == t["id"]
                ),
                Decimal(0),
            )
            left_by_parent.append((t, _money(t.get("amount")) - back))
        plan: list[Json] = []
        todo = amount.amount
        for parent, left in left_by_parent:
            if todo <= 0:
                break
            take = min(todo, left)
            if take > 0:
                plan.append(
                    {
                        "parent_id": parent["id"],
                        "amount": str(take),
                        "kind": "refund",
                        "gateway": parent.get("gateway"),
                    }
                )
                todo -= take
        if todo > 0:
            raise PermanentError(
                f"refund of {amount} for order {oid}: only {amount.amount - todo} {amount.currency} is left"
                " to refund on Shopify",
                reason="shopify_nothing_to_refund",
                system=SYSTEM,
            )
        created = await self._post(
            f"orders/{oid}/refunds.json",
            {
                "refund": {
                    "currency": amount.currency,
                    "notify": self.notify_customer,
                    "note": f"{reason} {tag}".strip(),
                    "transactions": plan,
                }
            },
        )
        return ChannelAck(channel=self.name, reference=str(created["refund"]["id"]))

    async def notify_return(
        self, external_order_id: str, notice: ReturnNotice, idempotency_key: str
    ) -> ChannelAck:
        """Record a return the platform refunded as a Shopify refund *without transactions*
        (``POST orders/{id}/refunds.json`` with ``refund_line_items`` only: the money went back
        through the platform's payment provider, Shopify must not move it again).

        Each line's ``restock_type`` is ``return`` (at ``inventory_location``) when the units went
        back into stock, else ``no_restock``; without a configured ``inventory_location`` it is
        ``no_restock`` (Shopify's stock is the platform's absolute push anyway). The refund's note
        starts with :data:`PLATFORM_REFUND_NOTE` and ends with ``[<idempotency key>]``: a retry
        finds it, and the ``refunds/create`` webhook it fires can be recognised as the platform's
        own (see :func:`is_platform_refund`). Expired, rejected or cancelled returns refunded
        nothing: the contract has no call to record them, so nothing is sent (reference
        ``return:<key>:<status>``)."""
        oid = self._order_id(external_order_id)
        if not idempotency_key:
            raise PermanentError("an idempotency key is required", reason="invalid_request", system=SYSTEM)
        if notice.status != "refunded" or not notice.lines:
            log.info(
                "shopify_return_not_recorded",
                order_id=oid,
                return_key=notice.return_key,
                status=notice.status,
            )
            return ChannelAck(channel=self.name, reference=f"return:{notice.return_key}:{notice.status}")
        tag = f"[{idempotency_key}]"
        for refund in (await self._get(f"orders/{oid}/refunds.json")).get("refunds") or []:
            if tag in str(refund.get("note") or ""):
                return ChannelAck(channel=self.name, reference=str(refund["id"]))
        location_id = (
            await self.location_id(self.inventory_location)
            if notice.restocked and self.inventory_location is not None
            else None
        )
        items: list[Json] = []
        for line in notice.lines:
            if not line.line_id.isdigit():
                raise PermanentError(
                    f"return {notice.return_key}: line {line.line_id!r} is not a Shopify line item id",
                    reason="shopify_invalid",
                    system=SYSTEM,
                )
            item: Json = {
                "line_item_id": int(line.line_id),
                "quantity": line.quantity,
                "restock_type": "return" if location_id is not None else "no_restock",
            }
            if location_id is not None:
                item["location_id"] = location_id
            items.append(item)
        note = f"{PLATFORM_REFUND_NOTE} {notice.return_key}: {notice.refunded} refunded {tag}"
        created = await self._post(
            f"orders/{oid}/refunds.json",
            {
                "refund": {
                    "currency": notice.refunded.currency,
                    "notify": self.notify_customer,
                    "note": note,
                    "refund_line_items": items,
                }
            },
        )
        return ChannelAck(channel=self.name, reference=str(created["refund"]["id"]))

    async def notify_cancelled(self, external_order_id: str, reason: str, idempotency_key: str) -> ChannelAck:
        """Cancel the order on Shopify (``reason`` if it is one of Shopify's, else ``other``)."""
        oid = self._order_id(external_order_id)
        order = (await self._get(f"orders/{oid}.json", {"fields": "id,cancelled_at"})).get("order") or {}
        if not order.get("cancelled_at"):
            code = reason if reason in CANCEL_REASONS else "other"
            await self._post(f"orders/{oid}/cancel.json", {"reason": code, "email": self.notify_customer})
        return ChannelAck(channel=self.name, reference=oid)

    # -- beyond the port: order sync and inventory ------------------------------------------

    async def get_order(self, external_order_id: str) -> Json:
        oid = self._order_id(external_order_id)
        order = (await self._get(f"orders/{oid}.json")).get("order")
        if not isinstance(order, dict):
            raise TransientError(f"shopify orders/{oid}.json: no order in the answer", system=SYSTEM)
        return order

    async def list_orders_updated_since(
        self, since: datetime, *, status: str = "any", page_size: int = PAGE_SIZE
    ) -> AsyncIterator[Json]:
        """Every order updated at or after ``since``, oldest update first, across all pages."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        params = {
            "updated_at_min": since.isoformat(),
            "status": status,
            "limit": str(min(max(page_size, 1), PAGE_SIZE)),
            "order": "updated_at asc",
        }
        async for order in self._pages("orders.json", params, "orders"):
            yield order

    # -- ChannelReader: what reconciliation reads back -------------------------------------

    lists_orders = True

    def _summary(self, payload: Json) -> ChannelOrder:
        external_id = str(payload.get("id"))
        try:
            updated = datetime.fromisoformat(str(payload.get("updated_at")))
        except ValueError:
            updated = datetime.now(UTC)
        if updated.tzinfo is None:
            updated = updated.replace(tzinfo=UTC)
        cancelled = bool(payload.get("cancelled_at"))
        currency = payload.get("currency") if isinstance(payload.get("currency"), str) else None
        try:
            order = order_from_shopify(payload, self.name)
        except ValueError as err:  # MappingError: the field path and why
            return order_summary(
                external_id, payload.get("name"), updated, cancelled, currency, None, str(err)
            )
        return order_summary(external_id, order.name, updated, cancelled, currency, order)

    async def orders_updated_page(
        self, since: datetime, until: datetime, cursor: str | None, page_size: int = PAGE_SIZE
    ) -> ChannelOrderPage:
        """One page of ``GET orders.json`` (any status, oldest update first); the cursor is the
        ``rel="next"`` link, followed only on the store's own origin."""
        if cursor is None:
            if since.tzinfo is None or until.tzinfo is None:
                raise ValueError("since and until must be timezone-aware")
            params = {
                "updated_at_min": since.isoformat(),
                "updated_at_max": until.isoformat(),
                "status": "any",
                "limit": str(min(max(page_size, 1), PAGE_SIZE)),
                "order": "updated_at asc",
            }
            response = await self._request("GET", self._url("orders.json"), params=params)
        else:
            self._same_origin(cursor)
            response = await self._request("GET", cursor)
        orders = [self._summary(o) for o in self._json(response).get("orders") or []]
        return ChannelOrderPage(orders, response.links.get("next", {}).get("url") or None)

    async def count_orders_updated(self, since: datetime, until: datetime) -> int | None:
        params = {"updated_at_min": since.isoformat(), "updated_at_max": until.isoformat(), "status": "any"}
        return int((await self._get("orders/count.json", params)).get("count") or 0)

    async def fetch_order(self, external_order_id: str) -> ChannelOrder | None:
        try:
            return self._summary(await self.get_order(external_order_id))
        except PermanentError as err:
            if err.reason == "shopify_not_found":
                return None
            raise

    async def inventory_levels(self, skus: list[str]) -> dict[str, int]:
        """Available per SKU at ``inventory_location`` (where the platform publishes), or summed
        over every location when none is configured; SKUs Shopify does not sell are left out."""
        if set(skus) - set(self._items):
            await self._refresh_items()
        by_item = {self._items[sku]: sku for sku in skus if sku in self._items}
        params: dict[str, str] = {"limit": str(PAGE_SIZE)}
        if self.inventory_location is not None:
            params["location_ids"] = str(await self.location_id(self.inventory_location))
        out = dict.fromkeys(by_item.values(), 0)
        items = list(by_item)
        for n in range(0, len(items), 50):  # Shopify takes at most 50 inventory item ids per call
            chunk = {**params, "inventory_item_ids": ",".join(str(i) for i in items[n : n + 50])}
            async for level in self._pages("inventory_levels.json", chunk, "inventory_levels"):
                sku = by_item.get(int(level.get("inventory_item_id") or 0))
                if sku is not None:
                    out[sku] += int(level.get("available") or 0)
        return out

    async def location_id(self, location: str | int) -> int:
        if isinstance(location, int):
            return location
        if self._locations is None or location not in self._locations:
            found = (await self._get("locations.json")).get("locations") or []
            self._locations = {
                **{str(loc["name"]): int(loc["id"]) for loc in found},
                **(self._locations or {}),
            }
        if location not in self._locations:
            raise PermanentError(
                f"Shopify has no location named {location!r}",
                reason="shopify_unknown_location",
                system=SYSTEM,
            )
        return self._locations[location]

    async def _refresh_items(self) -> None:
        params = {"limit": str(PAGE_SIZE), "fields": "id,variants"}
        by_item: dict[int, str] = {}
        without_sku: set[int] = set()
        async for product in self._pages("products.json", params, "products"):
            for variant in product.get("variants") or []:
                if variant.get("inventory_item_id") is None:
                    continue
                item = int(variant["inventory_item_id"])
                if variant.get("sku"):
                    self._items[str(variant["sku"])] = item
                    by_item[item] = str(variant["sku"])
                else:
                    without_sku.add(item)
        # Replaced whole, after the last page: a SKU renamed on Shopify leaves no stale entry.
        self.item_skus.by_item, self.item_skus.without_sku = by_item, without_sku
        self.item_skus.listed_at = time.monotonic()

    async def sku_of(self, inventory_item_id: int, max_age_s: float | None = None) -> str | None:
        """The SKU of an inventory item; None when Shopify lists the item without one or not at
        all. Answered from the last ``products.json`` listing when it knows the item (and is not
        older than ``max_age_s``), else the catalogue is listed once again (a product added since)."""
        known = self.item_skus
        age = known.age_s()
        fresh = age is not None and (max_age_s is None or age <= max_age_s)
        if fresh and (inventory_item_id in known.by_item or inventory_item_id in known.without_sku):
            return known.by_item.get(inventory_item_id)
        await self._refresh_items()
        return self.item_skus.by_item.get(inventory_item_id)

    async def inventory_item_id(self, sku: str | int) -> int:
        """The inventory item of a SKU (an int is taken as the id itself)."""
        if isinstance(sku, int):
            return sku
        if sku not in self._items:
            # Looked up on a miss (a SKU added on Shopify since); a known one costs nothing.
            await self._refresh_items()
        if sku not in self._items:
            raise PermanentError(
                f"Shopify has no variant with SKU {sku!r}", reason="shopify_unknown_sku", system=SYSTEM
            )
        return self._items[sku]

    async def set_inventory(self, item: str | int, location: str | int, available: int) -> InventoryLevel:
        """Set the available quantity (absolute, so naturally idempotent).

        ``item`` is a SKU (str) or an inventory item id (int); ``location`` a location name
        or id.
        """
        body = {
            "location_id": await self.location_id(location),
            "inventory_item_id": await self.inventory_item_id(item),
            "available": int(available),
        }
        level = (await self._post("inventory_levels/set.json", body)).get("inventory_level") or {}
        return InventoryLevel(
            inventory_item_id=int(level.get("inventory_item_id", body["inventory_item_id"])),
            location_id=int(level.get("location_id", body["location_id"])),
            available=int(level.get("available", body["available"])),
            updated_at=level.get("updated_at"),
        )

    @property
    def compares_inventory(self) -> bool:
        """Whether :meth:`push_inventory_compared` really compares (GraphQL) or sets blindly (REST)."""
        return self.inventory_api == "graphql"

    def _location_for(self, a: ChannelAvailability) -> str | int:
        if self.inventory_location is not None:
            return self.inventory_location
        if len(a.locations) == 1:
            return a.locations[0]
        raise PermanentError(
            f"{a.sku}: available over {a.locations} but no Shopify inventory_location is configured",
            reason="shopify_inventory_location",
            system=SYSTEM,
        )

    async def _sold_here(self, levels: list[ChannelAvailability]) -> list[ChannelAvailability]:
        """The levels whose SKU Shopify sells; the others are logged and skipped."""
        if {a.sku for a in levels} - set(self._items):
            await self._refresh_items()
        skipped = sorted({a.sku for a in levels} - set(self._items))
        if skipped:
            log.warning(
                "shopify_inventory_skus_unknown", channel=self.name, skus=skipped[:20], count=len(skipped)
            )
        return [a for a in levels if a.sku in self._items]

    async def push_inventory(self, levels: list[ChannelAvailability], idempotency_key: str) -> ChannelAck:
        """Publish what may be sold: ``available`` is set (absolute) at one Shopify location.

        The location is ``inventory_location`` when configured, else the one location the
        availability was computed over; several without a configured one is a configuration
        error. SKUs Shopify does not sell are skipped (logged): there is nothing to tell it.
        Over GraphQL each quantity is compared with what Shopify shows right now (read first):
        a caller that knows what it told Shopify last uses :meth:`push_inventory_compared`.
        Over REST: absolute sets make a retried batch harmless; a 429 mid-batch is
        RateLimitedError and the retry sends the whole batch again.
        """
        if self.inventory_api == "graphql":
            return await self.push_inventory_compared(levels, {}, idempotency_key)
        pushed = 0
        for a in await self._sold_here(levels):
            await self.set_inventory(a.sku, self._location_for(a), a.available)
            pushed += 1
        return ChannelAck(channel=self.name, reference=f"inventory:{idempotency_key}:{pushed}")

    async def push_inventory_compared(
        self, levels: list[ChannelAvailability], compare: Mapping[str, int], idempotency_key: str
    ) -> ChannelAck:
        """Set ``available`` with compare-and-set (``inventorySetQuantities``), all or nothing.

        ``compare`` is, per SKU, what the platform last told Shopify; a SKU without one is compared
        with what Shopify shows now (read first: a number we never set is not a sale). When any
        compare value is stale Shopify changes nothing and this raises
        :class:`CompareMismatchError` naming those SKUs: someone else moved the number (a POS
        sale, a manual edit), and overwriting it would lose that. The ``@idempotent`` key is
        derived from ``idempotency_key`` *and* the variables, so a retry of the same call is
        answered from Shopify's record, while the same batch with new compare values is a new
        operation (Shopify refuses a key reused with other parameters). Over REST (the
        fallback) the compare values are ignored: blind absolute sets.
        """
        if self.inventory_api == "rest":
            return await self.push_inventory(levels, idempotency_key)
        sold = await self._sold_here(levels)
        if not sold:
            return ChannelAck(channel=self.name, reference=f"inventory:{idempotency_key}:0")
        targets: list[tuple[ChannelAvailability, int, int]] = []
        for a in sold:
            location = await self.location_id(self._location_for(a))
            targets.append((a, await self.inventory_item_id(a.sku), location))
        unknown = [(item, loc) for a, item, loc in targets if a.sku not in compare]
        current = await self._levels_now(unknown) if unknown else {}
        new_style = self.api_version == "unstable" or self.api_version >= "2026-04"
        quantities: list[Json] = []
        for a, item, loc in targets:
            q: Json = {
                "inventoryItemId": f"gid://shopify/InventoryItem/{item}",
                "locationId": f"gid://shopify/Location/{loc}",
                "quantity": int(a.available),
            }
            basis = compare[a.sku] if a.sku in compare else current.get((item, loc), 0)
            q["changeFromQuantity" if new_style else "compareQuantity"] = int(basis)
            quantities.append(q)
        payload: Json = {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": f"gid://retail-connect/InventorySync/{quote(idempotency_key, safe='')}",
            "quantities": quantities,
        }
        if not new_style:
            payload["ignoreCompareQuantity"] = False
        key = str(uuid.uuid5(_IDEMPOTENT_NS, idempotency_key + json.dumps(payload, sort_keys=True)))
        result = await self._graphql(SET_QUANTITIES_MUTATION, {"input": payload, "key": key})
        body = result.get("inventorySetQuantities") or {}
        errors = body.get("userErrors") or []
        if errors:
            self._raise_user_errors(errors, targets, quantities)
        return ChannelAck(channel=self.name, reference=f"inventory:{idempotency_key}:{len(targets)}")

    def _raise_user_errors(
        self, errors: list[Json], targets: list[tuple[ChannelAvailability, int, int]], quantities: list[Json]
    ) -> None:
        stale: dict[str, int] = {}
        other: list[str] = []
        for e in errors:
            path = [str(p) for p in e.get("field") or []]
            index = next((int(p) for p in path if p.isdigit()), None)
            is_compare = e.get("code") in _STALE_CODES or bool(_COMPARE_FIELDS & set(path))
            if is_compare and index is not None and index < len(targets):
                q = quantities[index]
                stale[targets[index][0].sku] = int(q.get("compareQuantity", q.get("changeFromQuantity")) or 0)
            else:
                other.append(f"{e.get('code') or ''} {'.'.join(path)}: {e.get('message')}".strip())
        if other:
            raise PermanentError(
                f"shopify inventorySetQuantities refused: {'; '.join(other)[:300]}",
                reason="shopify_invalid",
                system=SYSTEM,
            )
        raise CompareMismatchError(
            f"shopify inventorySetQuantities: the number moved on Shopify for {sorted(stale)}",
            mismatched=stale,
            system=SYSTEM,
        )

    async def _levels_now(self, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """Available now per (inventory item, location); a pair Shopify has no level for is absent."""
        out: dict[tuple[int, int], int] = {}
        by_location: dict[int, list[int]] = {}
        for item, loc in pairs:
            by_location.setdefault(loc, []).append(item)
        for loc, items in by_location.items():
            for n in range(0, len(items), 50):  # Shopify takes at most 50 inventory item ids per call
                params = {
                    "limit": str(PAGE_SIZE),
                    "location_ids": str(loc),
                    "inventory_item_ids": ",".join(str(i) for i in items[n : n + 50]),
                }
                async for level in self._pages("inventory_levels.json", params, "inventory_levels"):
                    key = (int(level.get("inventory_item_id") or 0), int(level.get("location_id") or 0))
                    out[key] = int(level.get("available") or 0)
        return out

    async def _graphql(self, query: str, variables: Json) -> Json:
        """POST graphql.json; THROTTLED (HTTP 200 or 429) is RateLimitedError with the time the cost
        bucket needs to refill; other top-level errors are permanent unless Shopify says internal."""
        url = self._url("graphql.json")
        # An HTTP 429 is already RateLimitedError (Retry-After, else the default) from _request.
        response = await self._request("POST", url, body={"query": query, "variables": variables})
        body = self._json(response)
        errors = body.get("errors")
        if errors:
            listed = errors if isinstance(errors, list) else []
            codes = [str((e.get("extensions") or {}).get("code")) for e in listed if isinstance(e, dict)]
            text = _errors_text(response)
            if "THROTTLED" in codes:
                raise RateLimitedError(
                    f"shopify graphql throttled: {text}", retry_after=_graphql_wait(body), system=SYSTEM
                )
            if "INTERNAL_SERVER_ERROR" in codes:
                raise TransientError(f"shopify graphql: {text}", system=SYSTEM)
            raise PermanentError(f"shopify graphql: {text}", reason="shopify_graphql_error", system=SYSTEM)
        data = body.get("data")
        if not isinstance(data, dict):
            raise TransientError("shopify graphql: no data in the answer", system=SYSTEM)
        return data


def _body(response: httpx.Response) -> Json:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _graphql_wait(body: Json) -> float:
    """Seconds until the cost bucket holds the requested cost again (extensions.cost), else a default."""
    cost = (body.get("extensions") or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        requested = float(cost["requestedQueryCost"])
        available = float(status["currentlyAvailable"])
        restore = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S
    if restore <= 0:
        return DEFAULT_RETRY_AFTER_S
    return max(0.1, round((requested - available) / restore, 2))
