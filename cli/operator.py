"""Operator actions from the CLI: one Temporal update on one workflow, refused with the
validator's reason (the workflow's history is not touched) or done."""

from __future__ import annotations

import getpass
from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from cli.common import fail, run, temporal_client
from orchestration.models import OperatorRequest


def operator_request(reason: str, operator: str | None, reference: str | None) -> OperatorRequest:
    """Who (default: the OS user), why and where: refused with the option at fault."""
    try:
        return OperatorRequest(operator=operator or getpass.getuser(), reason=reason, reference=reference)
    except ValidationError as exc:  # e.g. --reason ""
        why = "; ".join(f"--{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(f"refused: {why}") from exc


def act(workflow_id: str, update: Any, req: BaseModel, *, what: str, action: str) -> None:
    """Run ``update`` (a workflow's update method) with ``req`` (an OperatorRequest, an
    AddressEdit) and print its answer; ``what`` names the order or return in errors."""

    async def go() -> str:
        client = await temporal_client()
        result: str = await client.get_workflow_handle(workflow_id).execute_update(update, req)
        return result

    try:
        typer.echo(run(go()))
    except WorkflowUpdateFailedError as exc:
        raise fail(f"refused: {getattr(exc.cause, 'message', None) or exc}") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise fail(f"no running {what}") from exc
        raise fail(f"cannot {action} {what}: {exc.message}") from exc
