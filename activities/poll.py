"""Polled channels' activities: the window, importing its orders page by page, and the watermark.

They share reconciliation's machinery (``order_window``, ``read_pages``, the watermarks, the
findings) and import an order exactly as a webhook does, through ``start_order``: the workflow id
is deterministic (``order-<channel>-<id>``), so an order seen in two overlapping windows, or twice
in one run, is started once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities import names
from activities.reconcile import order_window, read_pages, reader_of, workflow_exists
from adapters.channels.port import ChannelOrder, ChannelOrderPage, ChannelPort
from orchestration.client import start_order
from orchestration.models import CancelRequest
from orchestration.poll_models import WATERMARK_KIND, PollChunk
from orchestration.reconcile_models import ReconcilePolicy, Window
from settings import Settings
from store import findings as fs
from store.db import Store
from store.reconcile import advance_watermark

log = structlog.get_logger("poll")


class PollActivities:
    def __init__(
        self, store: Store, channel: Callable[[str], ChannelPort], client: Client, settings: Settings
    ) -> None:
        self.store = store
        self.channel = channel
        self.client = client
        self.settings = settings

    def all(self) -> list[Callable[..., Any]]:
        return [self.window, self.import_orders, self.advance]

    @activity.defn(name=names.POLL_WINDOW)
    async def window(self, channel: str, since: datetime | None, policy: ReconcilePolicy) -> Window:
        """[watermark - overlap, now - settle]: the overlap sees late writes at the edge again."""
        return await order_window(
            self.store, reader_of(self.channel(channel), channel), WATERMARK_KIND, since, policy
        )

    @activity.defn(name=names.POLL_IMPORT)
    async def import_orders(
        self, channel: str, window: Window, cursor: str | None, policy: ReconcilePolicy
    ) -> PollChunk:
        """Import up to ``pages_per_activity`` pages: start each new order, signal the cancellation
        of known ones cancelled at the channel, report the unmappable as findings (the others go
        on). A 429 fails the activity with the vendor's delay; the retry resumes at the page."""
        info = activity.info()
        run = f"{info.workflow_id}/{info.workflow_run_id}"

        async def handle(page: ChannelOrderPage) -> dict[str, int]:
            counts: dict[str, int] = {}
            found: list[fs.NewFinding] = []
            for o in page.orders:
                outcome = await self._one(channel, o, run, found)
                counts[outcome] = counts.get(outcome, 0) + 1
            if found:
                await asyncio.to_thread(fs.record_findings, self.store, found, run)
            return counts

        read = await read_pages(reader_of(self.channel(channel), channel), window, cursor, policy, handle)
        return PollChunk(pages=read.pages, next_cursor=read.next_cursor, counts=dict(read.counts))

    async def _one(self, channel: str, o: ChannelOrder, run: str, found: list[fs.NewFinding]) -> str:
        workflow_id = f"order-{channel}-{o.external_id}"
        if o.cancelled:
            if await workflow_exists(self.client, workflow_id):
                await self._cancel(workflow_id, channel)
                return "cancelled"
            return "cancelled_before_import"
        if o.hold is not None:
            # One the platform has already is known, not held: once shipped and invoiced through
            # the platform, Adobe Commerce marks it complete, which reads as "finished at the store".
            return "known" if await workflow_exists(self.client, workflow_id) else "held"
        if o.order is None:
            found.append(
                fs.NewFinding(
                    fs.ORDER_UNMAPPABLE,
                    [channel, "platform"],
                    {"channel": channel, "external_id": o.external_id},
                    f"{channel}-{o.external_id}",
                    f"order {o.name or o.external_id} cannot be imported: {o.error}",
                )
            )
            log.warning("order not imported", channel=channel, external_id=o.external_id, error=o.error)
            return "unmappable"
        if await workflow_exists(self.client, workflow_id):
            return "known"  # an overlapping window, an update, or a second run: never twice
        await start_order(self.client, o.order, self.settings, f"poll:{run}:{o.external_id}")
        log.info("order imported", order_key=o.order.key, run=run)
        return "imported"

    async def _cancel(self, workflow_id: str, channel: str) -> None:
        try:
            await self.client.get_workflow_handle(workflow_id).signal(
                "request_cancel", CancelRequest(reason=f"cancelled at {channel}", source="channel")
            )
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:  # finished already: nothing to cancel
                raise

    @activity.defn(name=names.POLL_ADVANCE)
    async def advance(self, channel: str, until: datetime) -> datetime:
        """Only after the whole window was imported; never backwards."""
        return await asyncio.to_thread(advance_watermark, self.store, WATERMARK_KIND, channel, until)
