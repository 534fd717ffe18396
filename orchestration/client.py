"""How the API, the CLI and the tests talk to Temporal: one client, one data converter."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

import tracing
from canonical import Acceptance, InventoryEvent, Order, OrderState
from canonical.edits import OrderEdit
from canonical.returns import ReturnContext, ReturnRequest, ReturnState
from orchestration import names
from orchestration import search_attributes as sa
from orchestration.inventory_models import (
    ChannelSyncInput,
    InventoryAdjustmentInput,
    SyncPolicy,
    adjustment_workflow_id,
    sync_workflow_id,
)
from orchestration.models import OrderToCashInput, ProcessingPolicy
from orchestration.returns_models import ReturnInput, ReturnPolicy
from settings import Settings


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        interceptors=tracing.client_interceptors(settings),
    )


def policy_from(settings: Settings, channel: str | None = None) -> ProcessingPolicy:
    """The processing policy for an order of ``channel`` (None: one that is not an order's)."""
    return ProcessingPolicy(
        activity_timeout_s=settings.activity_timeout_s,
        max_attempts=settings.activity_max_attempts,
        retry_initial_s=settings.retry_initial_s,
        retry_max_s=settings.retry_max_s,
        shipping_sla_s=settings.shipping_sla_s,
        hold_above=dict(settings.hold_above),
        address_check=settings.address_check,
        channel_fulfils=channel is not None and channel in settings.fulfilled_by_channel,
    )


def order_summary(order: Order) -> str:
    """The UI's static summary: what this workflow is, at a glance."""
    units = sum(ln.quantity for ln in order.lines)
    lines = len(order.lines)
    return (
        f"Order {order.name or order.external_id} from {order.channel}, {lines} line{'s' * (lines != 1)} "
        f"({units} unit{'s' * (units != 1)}), {order.totals.total}"
    )


def _order_input(order: Order, settings: Settings, cid: str) -> OrderToCashInput:
    return OrderToCashInput(order=order, policy=policy_from(settings, order.channel), correlation_id=cid)


def _order_start(order: Order, settings: Settings, cid: str) -> dict[str, Any]:
    """How every start of an order's workflow looks: its deterministic id, and a duplicate that
    finds the running (or finished) workflow instead of starting a second one."""
    return {
        "id": order.workflow_id,
        "task_queue": settings.task_queue,
        "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
        "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
        "search_attributes": TypedSearchAttributes(
            [
                SearchAttributePair(sa.ORDER_ID, order.key),
                SearchAttributePair(sa.CHANNEL, order.channel),
                SearchAttributePair(sa.ORDER_STATUS, "Received"),
                SearchAttributePair(sa.CORRELATION_ID, cid),
            ]
        ),
        "static_summary": order_summary(order),
        "static_details": f"Correlation ID {cid}",
    }


async def start_order_and_wait(
    client: Client, order: Order, settings: Settings, correlation_id: str, timeout_s: float
) -> Acceptance | None:
    """Start the order (update-with-start: one round trip) and wait up to ``timeout_s`` for the
    ERP's acceptance; None when it takes longer (the order carries on regardless)."""
    op: WithStartWorkflowOperation[Any, OrderState] = WithStartWorkflowOperation(
        names.ORDER_TO_CASH,
        _order_input(order, settings, correlation_id),
        result_type=OrderState,
        **_order_start(order, settings, correlation_id),
    )
    try:
        handle = await client.start_update_with_start_workflow(
            names.ORDER_ACCEPTED,
            start_workflow_operation=op,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            result_type=Acceptance,
        )
    except WorkflowAlreadyStartedError:  # a duplicate of an order that has finished
        state = await order_handle(client, order.workflow_id).query(names.ORDER_STATE, result_type=OrderState)
        return Acceptance(status=state.status, erp_order_id=state.erp_order_id)
    try:
        accepted: Acceptance = await handle.result(rpc_timeout=timedelta(seconds=timeout_s))
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        return None
    return accepted


async def start_order(
    client: Client,
    order: Order,
    settings: Settings,
    correlation_id: str | None = None,
    edit: OrderEdit | None = None,
) -> WorkflowHandle[Any, OrderState]:
    """Start OrderToCash for the order, or find the one already running (duplicate delivery).

    The workflow ID is deterministic, so concurrent duplicates race for the same ID and exactly
    one wins; a delivery for an order whose workflow already closed is a duplicate too. With an
    ``edit`` it is signal-with-start: a running order gets the edit (``order_updated``), a new
    one starts from ``order`` and finds nothing to apply.
    """
    cid = correlation_id or uuid.uuid4().hex
    signal: dict[str, Any] = (
        {} if edit is None else {"start_signal": names.ORDER_UPDATED, "start_signal_args": [edit]}
    )
    try:
        return await client.start_workflow(
            names.ORDER_TO_CASH,
            _order_input(order, settings, cid),
            result_type=OrderState,
            **_order_start(order, settings, cid),
            **signal,
        )
    except WorkflowAlreadyStartedError:
        return order_handle(client, order.workflow_id)


def order_handle(client: Client, workflow_id: str) -> WorkflowHandle[Any, OrderState]:
    """The handle of an order's workflow (``order-<channel>-<external id>``)."""
    return client.get_workflow_handle(workflow_id, result_type=OrderState)


async def ensure_inventory_syncs(client: Client, settings: Settings) -> None:
    """Start each channel's inventory sync unless it runs already (idempotent: every worker
    start calls it, and only one sync per channel ever runs)."""
    policy = SyncPolicy(
        debounce_s=settings.inventory_debounce_s,
        poll_s=settings.inventory_poll_s,
        activity_timeout_s=settings.activity_timeout_s,
    )
    for channel in settings.inventory_channels:
        await client.start_workflow(
            names.CHANNEL_INVENTORY_SYNC,
            ChannelSyncInput(
                channel=channel,
                policy=policy,
                peers=[c for c in settings.inventory_channels if c != channel],
            ),
            id=sync_workflow_id(channel),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Inventory sync for {channel}: absolute sellable stock, coalesced",
        )


async def submit_inventory_event(
    client: Client, event: InventoryEvent, settings: Settings, correlation_id: str | None = None
) -> str:
    """Start InventoryAdjustment for the event; a repeated event id finds the same workflow.
    A ``correlation_id`` (a webhook's event id) goes to the CorrelationId search attribute, so
    the activities' log lines carry it."""
    attributes = (
        TypedSearchAttributes([SearchAttributePair(sa.CORRELATION_ID, correlation_id)])
        if correlation_id
        else TypedSearchAttributes.empty
    )
    try:
        handle = await client.start_workflow(
            names.INVENTORY_ADJUSTMENT,
            InventoryAdjustmentInput(
                event=event,
                channels=list(settings.inventory_channels),
                activity_timeout_s=settings.activity_timeout_s,
                max_attempts=settings.activity_max_attempts,
            ),
            id=adjustment_workflow_id(event.event_id),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attributes,
            static_summary=f"{event.kind} {event.quantity} x {event.sku} at {event.location}, {event.source}",
        )
        return handle.id
    except WorkflowAlreadyStartedError:
        return adjustment_workflow_id(event.event_id)


def return_policy_from(settings: Settings, channel: str) -> ReturnPolicy:
    return ReturnPolicy(
        processing=policy_from(settings),
        window_days=settings.returns_window_days_by_channel.get(channel, settings.returns_window_days),
        receipt_timeout_s=settings.returns_receipt_timeout_s,
        refund_on_first_scan=settings.returns_refund_on_first_scan,
        refund_shipping=settings.returns_refund_shipping,
        return_label=settings.returns_label,
        default_location=settings.default_location,
    )


def return_summary(req: ReturnRequest) -> str:
    units = sum(ln.quantity for ln in req.lines)
    return (
        f"Return {req.return_id} of order {req.order_external_id} from {req.channel}: "
        f"{units} unit{'s' * (units != 1)} ({req.reason[:80]})"
    )


async def start_return(
    client: Client, req: ReturnRequest, settings: Settings, correlation_id: str | None = None
) -> WorkflowHandle[Any, ReturnState]:
    """Start ReturnToRefund, or find the one with the same id (a duplicate never starts a second
    return, even after the first has closed)."""
    cid = correlation_id or uuid.uuid4().hex
    try:
        return await client.start_workflow(
            names.RETURN_TO_REFUND,
            ReturnInput(request=req, policy=return_policy_from(settings, req.channel), correlation_id=cid),
            result_type=ReturnState,
            id=req.workflow_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.ORDER_ID, req.order_key),
                    SearchAttributePair(sa.CHANNEL, req.channel),
                    SearchAttributePair(sa.RETURN_STATUS, "Requested"),
                    SearchAttributePair(sa.CORRELATION_ID, cid),
                ]
            ),
            static_summary=return_summary(req),
            static_details=f"Correlation ID {cid}",
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(req.workflow_id, result_type=ReturnState)


async def order_return_context(client: Client, order_key: str) -> ReturnContext | None:
    """What a return of the order would be checked against; None when there is no such order."""
    wf_id = order_key if order_key.startswith("order-") else f"order-{order_key}"
    try:
        ctx: ReturnContext = await order_handle(client, wf_id).query(
            names.ORDER_RETURN_CONTEXT, result_type=ReturnContext
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return ctx
