"""Adobe Commerce as a ``ChannelReader``: what a poller (or reconciliation) lists, mapped."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.channels.adobe_commerce.client import AdobeCommerceClient, Cursor, Json
from adapters.channels.adobe_commerce.mapping import (
    CANCELLED,
    hold_reason,
    order_from_adobe_commerce,
    parse_time,
)
from adapters.channels.errors import MappingError
from adapters.channels.port import ChannelOrder, ChannelOrderPage, order_summary


class AdobeCommerceReader:
    lists_orders = True

    def __init__(self, client: AdobeCommerceClient, name: str = "adobe_commerce") -> None:
        self.name = name
        self.client = client

    def _summary(self, raw: Json) -> ChannelOrder:
        external_id = str(raw.get("increment_id") or raw.get("entity_id") or "")
        try:
            updated = parse_time(raw.get("updated_at"), "updated_at")
        except MappingError:
            updated = datetime.now(UTC)
        cancelled = raw.get("state") == CANCELLED
        currency = raw.get("order_currency_code") if isinstance(raw.get("order_currency_code"), str) else None
        name = f"#{external_id}"
        hold = hold_reason(raw)
        try:
            order = order_from_adobe_commerce(raw, self.name)
        except MappingError as err:
            return order_summary(external_id, name, updated, cancelled, currency, None, str(err), hold)
        return order_summary(external_id, name, updated, cancelled, currency, order, None, hold)

    async def orders_updated_page(
        self, since: datetime, until: datetime, cursor: str | None, page_size: int
    ) -> ChannelOrderPage:
        page = await self.client.orders_updated(
            since, until, Cursor.decode(cursor) if cursor else None, page_size
        )
        return ChannelOrderPage(
            [self._summary(o) for o in page.orders], page.cursor.encode() if page.cursor else None
        )

    async def count_orders_updated(self, since: datetime, until: datetime) -> int | None:
        return None

    async def fetch_order(self, external_order_id: str) -> ChannelOrder | None:
        raw = await self.client.order_by_number(external_order_id)
        return None if raw is None else self._summary(raw)

    async def inventory_levels(self, skus: list[str]) -> dict[str, int]:
        return {}  # stock is not read back yet
