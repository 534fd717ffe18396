"""Return-to-refund activities: one per external call, each a thin wrapper over a port."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowQueryFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities import names
from activities.errors import adapter_errors
from activities.orders import Adapters, bind_activity_logger, stock_moved
from canonical import Address, InvoiceAmounts
from canonical.documents import (
    ChannelAck,
    CreditMemoAck,
    Label,
    ReturnExpected,
    ReturnReceiptAck,
    RmaAck,
    RmaLine,
    TaxReversal,
)
from canonical.returns import CaptureBalance, DispositionLine, ReturnContext, ReturnNotice


class ReturnActivities:
    def __init__(self, adapters: Adapters) -> None:
        self.a = adapters

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.return_context,
            self.authorize_return,
            self.receive_return,
            self.post_credit_memo,
            self.close_return,
            self.reverse_tax,
            self.capture_balances,
            self.expect_return,
            self.return_label,
            self.channel_return,
        ]

    # -- the order ------------------------------------------------------------------
    @activity.defn(name=names.RETURN_CONTEXT)
    async def return_context(self, order_workflow_id: str) -> ReturnContext:
        """The order's side of a return, from its workflow's query (open or closed)."""
        handle = activity.client().get_workflow_handle(order_workflow_id)
        try:
            ctx: ReturnContext = await handle.query("return_context", result_type=ReturnContext)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise ApplicationError(
                    f"no order workflow {order_workflow_id}: ingest the order first, then retry",
                    type="order_not_found",
                    non_retryable=True,
                ) from exc
            raise
        except WorkflowQueryFailedError as exc:
            raise ApplicationError(
                f"order {order_workflow_id} cannot say what it shipped: {exc}",
                type="order_unreadable",
                non_retryable=True,
            ) from exc
        return ctx

    # -- ERP ------------------------------------------------------------------------
    @activity.defn(name=names.AUTHORIZE_RETURN)
    async def authorize_return(
        self, erp_order_id: str, return_key: str, lines: list[RmaLine], key: str
    ) -> RmaAck:
        with adapter_errors():
            ack = await self.a.erp.authorize_return(erp_order_id, return_key, lines, key)
        bind_activity_logger().info("return authorized", rma_id=ack.rma_id, created=ack.created)
        return ack

    @activity.defn(name=names.RECEIVE_RETURN)
    async def receive_return(self, rma_id: str, lines: list[DispositionLine], key: str) -> ReturnReceiptAck:
        with adapter_errors():
            ack = await self.a.erp.receive_return(rma_id, lines, key)
        bind_activity_logger().info(
            "return received", rma_id=rma_id, restocked=ack.restocked, written_off=str(ack.written_off)
        )
        if ack.restocked:
            await stock_moved(self.a)
        return ack

    @activity.defn(name=names.POST_CREDIT_MEMO)
    async def post_credit_memo(self, rma_id: str, amounts: InvoiceAmounts, key: str) -> CreditMemoAck:
        with adapter_errors():
            ack = await self.a.erp.post_credit_memo(rma_id, amounts, key)
        bind_activity_logger().info(
            "credit memo posted", credit_memo_id=ack.credit_memo_id, total=str(ack.total)
        )
        return ack

    @activity.defn(name=names.CLOSE_RETURN)
    async def close_return(self, rma_id: str, reason: str, key: str) -> RmaAck:
        with adapter_errors():
            return await self.a.erp.close_return(rma_id, reason, key)

    # -- tax and payment ------------------------------------------------------------
    @activity.defn(name=names.REVERSE_TAX)
    async def reverse_tax(self, document_code: str, credit_code: str, amounts: InvoiceAmounts) -> TaxReversal:
        with adapter_errors():
            return await self.a.tax.reverse(document_code, credit_code, amounts)

    @activity.defn(name=names.CAPTURE_BALANCES)
    async def capture_balances(self, capture_ids: list[str]) -> list[CaptureBalance]:
        with adapter_errors():
            return [await self.a.payment.capture_balance(cid) for cid in capture_ids]

    # -- warehouse and carrier ------------------------------------------------------
    @activity.defn(name=names.EXPECT_RETURN)
    async def expect_return(
        self, return_key: str, rma_id: str, location: str, lines: list[RmaLine], key: str
    ) -> ReturnExpected:
        with adapter_errors():
            return await self.a.wms.expect_return(return_key, rma_id, location, lines, key)

    @activity.defn(name=names.RETURN_LABEL)
    async def return_label(
        self, return_key: str, ship_from: Address | None, to_location: str, key: str
    ) -> Label:
        with adapter_errors():
            return await self.a.carrier.create_return_label(return_key, ship_from, to_location, key)

    # -- channel --------------------------------------------------------------------
    @activity.defn(name=names.CHANNEL_RETURN)
    async def channel_return(
        self, channel: str, external_order_id: str, notice: ReturnNotice, key: str
    ) -> ChannelAck:
        with adapter_errors():
            return await self.a.channel(channel).notify_return(external_order_id, notice, key)
