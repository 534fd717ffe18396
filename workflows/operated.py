"""What the operated workflows (orders, returns) share: the record of what was done, operator
actions with who/when/why, and idempotency keys from the workflow id and the step."""

from __future__ import annotations

from typing import Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from canonical import Attention, OperatorAction, StepRecord
    from canonical.state import OperatorActionKind
    from orchestration.models import OperatorRequest


class Operated:
    """A base for workflow classes; each sets these fields in its ``__init__``."""

    _attention: Attention | None
    _pending_action: OperatorAction | None
    _actions: list[OperatorAction]
    _steps: list[StepRecord]

    @property
    def _wf_id(self) -> str:
        return workflow.info().workflow_id

    def _key(self, step: str, operator_retries: int) -> str:
        """Idempotency key: workflow + step, and a new one only after an operator's retry of a
        step that failed for good (so no money or record can have been created under it)."""
        base = f"{self._wf_id}:{step}"
        return base if operator_retries == 0 else f"{base}:r{operator_retries}"

    def _skip_reference(self, step: str) -> str | None:
        """Where an operator said a skipped step was done by hand."""
        for a in reversed(self._actions):
            if a.action == "skip" and a.step == step:
                return a.reference
        return None

    def _record(
        self, step: str, status: Literal["done", "skipped", "failed"], detail: str | None = None
    ) -> None:
        self._steps.append(StepRecord(step=step, status=status, at=workflow.now(), detail=detail))

    def _operator_action(self, kind: OperatorActionKind, req: OperatorRequest) -> OperatorAction:
        """Record an operator's action (who, when, why, at which step)."""
        action = OperatorAction(
            action=kind,
            operator=req.operator,
            reason=req.reason,
            reference=req.reference,
            at=workflow.now(),
            step=self._attention.step if self._attention else None,
        )
        self._actions.append(action)
        return action

    def _take_action(self, kind: OperatorActionKind, req: OperatorRequest) -> OperatorAction:
        """Record the action and hand it to the step waiting for an operator."""
        action = self._pending_action = self._operator_action(kind, req)
        return action
