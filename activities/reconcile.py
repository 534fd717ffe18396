"""Reconciliation activities: read each system in pages, compare in set-based queries, heal what
is safe to heal, record every difference as a finding. The workflows only see summaries, so their
histories stay small whatever the volume.

Healing goes through the paths events use: a lost order is started exactly as a webhook starts it
(``start_order``, deterministic workflow id, so an order ingested twice never runs twice); drifted
stock is pushed as an absolute number through the channel's ``push_inventory``, recorded like the
sync's own pushes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities import names
from activities.errors import adapter_errors
from activities.inventory import Ledger
from adapters.channels.port import ChannelOrder, ChannelOrderPage, ChannelPort, ChannelReader
from adapters.errors import PermanentError
from backoffice.erp import ErpItem
from backoffice.order_comparison import erp_orders_not_listed, missing_on_platform, total_mismatches
from backoffice.return_settlement import compare_return, return_settlements
from backoffice.settlement import compare, orders_in_window, settlements
from canonical import ChannelAvailability
from orchestration.client import start_order
from orchestration.reconcile_models import (
    InventoryPage,
    InventoryResult,
    OrdersResult,
    ReconcilePolicy,
    SettlementResult,
    StageChunk,
    Window,
)
from settings import Settings
from store import findings as fs
from store.channel_stock import record_told, told
from store.db import Store
from store.inventory import InventoryMovement
from store.reconcile import (
    StagedOrder,
    advance_watermark,
    clear_stage,
    get_watermark,
    purge_stale_stage,
    record_accuracy,
    stage_orders,
    staged_count,
)

log = structlog.get_logger("reconcile")

SETTLEMENT_SCOPE = "all"


class _ListsNothing:
    """For a channel adapter without a reader side: nothing to list, no stock to read."""

    lists_orders = False

    def __init__(self, name: str) -> None:
        self.name = name

    async def orders_updated_page(
        self, since: datetime, until: datetime, cursor: str | None, page_size: int
    ) -> ChannelOrderPage:
        return ChannelOrderPage([], None)

    async def count_orders_updated(self, since: datetime, until: datetime) -> int | None:
        return 0

    async def fetch_order(self, external_order_id: str) -> ChannelOrder | None:
        return None

    async def inventory_levels(self, skus: list[str]) -> dict[str, int]:
        return {}


def _run() -> str:
    info = activity.info()
    return f"{info.workflow_id}/{info.workflow_run_id}"


def reader_of(port: ChannelPort, channel: str) -> ChannelReader:
    return port if isinstance(port, ChannelReader) else _ListsNothing(channel)


async def workflow_exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


# -- shared by reconciliation and the pollers: the window, and reading it page by page ----------


async def order_window(
    store: Store, reader: ChannelReader, kind: str, since: datetime | None, policy: ReconcilePolicy
) -> Window:
    """From the ``kind`` watermark of the channel minus the overlap (or ``since``) to now minus
    the settle time. The first window (no watermark) looks back ``lookback_s``."""
    until = datetime.now(UTC) - timedelta(seconds=policy.settle_s)
    if since is None:
        mark = await asyncio.to_thread(get_watermark, store, kind, reader.name)
        since = (
            mark - timedelta(seconds=policy.overlap_s)
            if mark
            else until - timedelta(seconds=policy.lookback_s)
        )
    since = min(since, until)
    with adapter_errors():
        expected = await reader.count_orders_updated(since, until) if reader.lists_orders else 0
    return Window(since=since, until=until, expected=expected)


@dataclass
class PagesRead:
    next_cursor: str | None
    pages: int
    counts: Counter[str]


async def read_pages(
    reader: ChannelReader,
    window: Window,
    cursor: str | None,
    policy: ReconcilePolicy,
    handle: Callable[[ChannelOrderPage], Awaitable[dict[str, int]]],
) -> PagesRead:
    """Up to ``pages_per_activity`` pages of the window, each handed to ``handle`` (which counts
    what it did). The cursor is heartbeated after each page: a retry (after a 429, a crash)
    resumes after the last page handled instead of from the start."""
    counts: Counter[str] = Counter()
    pages = 0
    details = activity.info().heartbeat_details
    if details:
        cursor, pages, counts = details[0], int(details[1]), Counter(details[2])
    done = pages
    while pages - done < policy.pages_per_activity:
        if not reader.lists_orders:
            return PagesRead(None, pages, counts)
        with adapter_errors():
            page = await reader.orders_updated_page(window.since, window.until, cursor, policy.page_size)
        counts.update(await handle(page))
        pages += 1
        cursor = page.next_cursor
        activity.heartbeat(cursor, pages, dict(counts))
        if cursor is None:
            break
    return PagesRead(cursor, pages, counts)


class ReconcileActivities:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        channel: Callable[[str], ChannelPort],
        client: Client,
        settings: Settings,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.channel = channel
        self.client = client
        self.settings = settings

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.orders_window,
            self.orders_stage,
            self.orders_compare,
            self.inventory_page,
            self.inventory_record,
            self.settlement,
        ]

    def _reader(self, channel: str) -> ChannelReader:
        return reader_of(self.channel(channel), channel)

    # -- orders -----------------------------------------------------------------------------

    @activity.defn(name=names.RECONCILE_ORDERS_WINDOW)
    async def orders_window(self, channel: str, since: datetime | None, policy: ReconcilePolicy) -> Window:
        """The window to compare: from the watermark (minus the overlap) to now minus the settle
        time; orders younger than that are left to their webhooks."""
        await asyncio.to_thread(purge_stale_stage, self.store)
        return await order_window(self.store, self._reader(channel), "orders", since, policy)

    @activity.defn(name=names.RECONCILE_ORDERS_STAGE)
    async def orders_stage(
        self, run_key: str, channel: str, window: Window, cursor: str | None, policy: ReconcilePolicy
    ) -> StageChunk:
        """Stage up to ``pages_per_activity`` pages of the channel's orders; a retry resumes after
        the last page it heartbeated."""

        async def stage(page: ChannelOrderPage) -> dict[str, int]:
            rows = [
                StagedOrder(
                    external_id=o.external_id,
                    workflow_id=f"order-{channel}-{o.external_id}",
                    name=o.name,
                    updated_at=o.updated_at,
                    cancelled=o.cancelled,
                    currency=o.currency,
                    lines_total=o.lines_total,
                    error=o.error,
                )
                for o in page.orders
                if o.hold is None  # not paid yet, or not the platform's to ship: not missing
            ]
            return {"staged": await asyncio.to_thread(stage_orders, self.store, run_key, rows)}

        read = await read_pages(self._reader(channel), window, cursor, policy, stage)
        return StageChunk(staged=read.counts.get("staged", 0), pages=read.pages, next_cursor=read.next_cursor)

    @activity.defn(name=names.RECONCILE_ORDERS_COMPARE)
    async def orders_compare(self, run_key: str, channel: str, window: Window, advance: bool) -> OrdersResult:
        """Compare the staged channel orders with the ERP and the platform's workflows; ingest the
        orders the platform never received; record the findings; move the watermark."""
        run = _run()
        result = OrdersResult(channel=channel, since=window.since, until=window.until)
        result.listed = await asyncio.to_thread(staged_count, self.store, run_key)
        reader = self._reader(channel)
        found: list[fs.NewFinding] = []
        systems = [channel, "platform", "erp"]

        def keys(ext: str) -> dict[str, str]:
            return {"channel": channel, "external_id": ext}

        for m in await asyncio.to_thread(missing_on_platform, self.store, run_key, channel):
            activity.heartbeat("missing", m.external_id)
            if await workflow_exists(self.client, m.workflow_id):
                continue  # in flight, or waiting for an operator before the ERP: its workflow says why
            result.missing += 1
            label = f"{channel}-{m.external_id}"
            if m.error:
                result.unmappable += 1
                found.append(fs.NewFinding(fs.ORDER_UNMAPPABLE, systems, keys(m.external_id), label, m.error))
                continue
            fetched = None
            if not m.cancelled:
                with adapter_errors():
                    fetched = await reader.fetch_order(m.external_id)
            if fetched is None or fetched.order is None or fetched.cancelled:
                why = (
                    "cancelled at the channel before it reached the platform"
                    if (m.cancelled or (fetched is not None and fetched.cancelled))
                    else (fetched.error if fetched is not None and fetched.error else "gone from the channel")
                )
                found.append(
                    fs.NewFinding(
                        fs.ORDER_MISSING_ON_PLATFORM,
                        systems,
                        keys(m.external_id),
                        label,
                        f"order {m.name or m.external_id} never reached the platform: {why}; not ingested",
                    )
                )
                continue
            await start_order(self.client, fetched.order, self.settings, f"reconcile:{run}:{m.external_id}")
            result.ingested += 1
            log.info("lost order ingested", order_key=fetched.order.key, run=run)
            found.append(
                fs.NewFinding(
                    fs.ORDER_MISSING_ON_PLATFORM,
                    systems,
                    keys(m.external_id),
                    label,
                    f"order {m.name or m.external_id} never reached the platform (a lost webhook);"
                    " ingested by reconciliation",
                    actual=fetched.order.totals.total.amount,
                    currency=fetched.order.currency,
                    healed=True,
                )
            )

        for t in await asyncio.to_thread(total_mismatches, self.store, run_key, channel):
            result.total_mismatches += 1
            found.append(
                fs.NewFinding(
                    fs.ORDER_TOTAL_MISMATCH,
                    [channel, "erp"],
                    keys(t.external_id),
                    f"{channel}-{t.external_id}",
                    f"order {t.name or t.external_id}: lines total {t.channel_total} {t.currency} at"
                    f" {channel}, {t.erp_total} {t.erp_currency} on ERP order {t.erp_order_id}",
                    expected=t.channel_total,
                    actual=t.erp_total,
                    currency=t.currency,
                )
            )

        if reader.lists_orders:
            unlisted = await asyncio.to_thread(
                erp_orders_not_listed, self.store, run_key, channel, window.since, window.until
            )
            for u in unlisted:
                activity.heartbeat("unlisted", u.external_id)
                with adapter_errors():
                    there = await reader.fetch_order(u.external_id)
                if there is None:
                    result.not_in_channel += 1
                    found.append(
                        fs.NewFinding(
                            fs.ORDER_NOT_IN_CHANNEL,
                            ["erp", channel],
                            keys(u.external_id),
                            f"{channel}-{u.external_id}",
                            f"ERP order {u.erp_order_id} ({u.name or u.external_id}) is not an order at"
                            f" {channel}",
                        )
                    )

        recorded = await asyncio.to_thread(fs.record_findings, self.store, found, run)
        result.findings_new, result.findings_seen_again = recorded.new, recorded.seen_again
        await asyncio.to_thread(clear_stage, self.store, run_key)
        if advance:
            await asyncio.to_thread(advance_watermark, self.store, "orders", channel, window.until)
        return result

    # -- inventory --------------------------------------------------------------------------

    def _skus_after(self, after: str | None, limit: int) -> list[str]:
        q = select(ErpItem.sku).where(ErpItem.active.is_(True)).order_by(ErpItem.sku).limit(limit)
        if after is not None:
            q = q.where(ErpItem.sku > after)
        with self.store.reading() as s:
            return list(s.scalars(q))

    def _journal_position(self) -> int:
        with self.store.reading() as s:
            return int(s.scalar(select(func.max(InventoryMovement.id))) or 0)

    @activity.defn(name=names.RECONCILE_INVENTORY_PAGE)
    async def inventory_page(self, channel: str, after: str | None, policy: ReconcilePolicy) -> InventoryPage:
        """One page of SKUs: what the channel shows against what the ledger says it may sell.

        The channel is read first and the ledger second, so the ledger is never older than what
        the channel shows. A SKU differs either because the sync has not caught up (the channel
        shows what it was last told: lag, counted in accuracy only) or because the channel's number
        moved on its own (drift: pushed back to the ledger's number, and a finding)."""
        run = _run()
        skus = await asyncio.to_thread(self._skus_after, after, policy.page_size)
        if not skus:
            return InventoryPage(next_after=None)
        with adapter_errors():
            shows = await self._reader(channel).inventory_levels(skus)
        seq = await asyncio.to_thread(self._journal_position)
        should = {a.sku: a for a in await asyncio.to_thread(self.ledger.channel_availability, channel, skus)}
        last_told = {t.sku: t.quantity for t in await asyncio.to_thread(told, self.store, channel, skus)}
        page = InventoryPage(next_after=skus[-1] if len(skus) >= policy.page_size else None)
        drift: list[ChannelAvailability] = []
        for sku, shown in sorted(shows.items()):
            page.compared += 1
            target = should[sku]
            if shown == target.available:
                page.matching += 1
            elif last_told.get(sku) != shown:
                drift.append(target)
        healed = False
        if drift:
            digest = hashlib.sha256(repr([(a.sku, a.available) for a in drift]).encode()).hexdigest()[:16]
            try:
                with adapter_errors():
                    ack = await self.channel(channel).push_inventory(drift, f"{run}:{after or ''}:{digest}")
                healed = True
                await asyncio.to_thread(
                    record_told,
                    self.store,
                    channel,
                    [(a.sku, a.available) for a in drift],
                    seq,
                    datetime.now(UTC),
                    ack.reference,
                )
            except Exception as err:
                if not isinstance(err.__cause__, PermanentError):
                    raise  # transient or rate limited: the activity retries the page
                log.warning("inventory drift not healed", channel=channel, error=str(err))
        page.drifted = len(drift)
        page.healed = len(drift) if healed else 0
        found = [
            fs.NewFinding(
                fs.INVENTORY_DRIFT,
                [channel, "ledger"],
                {"channel": channel, "sku": a.sku},
                a.sku,
                f"{channel} showed {shows[a.sku]} of {a.sku}, the ledger says {a.available}"
                + (f" (last told {last_told[a.sku]})" if a.sku in last_told else " (never told)")
                + ("; pushed back" if healed else "; the push was refused"),
                expected=None,
                actual=None,
                healed=healed,
            )
            for a in drift
        ]
        recorded = await asyncio.to_thread(fs.record_findings, self.store, found, run)
        page.findings_new = recorded.new
        return page

    @activity.defn(name=names.RECONCILE_INVENTORY_RECORD)
    async def inventory_record(self, result: InventoryResult) -> InventoryResult:
        """Keep the run's accuracy (the share of SKUs the channel shows right) for the metrics."""
        acc = await asyncio.to_thread(
            record_accuracy,
            self.store,
            result.channel,
            result.compared,
            result.matching,
            result.healed,
            _run(),
        )
        return result.model_copy(update={"accuracy": acc.ratio})

    # -- settlement -------------------------------------------------------------------------

    @activity.defn(name=names.RECONCILE_SETTLEMENT)
    async def settlement(self, since: datetime | None, policy: ReconcilePolicy) -> SettlementResult:
        """Captures (payment provider) against invoices (ERP), per order and shipment; return
        refunds against credit memos, per return."""
        run = _run()
        until = datetime.now(UTC) - timedelta(seconds=policy.settle_s)
        advance = since is None
        if since is None:
            mark = await asyncio.to_thread(get_watermark, self.store, "settlement", SETTLEMENT_SCOPE)
            since = (
                mark - timedelta(seconds=policy.overlap_s)
                if mark
                else until - timedelta(seconds=policy.lookback_s)
            )
        since = min(since, until)
        result = SettlementResult(since=since, until=until)
        refs = await asyncio.to_thread(orders_in_window, self.store, since, until)
        result.orders = len(refs)
        kinds: Counter[str] = Counter()
        found: list[fs.NewFinding] = []
        page = max(policy.page_size, 1)
        for n in range(0, len(refs), page):
            for st in await asyncio.to_thread(settlements, self.store, refs[n : n + page]):
                result.captures += len(st.captures)
                result.refunds += len(st.refunds)
                result.invoices += len(st.invoices)
                for d in compare(st, since, until):
                    kinds[d.kind] += 1
                    found.append(
                        fs.NewFinding(
                            d.kind,
                            ["payment", "erp"],
                            {
                                "channel": d.order.channel,
                                "external_id": d.order.external_id,
                                "shipment": d.shipment_id or "",
                                "reference": d.reference,
                            },
                            f"{d.order.channel}-{d.order.external_id}",
                            d.detail,
                            expected=d.expected,
                            actual=d.actual,
                            currency=d.currency,
                        )
                    )
            activity.heartbeat(n + page, len(refs))
        returns = await asyncio.to_thread(return_settlements, self.store, since, until)
        result.returns = len(returns)
        for rs in returns:
            for rd in compare_return(rs):
                kinds[rd.kind] += 1
                found.append(
                    fs.NewFinding(
                        rd.kind,
                        ["payment", "erp"],
                        {"return": rd.return_key, "reference": rd.reference},
                        rd.return_key,
                        rd.detail,
                        expected=rd.expected,
                        actual=rd.actual,
                        currency=rd.currency,
                    )
                )
        result.differences = dict(kinds)
        recorded = await asyncio.to_thread(fs.record_findings, self.store, found, run)
        result.findings_new, result.findings_seen_again = recorded.new, recorded.seen_again
        if advance:
            await asyncio.to_thread(advance_watermark, self.store, "settlement", SETTLEMENT_SCOPE, until)
        return result
