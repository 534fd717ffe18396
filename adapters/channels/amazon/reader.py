"""Amazon as a ``ChannelReader``: the orders a poller (or reconciliation) lists, each with its
items and mapped to the canonical order.

``getOrderItems`` has its own, small quota (0.5/s, burst 30): items are cached per
``(AmazonOrderId, LastUpdateDate)`` (the contract's version key; items only change with the
order), so a page retried after a 429 fetches only what it had not fetched yet and always
progresses.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime

from adapters.channels.amazon.client import AmazonClient, Json
from adapters.channels.amazon.mapping import CANCELLED, hold_reason, order_from_amazon, parse_time
from adapters.channels.errors import MappingError
from adapters.channels.port import ChannelOrder, ChannelOrderPage, order_summary

_CACHE_SIZE = 2000


class AmazonReader:
    lists_orders = True

    def __init__(self, client: AmazonClient, name: str = "amazon") -> None:
        self.name = name
        self.client = client
        self._items: OrderedDict[tuple[str, str], list[Json]] = OrderedDict()

    async def _items_of(self, order: Json) -> list[Json]:
        key = (str(order.get("AmazonOrderId")), str(order.get("LastUpdateDate")))
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        items = await self.client.order_items(key[0])
        self._items[key] = items
        while len(self._items) > _CACHE_SIZE:
            self._items.popitem(last=False)
        return items

    async def _summary(self, raw: Json) -> ChannelOrder:
        external_id = str(raw.get("AmazonOrderId") or "")
        try:
            updated = parse_time(raw.get("LastUpdateDate"), "LastUpdateDate")
        except MappingError:
            updated = datetime.now(UTC)
        cancelled = raw.get("OrderStatus") == CANCELLED
        total = raw.get("OrderTotal")
        currency = total.get("CurrencyCode") if isinstance(total, dict) else None
        hold = hold_reason(raw)
        if cancelled or hold is not None:  # nothing to map: no prices yet, or not ours to ship
            return order_summary(external_id, external_id, updated, cancelled, currency, None, None, hold)
        try:
            order = order_from_amazon(raw, await self._items_of(raw), self.name)
        except MappingError as err:
            return order_summary(external_id, external_id, updated, cancelled, currency, None, str(err))
        return order_summary(external_id, order.name, updated, cancelled, currency, order)

    async def orders_updated_page(
        self, since: datetime, until: datetime, cursor: str | None, page_size: int
    ) -> ChannelOrderPage:
        page = await self.client.orders_updated(since, until, cursor, page_size)
        orders = [await self._summary(o) for o in page.orders]
        # The listing's order is undocumented: oldest update first within the page, at least.
        orders.sort(key=lambda o: (o.updated_at, o.external_id))
        return ChannelOrderPage(orders, page.next_token)

    async def count_orders_updated(self, since: datetime, until: datetime) -> int | None:
        return None  # getOrders cannot count

    async def fetch_order(self, external_order_id: str) -> ChannelOrder | None:
        raw = await self.client.order(external_order_id)
        return None if raw is None else await self._summary(raw)

    async def inventory_levels(self, skus: list[str]) -> dict[str, int]:
        return {}  # listings are not read back yet
