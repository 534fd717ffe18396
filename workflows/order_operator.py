"""OrderToCash's operator actions: retry, skip, approve, edit the address and cancel, each a
Temporal update validated before it touches history, and cancellation asked by the channel."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from canonical import (
        OperatorAction,
    )
    from orchestration.models import AddressEdit, CancelRequest, OperatorRequest
    from workflows.order_core import FINAL_STATUSES, HELD_STEPS, OrderCore


class OrderOperatorActions(OrderCore):
    @workflow.update
    async def retry(self, req: OperatorRequest) -> str:
        """Retry the step that needs attention, after its cause was fixed."""
        action = self._take_action("retry", req)
        return f"retrying {action.step}"

    @retry.validator
    def _validate_retry(self, req: OperatorRequest) -> None:
        if self._attention is None:
            raise ValueError(f"nothing to retry: the order is {self._status}, not waiting for an operator")
        if self._attention.step in HELD_STEPS:
            raise ValueError(f"the order is {HELD_STEPS[self._attention.step]}: approve or cancel it")

    @workflow.update
    async def approve(self, req: OperatorRequest) -> str:
        """Release an order held by a rule (a high value, a failed address check) for processing."""
        self._take_action("approve", req)
        return "approved"

    @workflow.update
    def edit_address(self, edit: AddressEdit) -> str:
        """Correct the ship-to address before the order is released to a warehouse."""
        a = self._ship_to = edit.address
        self._actions.append(
            OperatorAction(
                action="edit_address",
                operator=edit.operator,
                reason=edit.reason,
                reference=f"{a.line1}, {a.city} {a.postal_code or ''}".strip(),
                at=workflow.now(),
                step=self._attention.step if self._attention else None,
            )
        )
        return "address updated"

    @edit_address.validator
    def _validate_edit_address(self, edit: AddressEdit) -> None:
        if self._fulfillments or self._shipments:
            raise ValueError("the order is already with a warehouse: change the address there")
        if self._status in FINAL_STATUSES:
            raise ValueError(f"cannot edit: the order is {self._status}")

    @approve.validator
    def _validate_approve(self, req: OperatorRequest) -> None:
        if self._attention is None or self._attention.step not in HELD_STEPS:
            raise ValueError(f"nothing to approve: the order is {self._status}, not held for approval")

    @workflow.update
    async def skip(self, req: OperatorRequest) -> str:
        """Skip the failed step; the reference says where it was done by hand."""
        action = self._take_action("skip", req)
        return f"skipped {action.step} ({req.reference})"

    @skip.validator
    def _validate_skip(self, req: OperatorRequest) -> None:
        if self._attention is None:
            raise ValueError(f"nothing to skip: the order is {self._status}, not waiting for an operator")
        if self._attention.step in HELD_STEPS:
            raise ValueError(f"the order is {HELD_STEPS[self._attention.step]}: approve or cancel it")
        if not req.reference:
            raise ValueError(
                "skip needs --reference: where the step was done by hand (e.g. an ERP order number)"
            )
        if self._attention.step == "await_shipment":
            raise ValueError("a shipment cannot be skipped: retry to keep waiting, or cancel")

    @workflow.update
    async def cancel(self, req: OperatorRequest) -> str:
        """Cancel the order: compensate what was done, or only what is unshipped."""
        action = self._operator_action("cancel", req)
        self._cancel = CancelRequest(reason=req.reason, source="operator", operator=req.operator)
        if self._attention is not None and self._attention_cancellable:
            self._pending_action = action
            return "cancelling"
        # Stuck on billing a shipment that left: the cancellation applies once it is billed.
        return (
            "cancelling" if self._attention is None else f"cancelling once {self._attention.step} is resolved"
        )

    def _cancellable(self) -> str | None:
        """Why the order can no longer be cancelled, or None if it can."""
        if self._status in FINAL_STATUSES or self._cancel is not None:
            return f"the order is {self._status}"
        if self._channel_pending:
            return f"{self._order.channel} reported a fulfillment not billed yet: the goods have left"
        if self._shipments and self._all_shipped() and not self._backordered:
            # Status may read NeedsAttention (e.g. stuck on capture) while everything shipped.
            return "everything has shipped"
        return None

    @cancel.validator
    def _validate_cancel(self, req: OperatorRequest) -> None:
        why = self._cancellable()
        if why:
            raise ValueError(f"cannot cancel: {why}")
        if self._compensating:
            raise ValueError("cannot cancel during compensation: retry or skip the failed step")

    @workflow.signal
    def request_cancel(self, req: CancelRequest) -> None:
        """Cancellation from the channel or the API (a signal: the sender cannot wait)."""
        why = self._cancellable()
        if why:
            self._record("cancel_request", "failed", f"{req.source} asked to cancel but {why}")
            return
        self._cancel = req
