"""The builtin channel: the embedded storefront behind ``ChannelPort``.

It records what the platform tells the channel (a shipment, a refund, a cancellation) in the
store, one row per idempotency key, so a retried activity gets the first answer back and
nothing is recorded twice. Database work runs in a thread so an activity's event loop never
blocks on a lock or a slow disk.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from adapters.channels.port import ChannelOrder, ChannelOrderPage
from adapters.errors import PermanentError, TransientError
from adapters.faults import FaultInjector
from adapters.store_calls import in_thread
from backoffice.channel import (
    ChannelNotification,
    ChannelReturnNotice,
    Notification,
    NotificationKind,
    list_notifications,
    list_return_notices,
    utcnow,
)
from canonical import ChannelAvailability, Money, Shipment
from canonical.documents import ChannelAck
from canonical.returns import ReturnNotice
from store.channel_stock import told
from store.db import Store

SYSTEM = "channel"
T = TypeVar("T")

__all__ = ["BuiltinChannel", "Notification", "list_notifications", "list_return_notices"]


class BuiltinChannel:
    """Records notifications for one channel name (``self.name``), idempotent on the key."""

    def __init__(self, store: Store, faults: FaultInjector | None = None, channel: str = "shopify") -> None:
        self.store = store
        self.faults = faults or FaultInjector(SYSTEM)
        self.name = channel

    async def notify_fulfillment(
        self, external_order_id: str, shipment: Shipment, idempotency_key: str
    ) -> ChannelAck:
        """Record what shipped, with tracking (the storefront's fulfillment)."""
        await self.faults.before(
            "notify_fulfillment", external_order_id=external_order_id, kind="fulfillment"
        )
        payload = {"shipment": shipment.model_dump(mode="json")}
        return await self._in_thread(
            lambda: self._record("fulfillment", external_order_id, idempotency_key, payload, None)
        )

    async def refund_payment(
        self, external_order_id: str, amount: Money, reason: str, idempotency_key: str
    ) -> ChannelAck:
        """Record a refund of a channel-managed payment; a non-positive amount is refused."""
        await self.faults.before(
            "refund_payment", external_order_id=external_order_id, kind="refund", currency=amount.currency
        )
        if amount.amount <= 0:
            raise PermanentError(
                f"refund of {amount} for order {external_order_id}: the amount must be positive",
                reason="invalid_amount",
                system=SYSTEM,
            )
        payload = {"reason": reason, "amount": str(amount.amount), "currency": amount.currency}
        return await self._in_thread(
            lambda: self._record("refund", external_order_id, idempotency_key, payload, amount)
        )

    async def notify_cancelled(self, external_order_id: str, reason: str, idempotency_key: str) -> ChannelAck:
        """Record that the order was cancelled on the platform's side."""
        await self.faults.before("notify_cancelled", external_order_id=external_order_id, kind="cancelled")
        payload = {"reason": reason}
        return await self._in_thread(
            lambda: self._record("cancelled", external_order_id, idempotency_key, payload, None)
        )

    async def push_inventory(self, levels: list[ChannelAvailability], idempotency_key: str) -> ChannelAck:
        """The builtin channel sells exactly what it is told: its stock is the platform's record
        of the last push (store.channel_stock), so accepting the push is all there is to do."""
        await self.faults.before("push_inventory", kind="inventory")
        return ChannelAck(channel=self.name, reference=f"inventory:{idempotency_key}")

    async def notify_return(
        self, external_order_id: str, notice: ReturnNotice, idempotency_key: str
    ) -> ChannelAck:
        """Record what became of a return (``channel_return_notices``, reference ``CR-...``).

        The builtin channel also stands in for WooCommerce and BigCommerce, whose adapters do
        not call their stores for returns: the notice is recorded here, nothing is invented."""
        await self.faults.before(
            "notify_return", external_order_id=external_order_id, kind="return", status=notice.status
        )
        ack = await self._in_thread(lambda: self._record_return(external_order_id, notice, idempotency_key))
        await self.faults.after("notify_return")
        return ack

    # -- ChannelReader -----------------------------------------------------------------------
    # The builtin channel keeps no orders of its own (orders reach the platform through its
    # API and webhooks), so it lists nothing; the stock it shows is what it was last told.

    lists_orders = False

    async def orders_updated_page(
        self, since: datetime, until: datetime, cursor: str | None, page_size: int
    ) -> ChannelOrderPage:
        return ChannelOrderPage([], None)

    async def count_orders_updated(self, since: datetime, until: datetime) -> int | None:
        return 0

    async def fetch_order(self, external_order_id: str) -> ChannelOrder | None:
        return None

    async def inventory_levels(self, skus: list[str]) -> dict[str, int]:
        return await self._in_thread(lambda: {t.sku: t.quantity for t in told(self.store, self.name, skus)})

    # -- synchronous halves (run in a worker thread) ---------------------------------------

    def _record_return(self, external_order_id: str, notice: ReturnNotice, key: str) -> ChannelAck:
        if not key:
            raise PermanentError("an idempotency key is required", reason="invalid_request", system=SYSTEM)
        for _ in range(2):
            with self.store.session() as s:
                row = s.scalar(select(ChannelReturnNotice).where(ChannelReturnNotice.idempotency_key == key))
                if row is not None:
                    seen = (row.channel, row.external_order_id, row.return_key, row.status)
                    if seen != (self.name, external_order_id, notice.return_key, notice.status):
                        raise PermanentError(
                            f"idempotency key {key!r} already recorded {row.status} of return"
                            f" {row.return_key} ({row.channel} order {row.external_order_id})",
                            reason="idempotency_conflict",
                            system=SYSTEM,
                        )
                    return ChannelAck(channel=self.name, reference=row.reference)
            try:
                with self.store.session() as s:
                    new = ChannelReturnNotice(
                        channel=self.name,
                        external_order_id=external_order_id,
                        return_key=notice.return_key,
                        status=notice.status,
                        idempotency_key=key,
                        payload=notice.model_dump(mode="json"),
                        amount=notice.refunded.amount,
                        currency=notice.refunded.currency,
                        created_at=utcnow(),
                    )
                    s.add(new)
                    s.flush()
                    return ChannelAck(channel=self.name, reference=new.reference)
            except IntegrityError:
                continue  # recorded concurrently under the same key: answer with that record
        raise TransientError(f"idempotency key {key!r} is in use by a concurrent call", system=SYSTEM)

    @staticmethod
    async def _in_thread(fn: Callable[[], T]) -> T:
        return await in_thread(SYSTEM, fn)

    def _record(
        self,
        kind: NotificationKind,
        external_order_id: str,
        key: str,
        payload: dict[str, Any],
        amount: Money | None,
    ) -> ChannelAck:
        if not key:
            raise PermanentError("an idempotency key is required", reason="invalid_request", system=SYSTEM)
        found = self._replay(kind, external_order_id, key, amount)
        if found is not None:
            return found
        row = ChannelNotification(
            channel=self.name,
            external_order_id=external_order_id,
            kind=kind,
            idempotency_key=key,
            payload=payload,
            amount=amount.amount if amount is not None else None,
            currency=amount.currency if amount is not None else None,
            created_at=utcnow(),
        )
        try:
            with self.store.session() as s:
                s.add(row)
                s.flush()
                return ChannelAck(channel=self.name, reference=row.reference)
        except IntegrityError:
            # A concurrent call with the same key inserted first: answer with its record.
            found = self._replay(kind, external_order_id, key, amount)
            if found is None:
                raise
            return found

    def _replay(
        self, kind: NotificationKind, external_order_id: str, key: str, amount: Money | None
    ) -> ChannelAck | None:
        """The first answer for ``key``; a key reused for something else is a caller's bug."""
        with self.store.session() as s:
            row = s.scalar(select(ChannelNotification).where(ChannelNotification.idempotency_key == key))
            if row is None:
                return None
            recorded_amount = (
                Money.round(row.amount, row.currency) if row.amount is not None and row.currency else None
            )
            if (row.channel, row.kind, row.external_order_id, recorded_amount) != (
                self.name,
                kind,
                external_order_id,
                amount,
            ):
                raise PermanentError(
                    f"idempotency key {key!r} already recorded a {row.kind} of {row.channel} order"
                    f" {row.external_order_id}"
                    + (f" for {recorded_amount}" if recorded_amount is not None else ""),
                    reason="idempotency_conflict",
                    system=SYSTEM,
                )
            return ChannelAck(channel=row.channel, reference=row.reference)
