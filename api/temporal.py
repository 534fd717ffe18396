"""The API's way to Temporal: one lazily connected client, and a signal that is sent once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Literal

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.errors import problem
from orchestration.client import connect
from settings import Settings

ClientFactory = Callable[[], Awaitable[Client]]


class TemporalGateway:
    """One lazily connected client: the API starts (and accepts webhooks into its inbox) even
    while Temporal is down or still coming up. Once connected, the client reconnects by itself
    when the server comes back."""

    def __init__(
        self, settings: Settings, client: Client | None = None, factory: ClientFactory | None = None
    ) -> None:
        self.settings = settings
        self._client = client
        self._factory = factory
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    try:
                        if self._factory is not None:
                            self._client = await self._factory()
                        else:
                            self._client = await connect(self.settings)
                    except Exception as exc:  # connection refused, DNS, TLS...
                        raise problem(503, "temporal_unavailable", f"cannot reach Temporal: {exc}") from exc
        return self._client


SignalOutcome = Literal["signalled", "closed", "missing"]


async def signal_order(
    client: Client, workflow_id: str, signal: str, arg: Any, *, request_id: str | None = None
) -> SignalOutcome:
    """Signal the order's workflow and say what became of it: ``closed`` when the workflow
    has finished (a late event, to acknowledge and ignore), ``missing`` when there never was
    one. Other Temporal failures raise ``RPCError``. With a ``request_id`` the signal is
    delivered at most once however often it is retried (see ``signal_once``)."""
    try:
        if request_id is None:
            await client.get_workflow_handle(workflow_id).signal(signal, arg)
        else:
            await signal_once(client, workflow_id, signal, arg, request_id=request_id)
        return "signalled"
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return "missing"
    return "closed"


async def signal_once(
    client: Client,
    workflow_id: str,
    signal: str,
    arg: Any,
    *,
    request_id: str,
    timeout: timedelta | None = None,
) -> None:
    """Signal the workflow's current run with a fixed request id.

    ``WorkflowHandle.signal`` sends a random request id; Temporal drops a signal whose request
    id the run has already seen, so a relay that retries after a lost answer (a timeout, a
    crash between the signal and marking the inbox row) does not deliver the event twice.
    Raises ``RPCError`` like ``WorkflowHandle.signal`` (NOT_FOUND: no running workflow).
    """
    req = SignalWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        signal_name=signal,
        identity=client.identity,
        request_id=request_id,
    )
    req.input.payloads.extend(await client.data_converter.encode([arg]))
    await client.workflow_service.signal_workflow_execution(req, retry=True, timeout=timeout)
