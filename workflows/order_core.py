"""What every part of OrderToCash shares: the order's state, the steps that wait for an
operator after a lasting failure, and what queries and the Temporal UI show.

OrderToCash (workflows/order_to_cash.py) is this core and its parts: operator actions
(order_operator.py), channel edits (order_edits.py), billing (order_billing.py), fulfillments
the channel reports (order_channel.py) and compensation (order_compensation.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from canonical import (
        Acceptance,
        Address,
        Attention,
        ChannelFulfillment,
        Money,
        OperatorAction,
        Order,
        OrderState,
        OrderStatus,
        Shipment,
        StepRecord,
    )
    from canonical.documents import (
        Allocation,
        Authorization,
        Capture,
    )
    from canonical.edits import OrderEdit
    from canonical.returns import ReturnContext
    from orchestration import search_attributes as sa
    from orchestration.metrics import OrderMetrics, Resolution
    from orchestration.models import CancelRequest, OrderToCashInput
    from workflows import steps
    from workflows.operated import Operated

T = TypeVar("T")

# Steps where a rule holds the order for a person: only approve or cancel apply.
HELD_STEPS = {"approval": "held for approval", "address_check": "held after a failed address check"}

# Statuses after which there is nothing left to cancel.
ENDED_STATUSES: set[str] = {"Completed", "Cancelled"}
FINAL_STATUSES: set[str] = {"Shipped", "Delivered", "Completed", "Cancelling", "Cancelled"}


class OrderCancelled(Exception):
    """Raised inside the workflow to unwind to compensation."""


class OrderCore(Operated):
    """The state of one order's workflow and the machinery its parts share."""

    @workflow.init
    def __init__(self, inp: OrderToCashInput) -> None:
        o = inp.order
        cur = o.currency
        self._order: Order = o
        self._policy = inp.policy
        self._correlation_id = inp.correlation_id
        self._status: OrderStatus = "Received"
        self._customer_id: str | None = None
        self._erp_order_id: str | None = None
        self._erp_backend: str | None = None
        self._tax_document: str | None = None
        self._authorization: Authorization | None = None
        self._allocations: list[Allocation] = []
        self._backordered: dict[str, int] = {}
        self._backordered_skus: dict[str, str] = {}
        self._release_round = 0
        self._fulfillments: dict[str, str] = {}
        self._expected: dict[str, int] = {}
        self._shipped: dict[str, int] = {}
        self._shipments: list[Shipment] = []
        self._seen_shipments: set[str] = set()
        self._pending_shipments: list[Shipment] = []
        self._tracking: dict[str, str] = {}
        self._seen_tracking: set[str] = set()
        self._captures: list[Capture] = []
        self._invoices: list[str] = []
        self._captured = Money.zero(cur)
        self._invoiced = Money.zero(cur)
        self._refunded = Money.zero(cur)
        self._voided = Money.zero(cur)
        self._attention: Attention | None = None
        self._pending_action: OperatorAction | None = None
        self._actions: list[OperatorAction] = []
        self._steps: list[StepRecord] = []
        self._operator_retries: dict[str, int] = {}
        self._cancel: CancelRequest | None = None
        self._waiting_for: str | None = None
        self._attention_cancellable = True
        self._compensating = False
        self._ship_to: Address | None = o.shipping_address
        self._delivered_at: datetime | None = None
        # Channel edits (orders/updated): None until run decides whether this code path is on.
        self._edits_on: bool | None = None
        self._pending_edit: OrderEdit | None = None
        self._edit_seen_at: datetime | None = None
        self._edits = 0
        # Fulfillments the channel reports: to bill when it ships its own orders
        # (policy.channel_fulfils), else only noted.
        self._channel_pending: list[ChannelFulfillment] = []
        self._channel_latest: dict[str, ChannelFulfillment] = {}  # newest report per fulfillment
        self._channel_billed: dict[str, list[str]] = {}  # fulfillment id -> its tracking numbers
        self._channel_noted: set[str] = set()
        self._channel_foreign: list[ChannelFulfillment] = []  # made at the channel beside the warehouse
        self._channel_cancelled: list[ChannelFulfillment] = []  # cancelled there after we billed them
        # Business metrics: replay-safe, and no history events (docs/observability.md).
        self._metrics = OrderMetrics(o.channel)

    async def _call(self, activity: str, args: Sequence[Any], result_type: type[T], summary: str) -> T:
        return await steps.call(self._policy, activity, args, result_type, summary)

    async def _step(
        self, step: str, call: Callable[[int], Awaitable[T]], *, cancellable: bool = True
    ) -> T | None:
        """Run one step; on a lasting failure wait for an operator. None means skipped."""
        while True:
            try:
                result = await call(self._operator_retries.get(step, 0))
            except ActivityError as err:
                reason, message = steps.describe(err)
                action = await self._await_operator(step, reason, message, cancellable=cancellable)
                if action.action == "retry":
                    if steps.refused_for_good(err):
                        # Refused for good, so nothing happened under the old key: a new key lets
                        # the vendor act on the corrected request. After timeouts or exhausted
                        # transient retries the vendor may have acted: keep the key, so a retry
                        # returns that result instead of acting twice.
                        self._operator_retries[step] = self._operator_retries.get(step, 0) + 1
                    continue
                if action.action == "skip":
                    self._record(step, "skipped", action.reference)
                    return None
                raise OrderCancelled() from None
            self._record(step, "done")
            return result

    async def _await_operator(
        self,
        step: str,
        reason: str,
        message: str,
        *,
        cancellable: bool,
        resolved_by: Callable[[], bool] | None = None,
        edits: bool = True,
    ) -> OperatorAction:
        # While compensating, a cancellation is already under way: only retry or skip apply.
        cancellable = cancellable and not self._compensating
        previous = self._status
        attention = Attention(reason=reason, step=step, message=message, since=workflow.now())
        self._attention = attention
        self._attention_cancellable = cancellable
        self._pending_action = None
        self._set_status("NeedsAttention")
        self._metrics.attention_entered(reason)
        workflow.logger.warning("order needs attention", extra=self._log_extra(reason=reason, step=step))

        def decided() -> bool:
            return (
                self._pending_action is not None
                or (cancellable and self._cancel is not None)
                or (resolved_by is not None and resolved_by())
            )

        while True:
            await workflow.wait_condition(lambda: decided() or (edits and self._edit_due()))
            if decided():
                break
            # The channel edited the order meanwhile: take the edit, then wait on (or stop
            # waiting, if the edit resolved what this wait was for).
            await self._take_edits()
            if decided():
                break
            self._attention, self._attention_cancellable = attention, cancellable
            self._set_status("NeedsAttention")
        action = self._pending_action
        self._pending_action = None
        self._attention = None
        self._set_status(previous)
        if action is None:
            if self._cancel is not None and cancellable:
                self._attention_resolved(attention, "cancel")
                raise OrderCancelled()
            # Resolved by an event (e.g. the late shipment arrived): carry on as if retried.
            self._attention_resolved(attention, "resolved")
            return OperatorAction(action="retry", operator="system", reason="resolved", at=workflow.now())
        self._attention_resolved(attention, action.action)
        return action

    def _attention_resolved(self, attention: Attention, resolution: Resolution) -> None:
        self._metrics.attention_resolved(attention.reason, attention.since, resolution)
        workflow.logger.info(
            "order attention resolved",
            extra=self._log_extra(reason=attention.reason, step=attention.step, resolution=resolution),
        )

    def _checkpoint(self) -> None:
        if self._cancel is not None:
            raise OrderCancelled()

    def _cancel_pending(self) -> bool:
        return self._cancel is not None

    def _all_shipped(self) -> bool:
        return all(self._shipped.get(line, 0) >= qty for line, qty in self._expected.items())

    @workflow.query
    def state(self) -> OrderState:
        return OrderState(
            order_key=self._order.key,
            workflow_id=self._wf_id,
            channel=self._order.channel,
            external_id=self._order.external_id,
            name=self._order.name,
            status=self._status,
            erp_order_id=self._erp_order_id,
            erp_backend=self._erp_backend,
            customer_id=self._customer_id,
            tax_document=self._tax_document,
            authorization_id=self._authorization.authorization_id if self._authorization else None,
            total=self._order.totals.total,
            captured=self._captured,
            invoiced=self._invoiced,
            refunded=self._refunded,
            channel_paid=self._order.channel_payment,
            voided=self._voided,
            shipments=list(self._shipments),
            tracking=dict(self._tracking),
            fulfillments=dict(self._fulfillments),
            invoices=list(self._invoices),
            backordered=dict(self._backordered),
            attention=self._attention,
            actions=list(self._actions),
            steps=list(self._steps),
            waiting_for=self._waiting_for,
        )

    @workflow.update
    async def accepted(self) -> Acceptance:
        """Wait until the ERP accepted the order (or it needs a person, or it ended): what
        `POST /v1/orders?wait=accepted` answers a headless storefront. Issues no commands."""
        await workflow.wait_condition(
            lambda: (
                self._erp_order_id is not None
                or self._attention is not None
                or self._status in ENDED_STATUSES
            )
        )
        return Acceptance(
            status=self._status,
            erp_order_id=self._erp_order_id,
            attention_reason=self._attention.reason if self._attention else None,
        )

    @workflow.query
    def return_context(self) -> ReturnContext:
        """What a return of this order needs: the order, what shipped from where, the captures."""
        locations: dict[str, str] = {}
        for sh in self._shipments:
            for ln in sh.lines:
                locations.setdefault(ln.line_id, sh.location)
        last_shipped = max((sh.shipped_at for sh in self._shipments), default=None)
        return ReturnContext(
            order=self._order,
            status=self._status,
            erp_order_id=self._erp_order_id,
            tax_document=self._tax_document,
            captures=list(self._captures),
            shipped=dict(self._shipped),
            ship_locations=locations,
            delivered_at=self._delivered_at or last_shipped,
        )

    @property
    def _label(self) -> str:
        return self._order.name or self._order.external_id

    def _log_extra(self, **fields: Any) -> dict[str, Any]:
        """Fields of a workflow log line: the correlation id links it to the webhook delivery
        and to the activities' lines (workflow and run ids come from the SDK's logger)."""
        return {"correlation_id": self._correlation_id, "order_key": self._order.key, **fields}

    def _completed(self) -> None:
        self._metrics.completed()
        workflow.logger.info("order completed", extra=self._log_extra())

    def _set_status(self, status: OrderStatus) -> None:
        self._status = status
        self._publish()

    def _publish(self) -> None:
        """Keep search attributes and the UI's current details in step with the state."""
        o = self._order
        updates = [
            sa.ORDER_ID.value_set(o.key),
            sa.CHANNEL.value_set(o.channel),
            sa.ORDER_STATUS.value_set(self._status),
            sa.ATTENTION_REASON.value_set(self._attention.reason)
            if self._attention
            else sa.ATTENTION_REASON.value_unset(),
            sa.CORRELATION_ID.value_set(self._correlation_id),
        ]
        if self._erp_backend:  # only set behind PATCH_ERP_BACKEND: old histories upsert as before
            updates.append(sa.ERP_BACKEND.value_set(self._erp_backend))
        workflow.upsert_search_attributes(updates)
        lines = [
            f"**{self._status}**",
            f"ERP order: {self._erp_order_id or '-'}"
            + (f" ({self._erp_backend})" if self._erp_backend else ""),
            f"Captured {self._captured} / invoiced {self._invoiced} of {o.totals.total}",
        ]
        if self._fulfillments:
            lines.append("Warehouse: " + ", ".join(f"{v} {k}" for k, v in sorted(self._fulfillments.items())))
        if self._tracking:
            lines.append("Tracking: " + ", ".join(f"{k} ({v})" for k, v in sorted(self._tracking.items())))
        if self._attention:
            a = self._attention
            lines.append(f"Needs attention: {a.reason} at {a.step}: {a.message}")
        if self._waiting_for:
            lines.append(f"Waiting for {self._waiting_for}")
        workflow.set_current_details("\n\n".join(lines))

    # Supplied by OrderEdits (order_edits.py): a wait for an operator takes the channel's edits.
    def _edit_due(self) -> bool:
        raise NotImplementedError

    async def _take_edits(self) -> None:
        raise NotImplementedError
