"""The channel port: what the platform tells a storefront or marketplace, and (``ChannelReader``)
what reconciliation reads back from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from canonical import ChannelAvailability, Money, Order, Shipment
from canonical.documents import ChannelAck
from canonical.returns import ReturnNotice


class ChannelPort(Protocol):
    name: str

    async def notify_fulfillment(
        self, external_order_id: str, shipment: Shipment, idempotency_key: str
    ) -> ChannelAck:
        """Tell the channel what shipped, with tracking."""
        ...

    async def refund_payment(
        self, external_order_id: str, amount: Money, reason: str, idempotency_key: str
    ) -> ChannelAck:
        """Refund a channel-managed payment (e.g. on cancellation)."""
        ...

    async def notify_cancelled(
        self, external_order_id: str, reason: str, idempotency_key: str
    ) -> ChannelAck: ...

    async def push_inventory(self, levels: list[ChannelAvailability], idempotency_key: str) -> ChannelAck:
        """Tell the channel how many of each SKU it may sell now: absolute numbers, never deltas.

        Raises RateLimitedError when the channel asks to slow down."""
        ...

    async def notify_return(
        self, external_order_id: str, notice: ReturnNotice, idempotency_key: str
    ) -> ChannelAck:
        """Tell the channel what became of a return it did not refund itself (refunded by the
        platform, expired, rejected): Shopify records it as a refund without transactions."""
        ...


@runtime_checkable
class CompareAndSetInventory(Protocol):
    """A channel whose inventory write can compare before it sets (Shopify's inventorySetQuantities).

    ``compare`` is, per SKU, what the platform last told the channel; a stale one raises
    ``CompareMismatchError`` and nothing is written. ``compares_inventory`` is False when the
    adapter is configured to set blindly (then ``compare`` is ignored)."""

    compares_inventory: bool

    async def push_inventory_compared(
        self, levels: list[ChannelAvailability], compare: Mapping[str, int], idempotency_key: str
    ) -> ChannelAck: ...


# -- the reader side: what reconciliation asks a channel ------------------------------------------


@dataclass(frozen=True)
class ChannelOrder:
    """One order as the channel lists it, mapped to the canonical model when it maps.

    ``lines_total`` is the sum of the lines after discounts, before tax (what the ERP's sales
    order lines add up to); ``order`` is None, with ``error`` saying why, when it does not map.
    ``hold`` says why an order is not (yet) for the platform to fulfil (not paid yet, fulfilled
    by the marketplace): a poller leaves it for a later update, reconciliation does not stage it."""

    external_id: str
    name: str | None
    updated_at: datetime
    cancelled: bool
    currency: str | None
    lines_total: Decimal | None
    order: Order | None = None
    error: str | None = None
    hold: str | None = None


@dataclass(frozen=True)
class ChannelOrderPage:
    orders: list[ChannelOrder]
    next_cursor: str | None
    """Opaque: pass it back for the next page; None after the last one."""


@runtime_checkable
class ChannelReader(Protocol):
    """Reads back what a channel holds, for reconciliation. ``lists_orders`` is False for a
    channel that cannot list its orders (the builtin one records only what it was told)."""

    name: str
    lists_orders: bool

    async def orders_updated_page(
        self, since: datetime, until: datetime, cursor: str | None, page_size: int
    ) -> ChannelOrderPage:
        """One page of the orders updated in [since, until], oldest update first."""
        ...

    async def count_orders_updated(self, since: datetime, until: datetime) -> int | None:
        """How many orders the listing will return (None when the channel cannot say)."""
        ...

    async def fetch_order(self, external_order_id: str) -> ChannelOrder | None:
        """One order, or None when the channel has no such order."""
        ...

    async def inventory_levels(self, skus: list[str]) -> dict[str, int]:
        """What the channel shows as available per SKU; SKUs it does not sell are left out."""
        ...


def order_summary(
    external_id: str,
    name: str | None,
    updated_at: datetime,
    cancelled: bool,
    currency: str | None,
    order: Order | None,
    error: str | None = None,
    hold: str | None = None,
) -> ChannelOrder:
    """A ChannelOrder from a mapped order (or a mapping error)."""
    total = Money.sum((ln.net for ln in order.lines), order.currency).amount if order is not None else None
    return ChannelOrder(external_id, name, updated_at, cancelled, currency, total, order, error, hold)
