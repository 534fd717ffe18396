"""Replay recorded workflow histories against the current workflow code.

A change to workflow code that would break workflows already running (a different sequence of
commands for the same history) fails here, before it is deployed. Version such changes with
``workflow.patched`` (see docs/workflow-versioning.md)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import WORKFLOWS


@dataclass
class ReplayOutcome:
    workflow_id: str
    error: str | None


def load_histories(directory: Path) -> list[WorkflowHistory]:
    """Histories saved as JSON (``WorkflowHistory.to_json``), one file each; the file name is the id."""
    out = []
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text())
        out.append(WorkflowHistory.from_json(path.stem, data))
    return out


async def _iterate(histories: Iterable[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for h in histories:
        yield h


async def replay(
    histories: Iterable[WorkflowHistory] | AsyncIterator[WorkflowHistory],
) -> list[ReplayOutcome]:
    """Replay each history; a non-None error means the current code cannot continue it."""
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    outcomes: list[ReplayOutcome] = []
    source = histories if isinstance(histories, AsyncIterator) else _iterate(histories)
    async with replayer.workflow_replay_iterator(source) as results:
        async for r in results:
            err = r.replay_failure
            outcomes.append(
                ReplayOutcome(r.history.workflow_id, f"{type(err).__name__}: {err}" if err else None)
            )
    return outcomes
