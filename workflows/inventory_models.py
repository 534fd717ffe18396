"""Inputs and results of the inventory workflows."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from canonical import ChannelAvailability, InventoryEvent


def sync_workflow_id(channel: str) -> str:
    return f"inventory-sync-{channel}"


def adjustment_workflow_id(event_id: str) -> str:
    return f"inventory-{event_id}"


class SyncPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    debounce_s: float = Field(1.0, description="wait this long after a change so bursts coalesce")
    poll_s: float = Field(60.0, description="look for changes even without a signal (a missed poke)")
    batch_size: int = Field(100, description="SKUs per channel call")
    iterations_before_continue_as_new: int = 200
    activity_timeout_s: float = 30.0


class InventoryAdjustmentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: InventoryEvent
    channels: list[str] = []
    activity_timeout_s: float = 30.0
    max_attempts: int = 8


class ChannelSyncInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str
    policy: SyncPolicy = SyncPolicy()
    seq: int = Field(0, description="journal position already pushed")
    pushes: int = 0
    skus_pushed: int = 0


class PendingSync(BaseModel):
    """What the channel must hear: the SKUs whose sellable number changed since ``seq``."""

    model_config = ConfigDict(extra="forbid")

    channel: str
    levels: list[ChannelAvailability]
    seq: int = Field(description="journal position these numbers reflect")
    changed_at: datetime | None = Field(
        description="when the oldest ledger change included was journalled (where the sync lag starts)"
    )


class SyncState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str
    seq: int
    pushes: int
    skus_pushed: int
    last_push_at: datetime | None
    waiting: bool
    last_error: str | None = None
