"""Inputs, progress and results of the reconciliation workflows.

Inputs ignore unknown fields: a schedule keeps the input it was created with, so a field removed
later must not make the next scheduled run fail to start."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.common import RetryPolicy

Kind = Literal["orders", "inventory", "settlement"]
KINDS: tuple[Kind, ...] = ("orders", "inventory", "settlement")


class ReconcilePolicy(BaseModel):
    model_config = ConfigDict(extra="ignore")

    activity_timeout_s: float = Field(300.0, description="one page batch, ingestion or comparison")
    heartbeat_s: float = Field(60.0, description="a long activity that stops heartbeating is retried")
    page_size: int = 250
    pages_per_activity: int = 20
    overlap_s: float = 300.0
    lookback_s: float = 86400.0
    settle_s: float = 120.0

    def activity_options(self, retry: RetryPolicy) -> dict[str, Any]:
        """How a paged activity runs: its timeout, a heartbeat (long pages), and ``retry``."""
        return {
            "start_to_close_timeout": timedelta(seconds=self.activity_timeout_s),
            "heartbeat_timeout": timedelta(seconds=self.heartbeat_s),
            "retry_policy": retry,
        }


class ReconcileInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    channels: list[str] = Field(default_factory=list, description="orders and inventory: which channels")
    since: datetime | None = Field(None, description="compare from here instead of the watermark")
    policy: ReconcilePolicy = ReconcilePolicy()


class Window(BaseModel):
    since: datetime
    until: datetime
    expected: int | None = Field(None, description="how many records the source says it will list")


class StageChunk(BaseModel):
    staged: int
    pages: int
    next_cursor: str | None


class OrdersResult(BaseModel):
    channel: str
    since: datetime
    until: datetime
    listed: int = 0
    missing: int = 0
    ingested: int = 0
    total_mismatches: int = 0
    not_in_channel: int = 0
    unmappable: int = 0
    findings_new: int = 0
    findings_seen_again: int = 0


class InventoryPage(BaseModel):
    next_after: str | None
    compared: int = 0
    matching: int = 0
    drifted: int = 0
    healed: int = 0
    findings_new: int = 0


class InventoryResult(BaseModel):
    channel: str
    compared: int = 0
    matching: int = 0
    drifted: int = 0
    healed: int = 0
    accuracy: float = 1.0
    findings_new: int = 0


class SettlementResult(BaseModel):
    since: datetime
    until: datetime
    orders: int = 0
    captures: int = 0
    refunds: int = 0
    invoices: int = 0
    returns: int = Field(
        default=0, description="returns with a provider refund or a credit memo in the window"
    )
    differences: dict[str, int] = Field(default_factory=dict)
    findings_new: int = 0
    findings_seen_again: int = 0


class ReconcileProgress(BaseModel):
    """What a run is doing now (the ``progress`` query; `retail reconcile run` draws it)."""

    kind: Kind
    phase: str = "starting"
    channel: str | None = None
    done: int = 0
    total: int | None = None
    finished: bool = False


class ReconcileReport(BaseModel):
    kind: Kind
    orders: list[OrdersResult] = Field(default_factory=list)
    inventory: list[InventoryResult] = Field(default_factory=list)
    settlement: SettlementResult | None = None

    @property
    def findings_new(self) -> int:
        parts = [r.findings_new for r in self.orders] + [r.findings_new for r in self.inventory]
        return sum(parts) + (self.settlement.findings_new if self.settlement else 0)
