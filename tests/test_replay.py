"""Recorded histories of every workflow type replay against the current code (CI's safety net
for workflows already running), and an incompatible change is caught."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio import workflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestration.models import OrderToCashInput
from replay import load_histories, replay

HISTORIES = Path(__file__).parent / "histories"


async def test_committed_histories_replay_on_current_code() -> None:
    histories = load_histories(HISTORIES)
    kinds = {h.workflow_id.split("-")[0] + "-" + h.workflow_id.split("-")[1] for h in histories}
    # Every workflow type has recorded histories: orders, returns, inventory adjustment and sync,
    # the three reconciliations and a polled channel's import.
    expected = {"order-shopify", "return-shopify", "inventory-sync", "inventory-rec"}
    expected |= {"reconcile-orders", "reconcile-inventory", "reconcile-settlement", "poll-amazon"}
    assert expected <= kinds, kinds
    outcomes = await replay(histories)
    failures = [(o.workflow_id, o.error) for o in outcomes if o.error]
    assert failures == [], failures


@workflow.defn(name="OrderToCash", sandboxed=False)
class _ReorderedSteps:
    """OrderToCash as a careless change would leave it: tax quoted before the customer."""

    @workflow.run
    async def run(self, inp: OrderToCashInput) -> None:
        await workflow.execute_activity(
            "tax.quote", args=[inp.order, "x"], start_to_close_timeout=timedelta(seconds=5)
        )


async def test_an_incompatible_change_fails_replay() -> None:
    history = next(h for h in load_histories(HISTORIES) if h.workflow_id.startswith("order-"))
    replayer = Replayer(workflows=[_ReorderedSteps], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, workflow.NondeterminismError)
