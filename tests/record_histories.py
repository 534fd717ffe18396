"""Record the workflow histories that CI replays (tests/test_replay.py).

    .venv/bin/python -m tests.record_histories [reconcile|poll|channel]

Runs a few scenarios of every workflow type (orders, returns, inventory adjustment and sync)
on a fresh Temporal dev server and saves each workflow's history to tests/histories/ (with
``reconcile``: only one run of each reconciliation workflow; with ``poll``: one poll of the Amazon
fake, with an order imported, one held and one unmappable; with ``channel``: one order a
channel that ships its own orders fulfils, split over two locations). Re-record
after a deliberate, versioned (workflow.patched) change; keep the old files too, since running
workflows still have those histories.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from devserver import temporal_cli
from orchestration import search_attributes as sa
from orchestration.client import ensure_inventory_syncs
from orchestration.models import OperatorRequest
from tests.dbutil import fresh_database_url
from tests.platform import Platform, platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from workflows.order_to_cash import OrderToCash

OUT = Path(__file__).parent / "histories"


RETURNS_AND_STOCK = [
    "return-shopify-rma-3001",
    "return-shopify-refund-3003",
    "inventory-rec-receipt-1",
    "inventory-sync-shopify",
]


async def _returns_and_stock(p: Platform) -> None:
    """A warehouse return with a label and receipt, a refund made at Shopify, a stock receipt
    through InventoryAdjustment and the channel's sync."""
    await ensure_inventory_syncs(p.client, p.settings)
    r = await p.http.post(
        "/v1/returns",
        json={
            "channel": "shopify",
            "order_external_id": "3001",
            "return_id": "rma-3001",
            "lines": [{"sku": "HAT-RED", "quantity": 2}],
            "reason": "too big",
        },
    )
    assert r.status_code == 202, r.text
    refund = {
        "id": 3003,
        "order_id": 3003,
        "created_at": "2026-11-27T10:00:00Z",
        "refund_line_items": [{"id": 1, "line_item_id": 30030, "quantity": 1, "restock_type": "return"}],
        "transactions": [
            {"id": 1, "kind": "refund", "status": "success", "amount": "13.41", "currency": "USD"}
        ],
    }
    r = await p.send_shopify(refund, topic="refunds/create")
    assert r.status_code == 200, r.text
    event = {
        "event_id": "rec-receipt-1",
        "kind": "receipt",
        "sku": "MUG-01",
        "location": "WH-EAST",
        "quantity": 12,
        "source": "erp",
        "occurred_at": "2026-11-27T10:00:00Z",
    }
    r = await p.http.post("/v1/inventory/events", json=event)
    assert r.status_code == 202, r.text
    for key in ("rma-3001", "refund-3003"):
        handle = p.client.get_workflow_handle(f"return-shopify-{key}")
        await asyncio.wait_for(handle.result(), timeout=60)
    await asyncio.wait_for(p.client.get_workflow_handle("inventory-rec-receipt-1").result(), timeout=60)
    await asyncio.sleep(2)  # let the sync push what changed


async def _address_check_and_edit(p: Platform) -> None:
    """An order held after a failed address check; the channel's edit fixes the ship-to, an
    operator approves it, and it completes (address check, order edit, ErpBackend)."""
    order = shopify_order(3005, [("MUG-01", 2, "12.50")])
    order["shipping_address"] = {**order["shipping_address"], "zip": "941"}
    await p.send_shopify(order)
    await p.wait_status("shopify-3005", "NeedsAttention")
    edited = {**order, "updated_at": "2026-11-20T11:00:00-05:00"}
    edited["shipping_address"] = {**order["shipping_address"], "zip": "94105"}
    await p.send_shopify(edited, topic="orders/updated")
    await p.wait_for("shopify-3005", lambda s: any(x.step == "order_edit" for x in s.steps))
    await p.handle("shopify-3005").execute_update(
        OrderToCash.approve, OperatorRequest(operator="recorder", reason="the channel fixed the address")
    )
    await p.wait_status("shopify-3005", "Completed", timeout=60)


async def record_reconcile(env: WorkflowEnvironment, tmp: Path, url: str) -> None:
    """One run of each reconciliation workflow, with something to find in each."""
    from adapters.payment.builtin import BuiltinPayment
    from canonical import Money
    from sandboxes.shopify import DEFAULT_ACCESS_TOKEN, SandboxServer, SandboxShop
    from workflows.schedules import start_reconcile

    shop = SandboxShop(bucket_size=400, leak_per_s=200)
    shop.seed_catalog([{"sku": "MUG-01", "title": "Mug", "price": "12.50"}])
    async with SandboxServer(shop) as server:
        settings = {
            "shopify_admin_url": server.url,
            "shopify_access_token": DEFAULT_ACCESS_TOKEN,
            "shopify_inventory_location": "WH-EAST",
            "reconcile_settle_s": 0.0,
            "reconcile_schedule_prefix": "recorded",
        }
        async with platform(env.client, tmp, url, seed=seed_catalog, **settings) as p:
            shop.create_order(shopify_order(3101, [("MUG-01", 1, "12.50")]))  # its webhook is lost
            shop.set_available("MUG-01", "WH-EAST", 7)  # drift
            pay = BuiltinPayment(p.store)
            auth = await pay.authorize(Money.of("9.00", "USD"), None, "order-shopify-3102:authorize")
            await pay.capture(auth.authorization_id, Money.of("9.00", "USD"), "order-shopify-3102:capture:S1")
            for kind in ("orders", "inventory", "settlement"):
                handle = await start_reconcile(p.client, p.settings, kind)
                await handle.result()
                history = await handle.fetch_history()
                path = OUT / f"reconcile-{kind}.json"
                path.write_text(history.to_json())
                print(f"saved {path}")
            await p.wait_status("shopify-3101", "Completed", timeout=60)


async def record_poll(env: WorkflowEnvironment, tmp: Path, url: str) -> None:
    """One PollOrders run against the Amazon fake: imported, held and unmappable orders."""
    from datetime import UTC, datetime, timedelta

    import sandboxes.amazon as amz
    from sandboxes.app_server import AppServer
    from workflows.schedules import start_poll

    fake = amz.AmazonSandbox(lag_s=0.0, min_before_s=0.0, seed=1)
    at = datetime.now(UTC) - timedelta(minutes=5)
    fake.add_order(*amz.amazon_order("111-0003201-0003201", [("MUG-01", 1, "12.50")], updated=at))
    fake.add_order(
        *amz.amazon_order("111-0003202-0003202", [("MUG-01", 1, "12.50")], updated=at, status="Pending")
    )
    bad, items = amz.amazon_order("111-0003203-0003203", [("MUG-01", 1, "12.50")], updated=at)
    bad["OrderTotal"]["Amount"] = "1.00"
    fake.add_order(bad, items)
    async with AppServer(amz.create_amazon_app(fake)) as server:
        settings = {
            "poll_channels": ["amazon"],
            "poll_settle_s": 0.0,
            "poll_page_size": 2,
            "amazon_endpoint": server.url,
            "amazon_lwa_url": f"{server.url}/auth/o2/token",
            "amazon_client_id": amz.CLIENT_ID,
            "amazon_client_secret": amz.CLIENT_SECRET,
            "amazon_refresh_token": amz.REFRESH_TOKEN,
        }
        async with platform(env.client, tmp, url, seed=seed_catalog, **settings) as p:
            handle = await start_poll(p.client, p.settings, "amazon")
            await handle.result()
            path = OUT / "poll-amazon.json"
            path.write_text((await handle.fetch_history()).to_json())
            print(f"saved {path}")


async def record_channel_fulfilled(env: WorkflowEnvironment, tmp: Path, url: str) -> None:
    """An order Shopify ships itself (RETAIL_FULFILLED_BY_CHANNEL): its fulfillment, split over
    the ERP's two locations, then delivered."""
    order = shopify_order(3301, [("HAT-RED", 5, "18.00")])
    fulfillment = {
        "id": 4900000003301,
        "order_id": 3301,
        "status": "success",
        "shipment_status": None,
        "tracking_company": "UPS",
        "tracking_numbers": ["1ZRECORDED3301"],
        "name": "#3301.1",
        "updated_at": "2026-11-27T10:00:00-05:00",
        "line_items": [
            {"id": li["id"], "sku": li["sku"], "quantity": li["quantity"]} for li in order["line_items"]
        ],
    }
    async with platform(env.client, tmp, url, seed=seed_catalog, fulfilled_by_channel=["shopify"]) as p:
        await p.send_shopify(order)
        await p.wait_status("shopify-3301", "AwaitingShipment")
        await p.send_shopify(fulfillment, "fulfillments/create")
        await p.wait_status("shopify-3301", "Shipped")
        await p.send_shopify({**fulfillment, "shipment_status": "delivered"}, "fulfillments/update")
        await p.wait_status("shopify-3301", "Completed")
        path = OUT / "order-shopify-3301.json"
        path.write_text((await p.handle("shopify-3301").fetch_history()).to_json())
        print(f"saved {path}")


async def main(only_reconcile: bool = False, only_poll: bool = False, only_channel: bool = False) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=sa.ALL,
        data_converter=pydantic_data_converter,
    )
    try:
        if only_poll:
            with tempfile.TemporaryDirectory() as tmp, fresh_database_url(Path(tmp)) as url:
                OUT.mkdir(exist_ok=True)
                await record_poll(env, Path(tmp), url)
            return
        if only_channel:
            with tempfile.TemporaryDirectory() as tmp, fresh_database_url(Path(tmp)) as url:
                OUT.mkdir(exist_ok=True)
                await record_channel_fulfilled(env, Path(tmp), url)
            return
        with tempfile.TemporaryDirectory() as tmp, fresh_database_url(Path(tmp)) as url:
            OUT.mkdir(exist_ok=True)
            await record_reconcile(env, Path(tmp), url)
        if only_reconcile:
            return
        with tempfile.TemporaryDirectory() as tmp, fresh_database_url(Path(tmp)) as url:
            async with platform(env.client, Path(tmp), url, seed=seed_catalog) as p:
                await p.send_shopify(shopify_order(3001, [("HAT-RED", 5, "18.00")]))  # split shipment
                await p.send_shopify(shopify_order(3002, [("NEW-SKU", 1, "9.00")]))  # stuck, then retried
                await p.send_shopify(shopify_order(3003, [("MUG-01", 1, "12.50")], financial_status="paid"))
                await p.wait_status("shopify-3002", "NeedsAttention")
                seed_catalog(p.store, extra=[("NEW-SKU", "9.00", "WH-EAST", 5)])
                await p.handle("shopify-3002").execute_update(
                    OrderToCash.retry, OperatorRequest(operator="recorder", reason="SKU imported")
                )
                for key in ("shopify-3001", "shopify-3002", "shopify-3003"):
                    await p.wait_status(key, "Completed", timeout=60)
                await _returns_and_stock(p)
            async with platform(env.client, Path(tmp), url, seed=seed_catalog) as p:
                await _address_check_and_edit(p)
            async with platform(env.client, Path(tmp), url, seed=seed_catalog, wms_pick_delay_s=60.0) as p:
                await p.send_shopify(shopify_order(3004, [("TEE-BLK-M", 1, "25.00")]))
                await p.wait_status("shopify-3004", "AwaitingShipment")
                await p.handle("shopify-3004").execute_update(
                    OrderToCash.cancel, OperatorRequest(operator="recorder", reason="customer asked")
                )
                await p.wait_status("shopify-3004", "Cancelled")
            OUT.mkdir(exist_ok=True)
            ids = [f"order-shopify-{n}" for n in (3001, 3002, 3003, 3004, 3005)] + RETURNS_AND_STOCK
            for wf_id in ids:
                history = await env.client.get_workflow_handle(wf_id).fetch_history()
                (OUT / f"{wf_id}.json").write_text(history.to_json())
                print(f"saved {OUT / f'{wf_id}.json'}")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    mode = sys.argv[1:]
    asyncio.run(
        main(
            only_reconcile=mode == ["reconcile"], only_poll=mode == ["poll"], only_channel=mode == ["channel"]
        )
    )
