"""The builtin warehouse: fulfillment orders kept in the store, worked by ``WmsSimulator``.

Database work runs in a thread (``asyncio.to_thread``) so an activity's event loop never
blocks on a lock or a slow disk.
"""

from __future__ import annotations

from typing import TypeVar, cast

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from adapters.errors import PermanentError
from adapters.faults import FaultInjector
from adapters.registry import AdapterContext, register
from adapters.store_calls import in_thread
from backoffice.wms import (
    CANCELLABLE,
    FulfillmentOrder,
    FulfillmentOrderLine,
    FulfillmentStatus,
    ReturnInbound,
    ReturnInboundLine,
    parse_fulfillment_id,
)
from canonical import FulfillmentRequest
from canonical.documents import FulfillmentAck, FulfillmentCancel, ReturnExpected, RmaLine
from store.columns import rowcount, utcnow
from store.db import Store

SYSTEM = "wms"
T = TypeVar("T")


class BuiltinWms:
    """The embedded warehouse behind ``WmsPort``: one fulfillment order per release."""

    name = "builtin"

    def __init__(self, store: Store, faults: FaultInjector | None = None) -> None:
        self.store = store
        self.faults = faults or FaultInjector(SYSTEM)

    async def release(self, request: FulfillmentRequest) -> FulfillmentAck:
        """Create the location's fulfillment order; a replayed key returns the same order."""
        await self.faults.before("release", location=request.location, order_key=request.order_key)
        return await in_thread(SYSTEM, lambda: self._release(request))

    async def cancel(self, fulfillment_id: str, reason: str) -> FulfillmentCancel:
        """Cancel unless the warehouse already packed or shipped it (then cancelled=False)."""
        await self.faults.before("cancel", fulfillment_id=fulfillment_id)
        return await in_thread(SYSTEM, lambda: self._cancel(fulfillment_id, reason))

    async def expect_return(
        self, return_key: str, rma_id: str, location: str, lines: list[RmaLine], idempotency_key: str
    ) -> ReturnExpected:
        """Record the inbound; ``WmsSimulator`` posts its ``return.received`` receipt after
        ``wms_return_receipt_delay_s``. A replayed key returns the same inbound."""
        await self.faults.before("expect_return", location=location, return_key=return_key, rma_id=rma_id)
        result = await in_thread(
            SYSTEM, lambda: self._expect_return(return_key, rma_id, location, lines, idempotency_key)
        )
        await self.faults.after("expect_return")
        return result

    # -- synchronous halves (run in a worker thread) ---------------------------------------

    def _expect_return(
        self, return_key: str, rma_id: str, location: str, lines: list[RmaLine], key: str
    ) -> ReturnExpected:
        found = self._return_replay(return_key, location, key)
        if found is not None:
            return found
        if not lines:
            raise PermanentError(f"return {return_key} has no lines", reason="invalid_request", system=SYSTEM)
        missing = [ln.line_id for ln in lines if not ln.sku]
        if missing:  # the warehouse receives goods by SKU; unstocked lines never come back
            raise PermanentError(
                f"return {return_key}: lines without a SKU cannot be received: {', '.join(missing)}",
                reason="no_sku",
                system=SYSTEM,
            )
        now = utcnow()
        inbound = ReturnInbound(
            idempotency_key=key,
            return_key=return_key,
            rma_id=rma_id,
            location=location,
            status="expected",
            created_at=now,
            status_changed_at=now,
            lines=[
                ReturnInboundLine(position=i, line_id=ln.line_id, sku=ln.sku or "", quantity=ln.quantity)
                for i, ln in enumerate(lines)
            ],
        )
        try:
            with self.store.session() as s:
                s.add(inbound)
                s.flush()
                return ReturnExpected(inbound_id=inbound.inbound_id, location=inbound.location)
        except IntegrityError:
            found = self._return_replay(return_key, location, key)
            if found is None:
                raise
            return found

    def _return_replay(self, return_key: str, location: str, key: str) -> ReturnExpected | None:
        with self.store.session() as s:
            inbound = s.scalar(select(ReturnInbound).where(ReturnInbound.idempotency_key == key))
            if inbound is None:
                return None
            if (inbound.return_key, inbound.location) != (return_key, location):
                raise PermanentError(
                    f"idempotency key {key!r} already expects {inbound.return_key} at {inbound.location}",
                    reason="idempotency_conflict",
                    system=SYSTEM,
                )
            return ReturnExpected(inbound_id=inbound.inbound_id, location=inbound.location)

    def _release(self, request: FulfillmentRequest) -> FulfillmentAck:
        found = self._replay(request)
        if found is not None:
            return found
        now = utcnow()
        fo = FulfillmentOrder(
            idempotency_key=request.idempotency_key,
            order_key=request.order_key,
            order_name=request.order_name,
            location=request.location,
            ship_to=request.ship_to.model_dump(mode="json") if request.ship_to else None,
            shipping_method=request.shipping_method,
            status="released",
            status_changed_at=now,
            created_at=now,
            lines=[
                FulfillmentOrderLine(position=i, line_id=ln.line_id, sku=ln.sku, quantity=ln.quantity)
                for i, ln in enumerate(request.lines)
            ],
        )
        try:
            with self.store.session() as s:
                s.add(fo)
                s.flush()
                return _ack(fo)
        except IntegrityError:
            # A concurrent release with the same key inserted first: answer with its order.
            found = self._replay(request)
            if found is None:
                raise
            return found

    def _replay(self, request: FulfillmentRequest) -> FulfillmentAck | None:
        with self.store.session() as s:
            fo = s.scalar(
                select(FulfillmentOrder).where(FulfillmentOrder.idempotency_key == request.idempotency_key)
            )
            if fo is None:
                return None
            if (fo.order_key, fo.location) != (request.order_key, request.location):
                raise PermanentError(
                    f"idempotency key {request.idempotency_key!r} already released"
                    f" {fo.order_key} at {fo.location}",
                    reason="idempotency_conflict",
                    system=SYSTEM,
                )
            return _ack(fo)

    def _cancel(self, fulfillment_id: str, reason: str) -> FulfillmentCancel:
        pk = parse_fulfillment_id(fulfillment_id)
        if pk is None:
            raise _not_found(fulfillment_id)
        with self.store.session() as s:
            # Conditional update: the simulator may be moving the same row right now.
            changed = s.execute(
                update(FulfillmentOrder)
                .where(FulfillmentOrder.id == pk, FulfillmentOrder.status.in_(CANCELLABLE))
                .values(status="cancelled", status_changed_at=utcnow(), cancel_reason=reason[:500])
                .execution_options(synchronize_session=False)
            )
            if rowcount(changed) == 1:
                return FulfillmentCancel(fulfillment_id=fulfillment_id, cancelled=True, status="cancelled")
            status = s.scalar(select(FulfillmentOrder.status).where(FulfillmentOrder.id == pk))
        if status is None:
            raise _not_found(fulfillment_id)
        return FulfillmentCancel(
            fulfillment_id=fulfillment_id, cancelled=status == "cancelled", status=status
        )


def _ack(fo: FulfillmentOrder) -> FulfillmentAck:
    return FulfillmentAck(
        fulfillment_id=fo.fulfillment_id, location=fo.location, status=cast(FulfillmentStatus, fo.status)
    )


def _not_found(fulfillment_id: str) -> PermanentError:
    return PermanentError(f"no fulfillment order {fulfillment_id!r}", reason="not_found", system=SYSTEM)


@register("wms", "builtin")
def _builtin(ctx: AdapterContext) -> BuiltinWms:
    return BuiltinWms(ctx.store, FaultInjector("wms", ctx.settings.faults.wms))
