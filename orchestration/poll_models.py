"""Inputs and results of ``PollOrders`` (a polled channel's scheduled import).

Inputs ignore unknown fields: a schedule keeps the input it was created with."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from orchestration.reconcile_models import ReconcilePolicy

WATERMARK_KIND = "poll"
"""Pollers keep their own watermark per channel, apart from reconciliation's."""


class PollInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    channel: str
    since: datetime | None = Field(None, description="import from here; the watermark is left alone")
    policy: ReconcilePolicy = ReconcilePolicy()


class PollChunk(BaseModel):
    pages: int
    next_cursor: str | None
    counts: dict[str, int] = Field(default_factory=dict)


class PollResult(BaseModel):
    channel: str
    since: datetime
    until: datetime
    pages: int = 0
    counts: dict[str, int] = Field(
        default_factory=dict,
        description="imported, known, held, cancelled, cancelled_before_import, unmappable",
    )
    watermark_advanced: bool = False

    def count(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)
