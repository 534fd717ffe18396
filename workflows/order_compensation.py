"""OrderToCash's cancellation: undo in reverse what can be undone (warehouse, ERP order, tax,
payment, the channel's payment), bill what left before the cancellation reached the warehouse."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import names
    from canonical.documents import (
        CancelAck,
        ChannelAck,
        FulfillmentCancel,
        PaymentVoid,
        TaxVoid,
    )
    from workflows.order_channel import ChannelFulfillments


class OrderCompensation(ChannelFulfillments):
    async def _compensate(self) -> bool:
        """Undo in reverse what can be undone; False when nothing was left to cancel."""
        o = self._order
        req = self._cancel
        reason = req.reason if req else "cancelled"
        self._compensating = True
        self._set_status("Cancelling")
        # Shipments that reached us before the cancellation are billed, never dropped.
        await self._bill_pending(keep_status=True)
        await self._bill_channel_fulfillments(keep_status=True)
        if self._policy.channel_fulfils and self._expected and self._all_shipped() and not self._backordered:
            self._record("cancel", "failed", f"{o.channel} fulfilled everything before the cancellation")
            self._cancel = None
            self._compensating = False
            return False
        too_late: list[tuple[str, str]] = []
        for fid, location in sorted(self._fulfillments.items()):
            if self._fulfillment_shipped(fid, location):
                continue
            res = await self._step(
                f"cancel_fulfillment:{fid}",
                lambda _n, fid=fid: self._call(  # type: ignore[misc]
                    names.CANCEL_FULFILLMENT,
                    [fid, reason],
                    FulfillmentCancel,
                    f"Cancel warehouse order {fid}",
                ),
                cancellable=False,
            )
            if res is not None and not res.cancelled:
                self._record(f"cancel_fulfillment:{fid}", "failed", f"too late, warehouse says {res.status}")
                too_late.append((fid, location))
        if too_late:
            await self._bill_uncancellable(too_late)
            if self._expected and self._all_shipped() and not self._backordered:
                self._record(
                    "cancel", "failed", "everything shipped before the warehouse heard of the cancellation"
                )
                self._cancel = None
                self._compensating = False
                return False
        if self._erp_order_id:
            erp_id = self._erp_order_id
            await self._step(
                "cancel_sales_order",
                lambda n: self._call(
                    names.CANCEL_SALES_ORDER,
                    [erp_id, reason, self._key("cancel_sales_order", n)],
                    CancelAck,
                    f"Cancel ERP order {erp_id}",
                ),
                cancellable=False,
            )
        if self._tax_document and not self._shipments:
            doc = self._tax_document
            await self._step(
                "void_tax",
                lambda _: self._call(names.VOID_TAX, [doc], TaxVoid, f"Void tax document {doc}"),
                cancellable=False,
            )
        auth = self._authorization
        if auth is not None and self._captured < auth.amount:
            void = await self._step(
                "void_payment",
                lambda n: self._call(
                    names.VOID_PAYMENT,
                    [auth.authorization_id, self._key("void", n)],
                    PaymentVoid,
                    f"Void authorization {auth.authorization_id}",
                ),
                cancellable=False,
            )
            if void is not None:
                self._voided = self._voided + void.voided
        channel_paid = o.channel_payment
        kept = self._invoiced if self._invoiced < channel_paid else channel_paid
        refund = channel_paid - kept
        if refund.amount > 0:
            await self._step(
                "refund_channel_payment",
                lambda n: self._call(
                    names.CHANNEL_REFUND,
                    [o.channel, o.external_id, refund, reason, self._key("channel_refund", n)],
                    ChannelAck,
                    f"Refund {refund} at {o.channel}",
                ),
                cancellable=False,
            )
            self._refunded = self._refunded + refund
        if req is None or req.source != "channel":
            await self._step(
                "notify_channel_cancelled",
                lambda n: self._call(
                    names.CHANNEL_CANCELLED,
                    [o.channel, o.external_id, reason, self._key("channel_cancel", n)],
                    ChannelAck,
                    f"Tell {o.channel} the order is cancelled",
                ),
                cancellable=False,
            )
        self._set_status("Cancelled")
        self._metrics.cancelled()
        workflow.logger.info("order cancelled", extra=self._log_extra(reason=reason))
        return True
