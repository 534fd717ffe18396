"""Inputs and results of the inventory workflows."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from canonical import ChannelAvailability, InventoryEvent
from canonical.documents import ChannelAck


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
    max_compare_attempts: int = Field(
        3, ge=1, description="compare-and-set mismatches resolved per batch before its SKUs are given up"
    )


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
    peers: list[str] = Field(
        default_factory=list,
        description="the other channels' syncs, poked when a channel's sale is journalled",
    )
    compare_conflicts: int = 0


class PushAck(ChannelAck):
    """The push activity's answer: ``mismatched`` names the SKUs whose compare value was stale
    (nothing of the batch was applied then); empty for channels without compare-and-set."""

    mismatched: list[str] = Field(default_factory=list)


class MismatchResolution(BaseModel):
    """What the sync learnt from re-reading the channel after a compare mismatch."""

    model_config = ConfigDict(extra="forbid")

    seen: dict[str, int] = Field(description="what the channel shows now, per mismatched SKU")
    journalled: list[str] = Field(description="event ids of the channel sales journalled")
    levels: list[ChannelAvailability] = Field(
        description="the batch recomputed from the ledger, given-up SKUs left out"
    )


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
    compare_conflicts: int = Field(0, description="SKUs given up after repeated compare mismatches")
