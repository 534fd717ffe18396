"""Inventory: every stock change goes through one ledger, and every channel hears the result.

``InventoryAdjustment`` applies one event (receipt, adjustment, transfer, cycle count, POS sale,
...) to the ledger and pokes each channel's sync. ``ChannelInventorySync`` runs forever per
channel: it collects what changed, waits a short debounce so bursts coalesce, and pushes
absolute sellable numbers in batches; a channel's rate limit slows it down (the activity
retries after the channel's Retry-After) without losing the latest value, because each round
reads the ledger afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import names
    from canonical import ChannelAvailability, StockPosition
    from orchestration.inventory_models import (
        ChannelSyncInput,
        InventoryAdjustmentInput,
        MismatchResolution,
        PendingSync,
        PushAck,
        SyncState,
        adjustment_workflow_id,
        sync_workflow_id,
    )
    from orchestration.models import OperatorRequest

__all__ = ["ChannelInventorySync", "InventoryAdjustment", "adjustment_workflow_id", "sync_workflow_id"]

# Resolving a compare-and-set mismatch adds commands (an activity, signals to the peers) after a
# push; histories recorded before it never had a mismatch, so they never reach the patch.
COMPARE_AND_SET_PATCH = "inventory-compare-and-set"


@workflow.defn
class InventoryAdjustment:
    """Apply one stock event to the ledger; if it cannot be applied, wait for an operator."""

    @workflow.init
    def __init__(self, inp: InventoryAdjustmentInput) -> None:
        self._attention: str | None = None
        self._decision: str | None = None

    @workflow.run
    async def run(self, inp: InventoryAdjustmentInput) -> list[StockPosition]:
        e = inp.event
        while True:
            try:
                positions: list[StockPosition] = await workflow.execute_activity(
                    names.INVENTORY_APPLY,
                    inp.event,
                    result_type=list[StockPosition],
                    start_to_close_timeout=timedelta(seconds=inp.activity_timeout_s),
                    retry_policy=RetryPolicy(maximum_attempts=inp.max_attempts),
                    summary=f"{e.kind} {e.quantity} x {e.sku} at {e.location}",
                )
                break
            except ActivityError as err:
                cause = err.cause
                self._attention = (
                    f"{cause.type}: {cause.message}" if isinstance(cause, ApplicationError) else str(err)
                )
                self._decision = None
                await workflow.wait_condition(lambda: self._decision is not None)
                self._attention = None
                if self._decision == "discard":
                    return []
        for channel in inp.channels:
            await _poke(channel)
        return positions

    @workflow.query
    def attention(self) -> str | None:
        return self._attention

    @workflow.update
    async def retry(self, req: OperatorRequest) -> str:
        self._decision = "retry"
        return "retrying"

    @retry.validator
    def _validate_retry(self, req: OperatorRequest) -> None:
        if self._attention is None:
            raise ValueError("nothing to retry")

    @workflow.update
    async def discard(self, req: OperatorRequest) -> str:
        self._decision = "discard"
        return "discarded"

    @discard.validator
    def _validate_discard(self, req: OperatorRequest) -> None:
        if self._attention is None:
            raise ValueError("nothing to discard")


async def _poke(channel: str) -> None:
    """Tell the channel's sync that the ledger moved. If it is not running the signal fails:
    the sync's own poll (and its start at worker boot) catches up, so that is not an error."""
    try:
        await workflow.get_external_workflow_handle(sync_workflow_id(channel)).signal("ledger_changed")
    except Exception:
        workflow.logger.info("inventory sync for %s not running; it will catch up", channel)


@workflow.defn
class ChannelInventorySync:
    @workflow.init
    def __init__(self, inp: ChannelSyncInput) -> None:
        self._channel = inp.channel
        self._seq = inp.seq
        self._pushes = inp.pushes
        self._skus_pushed = inp.skus_pushed
        self._dirty = True  # on (re)start, look once
        self._waiting = False
        self._last_push_at: datetime | None = None
        self._last_error: str | None = None
        self._peers = inp.peers
        self._policy = inp.policy
        self._compare_conflicts = inp.compare_conflicts

    @workflow.signal
    def ledger_changed(self) -> None:
        self._dirty = True

    def _failed(self, err: ActivityError) -> None:
        cause = err.cause
        self._last_error = (
            f"{cause.type}: {cause.message}" if isinstance(cause, ApplicationError) else str(err)
        )
        workflow.logger.warning("inventory sync step failed for %s: %s", self._channel, self._last_error)

    @workflow.query
    def state(self) -> SyncState:
        return SyncState(
            channel=self._channel,
            seq=self._seq,
            pushes=self._pushes,
            skus_pushed=self._skus_pushed,
            last_push_at=self._last_push_at,
            waiting=self._waiting,
            last_error=self._last_error,
            compare_conflicts=self._compare_conflicts,
        )

    @workflow.run
    async def run(self, inp: ChannelSyncInput) -> None:
        p = inp.policy
        timeout = timedelta(seconds=p.activity_timeout_s)
        # Channel calls retry without limit: a rate-limited or unavailable channel only delays
        # the sync, and the next round reads the ledger afresh, so the newest number wins.
        forever = RetryPolicy(maximum_interval=timedelta(seconds=60))
        for _ in range(p.iterations_before_continue_as_new):
            self._waiting = True
            # On timeout look anyway: a poke may have been missed.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._dirty, timeout=timedelta(seconds=p.poll_s))
            self._waiting = False
            self._dirty = False
            await workflow.sleep(timedelta(seconds=p.debounce_s))
            try:
                pending: PendingSync = await workflow.execute_activity(
                    names.INVENTORY_PENDING,
                    args=[self._channel, self._seq],
                    result_type=PendingSync,
                    start_to_close_timeout=timeout,
                    retry_policy=forever,
                    summary=f"What changed for {self._channel} since #{self._seq}",
                )
            except ActivityError as err:
                self._failed(err)
                continue
            levels = pending.levels
            complete = True
            for start in range(0, len(levels), p.batch_size):
                try:
                    pushed = await self._push(pending, levels[start : start + p.batch_size], timeout, forever)
                except ActivityError as err:
                    # Refused for good (e.g. a SKU the channel does not sell): the other
                    # batches still go out, and the sync lives on to try this one again.
                    self._failed(err)
                    complete = False
                    continue
                if pushed:
                    self._pushes += 1
                    self._skus_pushed += pushed
                    self._last_push_at = workflow.now()
            if complete:
                self._seq = max(self._seq, pending.seq)
            else:
                self._dirty = True  # look again after the next debounce
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            ChannelSyncInput(
                channel=self._channel,
                policy=p,
                seq=self._seq,
                pushes=self._pushes,
                skus_pushed=self._skus_pushed,
                peers=self._peers,
                compare_conflicts=self._compare_conflicts,
            )
        )

    async def _push(
        self, pending: PendingSync, batch: list[ChannelAvailability], timeout: timedelta, forever: RetryPolicy
    ) -> int:
        """Push one batch; returns how many SKUs the channel took.

        A compare-and-set mismatch (the channel's number moved without us: a POS sale, a manual
        edit) writes nothing. Then the channel is read back, a drop is journalled as a channel
        sale (the other channels hear it), and the batch is recomputed from the ledger and pushed
        again with the channel's number as the compare value. At most ``max_compare_attempts``
        resolutions per batch: SKUs still mismatching then are given up (a finding), so a channel
        whose number something else keeps moving cannot hold the sync in a loop."""
        p = self._policy
        attempt = 0
        while batch:
            # The key names the content too: the same position with other numbers (after a
            # failed batch is retried) must not be answered from a vendor's key cache.
            digest = hashlib.sha256(repr([(a.sku, a.available) for a in batch]).encode()).hexdigest()[:16]
            key = f"{workflow.info().workflow_id}:{pending.seq}:{digest}" + (
                f":cas{attempt}" if attempt else ""
            )
            ack: PushAck = await workflow.execute_activity(
                names.INVENTORY_PUSH,
                args=[self._channel, batch, pending.seq, pending.changed_at, key],
                result_type=PushAck,
                start_to_close_timeout=timeout,
                retry_policy=forever,
                summary=f"Tell {self._channel}: {len(batch)} SKUs",
            )
            if not ack.mismatched or not workflow.patched(COMPARE_AND_SET_PATCH):
                return len(batch)
            attempt += 1
            give_up = ack.mismatched if attempt >= p.max_compare_attempts else []
            resolution: MismatchResolution = await workflow.execute_activity(
                names.INVENTORY_RESOLVE_MISMATCH,
                args=[self._channel, batch, ack.mismatched, give_up],
                result_type=MismatchResolution,
                start_to_close_timeout=timeout,
                retry_policy=forever,
                summary=f"{self._channel} moved {len(ack.mismatched)} SKUs: read back and journal",
            )
            if resolution.journalled:
                for peer in self._peers:
                    await _poke(peer)
            if give_up:
                self._compare_conflicts += len(give_up)
                self._last_error = f"compare_conflict: {self._channel} kept moving {give_up[:10]}"
                workflow.logger.warning("inventory sync for %s gave up on %s", self._channel, give_up)
            batch = resolution.levels
        return 0
