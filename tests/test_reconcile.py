"""Reconciliation on a real Temporal server and a real store: a webhook the sandbox storefront
dropped is found and its order completed, channel stock drift is found and pushed back, a capture
without an invoice is a finding, a second run over the same window adds no duplicates, and the
schedules exist after worker start and after a restart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.client import Client

from adapters.payment.builtin import BuiltinPayment
from backoffice.erp import find_sales_order
from canonical import Money
from orchestration.reconcile_models import Kind, ReconcileReport
from sandboxes.shopify import (
    DEFAULT_ACCESS_TOKEN,
    FailureModes,
    SandboxServer,
    SandboxShop,
    WebhookDeliverer,
)
from store import findings as fs
from store.reconcile import latest_accuracy
from tests import platform as rig
from tests.platform import API, SHOPIFY_SECRET, Platform, platform
from tests.seed import PRODUCTS, seed_catalog
from tests.shopify_payloads import shopify_order
from worker import run_worker
from workflows.schedules import describe_schedules, pause, schedule_id, start_reconcile


def _sandbox_settings(server: SandboxServer) -> dict[str, Any]:
    return {
        "shopify_admin_url": server.url,
        "shopify_access_token": DEFAULT_ACCESS_TOKEN,
        "shopify_inventory_location": "WH-EAST",
        "reconcile_settle_s": 0.0,
        "reconcile_schedule_prefix": f"rc-{uuid.uuid4().hex[:8]}",
    }


@asynccontextmanager
async def _sandboxed(
    client: Client, tmp: Path, database_url: str
) -> AsyncIterator[tuple[Platform, SandboxShop]]:
    shop = SandboxShop(bucket_size=400, leak_per_s=200)
    shop.seed_catalog({"sku": sku, "title": f"Product {sku}", "price": price} for sku, price in PRODUCTS)
    async with (
        SandboxServer(shop) as server,
        platform(client, tmp, database_url, seed=seed_catalog, **_sandbox_settings(server)) as p,
    ):
        yield p, shop


async def _run(p: Platform, kind: Kind, **kw: Any) -> ReconcileReport:
    handle = await start_reconcile(p.client, p.settings, kind, **kw)
    return await handle.result()


def _findings(p: Platform, kind: str) -> list[fs.Finding]:
    return fs.list_findings(p.store, kind=kind)


async def test_a_dropped_webhook_is_found_ingested_and_completed(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _sandboxed(client, tmp_path, database_url) as (p, shop):
        url = f"{API}/webhooks/shopify"
        lossy = WebhookDeliverer(
            shop, p.http, SHOPIFY_SECRET, FailureModes(drop_rate=1.0), url=url, topics=("orders/create",)
        )
        shop.create_order(shopify_order(5001, [("MUG-01", 2, "12.50")]))
        lossy.close()
        reliable = WebhookDeliverer(shop, p.http, SHOPIFY_SECRET, url=url, topics=("orders/create",))
        shop.create_order(shopify_order(5002, [("TEE-BLK-M", 1, "25.00")]))
        await reliable.drain()
        assert lossy.summary()["dropped"] == 1 and reliable.summary()["delivered"] == 1
        await p.wait_status("shopify-5002", "Completed", timeout=60)

        first = await _run(p, "orders")
        [result] = first.orders
        assert (result.listed, result.missing, result.ingested) == (2, 1, 1)
        state = await p.wait_status("shopify-5001", "Completed", timeout=60)
        assert state.total == Money.of("31.81", "USD")  # 2 x 12.50, 7.25% tax, 5.00 shipping
        [healed] = _findings(p, fs.ORDER_MISSING_ON_PLATFORM)
        assert healed.status == "healed" and healed.keys == {"channel": "shopify", "external_id": "5001"}
        # The platform told the storefront what shipped: the order healed end to end.
        assert shop.order(5001)["fulfillment_status"] == "fulfilled"

        # The same window again: the order is known now, and nothing is recorded twice.
        again = await _run(p, "orders", since=result.since)
        assert (again.orders[0].missing, again.orders[0].ingested, again.orders[0].findings_new) == (0, 0, 0)
        assert [f.id for f in fs.list_findings(p.store)] == [healed.id]


async def test_different_totals_and_erp_orders_the_channel_lacks_are_findings(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _sandboxed(client, tmp_path, database_url) as (p, shop):
        url = f"{API}/webhooks/shopify"
        deliverer = WebhookDeliverer(shop, p.http, SHOPIFY_SECRET, url=url, topics=("orders/create",))
        shop.create_order(shopify_order(5101, [("MUG-01", 1, "12.50")]))
        await deliverer.drain()
        deliverer.close()
        await p.wait_status("shopify-5101", "Completed", timeout=60)
        # An order only the ERP has (sent to the platform, never placed at this storefront).
        await p.send_shopify(shopify_order(5102, [("MUG-01", 1, "12.50")]))
        for _ in range(300):
            if find_sales_order(p.store, "shopify", "5102") is not None:
                break
            await asyncio.sleep(0.1)
        # The channel's order changes after the ERP took it (an edit the platform never heard of).
        edited = shopify_order(5101, [("MUG-01", 1, "11.50")])
        shop.update_order(5101, {k: v for k, v in edited.items() if k not in ("id", "created_at")})

        report = await _run(p, "orders")
        [result] = report.orders
        assert (result.total_mismatches, result.not_in_channel) == (1, 1)
        [mismatch] = _findings(p, fs.ORDER_TOTAL_MISMATCH)
        assert (mismatch.expected, mismatch.actual, mismatch.status) == (
            Decimal("11.5"),
            Decimal("12.5"),
            "open",
        )
        [lacking] = _findings(p, fs.ORDER_NOT_IN_CHANNEL)
        assert lacking.keys["external_id"] == "5102"

        again = await _run(p, "orders", since=result.since)
        assert again.orders[0].findings_new == 0
        assert {f.kind: f.sightings for f in fs.list_findings(p.store)} == {
            fs.ORDER_TOTAL_MISMATCH: 2,
            fs.ORDER_NOT_IN_CHANNEL: 2,
        }


async def test_channel_stock_drift_is_found_and_pushed_back(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _sandboxed(client, tmp_path, database_url) as (p, shop):
        # The ledger: MUG-01 100, TEE-BLK-M 10, HAT-RED 3 + 3. The storefront shows its own idea.
        shop.set_available("MUG-01", "WH-EAST", 100)
        shop.set_available("TEE-BLK-M", "WH-EAST", 10)
        shop.set_available("HAT-RED", "WH-EAST", 40)  # drifted: someone edited it in Shopify's admin

        report = await _run(p, "inventory")
        [inv] = report.inventory
        assert (inv.compared, inv.matching, inv.drifted, inv.healed) == (3, 2, 1, 1)
        assert inv.accuracy == 2 / 3
        assert shop.available("HAT-RED", "WH-EAST") == 6
        [drift] = _findings(p, fs.INVENTORY_DRIFT)
        assert drift.status == "healed" and drift.keys == {"channel": "shopify", "sku": "HAT-RED"}
        [acc] = latest_accuracy(p.store)
        assert (acc.channel, acc.skus_compared, acc.skus_matching) == ("shopify", 3, 2)
        metrics = (await p.http.get("/metrics")).text
        assert 'retail_inventory_accuracy_ratio{channel="shopify"} 0.666' in metrics
        assert 'retail_reconcile_findings{kind="inventory_drift",status="healed"} 1.0' in metrics

        again = await _run(p, "inventory")
        assert (again.inventory[0].matching, again.inventory[0].findings_new) == (3, 0)
        assert latest_accuracy(p.store)[0].ratio == 1.0
        assert len(fs.list_findings(p.store)) == 1


async def test_a_capture_without_an_invoice_is_a_finding(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog, reconcile_settle_s=0.0) as p:
        # A settled order paid through the platform: its captures match its invoices.
        await p.send_shopify(shopify_order(7001, [("MUG-01", 1, "12.50")], financial_status="authorized"))
        done = await p.wait_status("shopify-7001", "Completed", timeout=60)
        assert done.captured == done.invoiced
        # Money taken for an order the ERP never billed (a capture made by hand in the PSP).
        payment = BuiltinPayment(p.store)
        amount = Money.of("40.00", "USD")
        auth = await payment.authorize(amount, None, "order-shopify-7002:authorize")
        capture = await payment.capture(auth.authorization_id, amount, "order-shopify-7002:capture:SHP-1")

        report = await _run(p, "settlement")
        assert report.settlement is not None
        assert report.settlement.differences == {fs.CAPTURE_WITHOUT_INVOICE: 1}
        [finding] = fs.list_findings(p.store)
        assert finding.kind == fs.CAPTURE_WITHOUT_INVOICE and finding.status == "open"
        assert finding.keys["external_id"] == "7002" and finding.keys["reference"] == capture.capture_id
        assert finding.actual == Decimal("40")

        again = await _run(p, "settlement", since=report.settlement.since)
        assert again.settlement is not None and again.settlement.findings_new == 0
        assert [(f.id, f.sightings) for f in fs.list_findings(p.store)] == [(finding.id, 2)]

        resolved = fs.decide(p.store, finding.id, "resolved", "refunded in the PSP by hand", "test")
        assert resolved.status == "resolved" and resolved.decided_by == "test"


async def test_schedules_exist_after_worker_start_and_after_a_restart(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    address = client.service_client.config.target_host
    prefix = f"rc-{uuid.uuid4().hex[:8]}"
    settings = rig.test_settings(
        database_url,
        address,
        worker_metrics_address="",
        reconcile_schedule_prefix=prefix,
        reconcile_channels=[],
        inventory_channels=[],
    )

    async def worker_once(**changes: Any) -> list[Any]:
        s = settings.model_copy(update=changes)
        stop = asyncio.Event()
        task = asyncio.create_task(run_worker(s, stop))
        try:
            for _ in range(200):
                views = await describe_schedules(client, s)
                if len(views) == 3 and all(
                    v.every == timedelta(seconds=s.reconcile_orders_every_s)
                    for v in views
                    if v.kind == "orders"
                ):
                    return views
                await asyncio.sleep(0.1)
            raise AssertionError("the schedules did not appear")
        finally:
            stop.set()
            await task

    try:
        views = await worker_once()
        assert {v.id for v in views} == {f"{prefix}-orders", f"{prefix}-inventory", f"{prefix}-settlement"}
        assert not any(v.paused for v in views)
        handle = client.get_schedule_handle(schedule_id(settings, "settlement"))
        d = await handle.describe()
        assert d.schedule.policy.overlap.name == "SKIP"
        assert d.schedule.policy.catchup_window == timedelta(seconds=settings.reconcile_catchup_window_s)
        await pause(client, settings, "inventory", "channel maintenance")

        # A restart with a new interval updates the schedules in place and keeps the operator's pause.
        views = await worker_once(reconcile_orders_every_s=600.0)
        by_kind = {v.kind: v for v in views}
        assert by_kind["orders"].every == timedelta(minutes=10)
        assert by_kind["inventory"].paused and by_kind["inventory"].note == "channel maintenance"

        # The scheduled action really starts the workflow on the worker's task queue.
        s = settings.model_copy(update={"reconcile_orders_every_s": 600.0})
        stop = asyncio.Event()
        task = asyncio.create_task(run_worker(s, stop))
        try:
            await handle.trigger()
            for _ in range(300):
                recent = (await handle.describe()).info.recent_actions
                if recent:
                    break
                await asyncio.sleep(0.1)
            action = recent[0].action
            workflow_id = action.workflow_id  # type: ignore[attr-defined]
            result = await client.get_workflow_handle(workflow_id, result_type=ReconcileReport).result()
            assert result.kind == "settlement" and result.settlement is not None
        finally:
            stop.set()
            await task
    finally:
        for kind in ("orders", "inventory", "settlement"):
            await client.get_schedule_handle(f"{prefix}-{kind}").delete()
