"""How the API, the CLI and the tests talk to Temporal: one client, one data converter."""

from __future__ import annotations

import uuid

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError

from canonical import Order, OrderState
from settings import Settings
from workflows import search_attributes as sa
from workflows.models import OrderToCashInput, ProcessingPolicy
from workflows.order_to_cash import OrderToCash


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


def policy_from(settings: Settings) -> ProcessingPolicy:
    return ProcessingPolicy(
        activity_timeout_s=settings.activity_timeout_s,
        max_attempts=settings.activity_max_attempts,
        retry_initial_s=settings.retry_initial_s,
        retry_max_s=settings.retry_max_s,
        shipping_sla_s=settings.shipping_sla_s,
    )


def order_summary(order: Order) -> str:
    """The UI's static summary: what this workflow is, at a glance."""
    units = sum(ln.quantity for ln in order.lines)
    lines = len(order.lines)
    return (
        f"Order {order.name or order.external_id} from {order.channel}, {lines} line{'s' * (lines != 1)} "
        f"({units} unit{'s' * (units != 1)}), {order.totals.total}"
    )


async def start_order(
    client: Client, order: Order, settings: Settings, correlation_id: str | None = None
) -> WorkflowHandle[OrderToCash, OrderState]:
    """Start OrderToCash for the order, or find the one already running (duplicate delivery).

    The workflow ID is deterministic, so concurrent duplicates race for the same ID and exactly
    one wins; a delivery for an order whose workflow already closed is a duplicate too.
    """
    cid = correlation_id or uuid.uuid4().hex
    try:
        return await client.start_workflow(
            OrderToCash.run,
            OrderToCashInput(order=order, policy=policy_from(settings), correlation_id=cid),
            id=order.workflow_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.ORDER_ID, order.key),
                    SearchAttributePair(sa.CHANNEL, order.channel),
                    SearchAttributePair(sa.ORDER_STATUS, "Received"),
                    SearchAttributePair(sa.CORRELATION_ID, cid),
                ]
            ),
            static_summary=order_summary(order),
            static_details=f"Correlation ID {cid}",
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle_for(OrderToCash.run, order.workflow_id)
