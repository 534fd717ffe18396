"""The availability API and inventory events over HTTP, and stock moved by an order reaching the
channel, all on the real platform (Temporal server, worker, store)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client

from orchestration.client import ensure_inventory_syncs
from store.channel_stock import told
from tests.platform import Platform, platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order


async def _until_told(p: Platform, channel: str, sku: str, qty: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = {t.sku: t.quantity for t in told(p.store, channel)}.get(sku)
        if last == qty:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{channel} was told {last} for {sku}, expected {qty}")


async def test_availability_per_location_per_channel_and_for_a_cart(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, worker=False, simulators=False, seed=seed_catalog
    ) as p:
        r = await p.http.get("/v1/availability", params={"sku": ["HAT-RED", "MUG-01"]})
        assert r.status_code == 200
        items = {i["sku"]: i for i in r.json()["items"]}
        assert items["HAT-RED"]["available"] == 6
        assert {loc["location"]: loc["available"] for loc in items["HAT-RED"]["locations"]} == {
            "WH-EAST": 3,
            "WH-WEST": 3,
        }
        r = await p.http.get("/v1/availability", params={"sku": "HAT-RED", "channel": "shopify"})
        assert r.json()["items"][0]["available"] == 6
        cart = await p.http.post("/v1/availability", json={"channel": "shopify", "skus": ["MUG-01", "NOPE"]})
        assert cart.status_code == 200
        assert {i["sku"]: i["available"] for i in cart.json()["items"]} == {"MUG-01": 100, "NOPE": 0}
        assert (await p.http.get("/v1/availability")).status_code == 422
        bad = await p.http.post("/v1/availability", content=b"x", headers={"Content-Type": "text/plain"})
        assert bad.status_code == 415


async def test_an_inventory_event_over_http_moves_the_ledger_once(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    channel = f"shop-{uuid.uuid4().hex[:6]}"
    async with platform(
        client,
        tmp_path,
        database_url,
        simulators=False,
        seed=seed_catalog,
        inventory_channels=[channel],
        inventory_debounce_s=0.2,
    ) as p:
        await ensure_inventory_syncs(client, p.settings)
        event = {
            "event_id": f"rcpt-{uuid.uuid4().hex[:8]}",
            "kind": "receipt",
            "sku": "TEE-BLK-M",
            "location": "WH-EAST",
            "quantity": 5,
            "source": "wms",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        first = await p.http.post("/v1/inventory/events", json=event)
        again = await p.http.post("/v1/inventory/events", json=event)  # a redelivery
        assert first.status_code == again.status_code == 202
        assert first.json()["workflow_id"] == again.json()["workflow_id"]
        await _until_told(p, channel, "TEE-BLK-M", 15)
        r = await p.http.get("/v1/availability", params={"sku": "TEE-BLK-M"})
        assert r.json()["items"][0]["available"] == 15
        for broken in ({"quantity": -1}, {"quantity": 10**40}, {"event_id": "erp:SO-1:create"}):
            bad = await p.http.post("/v1/inventory/events", json={**event, **broken})
            assert bad.status_code == 422 and bad.json()["detail"]["reason"] == "invalid_event", broken
        await client.get_workflow_handle(f"inventory-sync-{channel}").terminate("test over")


async def test_an_order_reservation_reaches_the_channel_within_seconds(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    channel = f"shop-{uuid.uuid4().hex[:6]}"
    async with platform(
        client,
        tmp_path,
        database_url,
        seed=seed_catalog,
        wms_pick_delay_s=60.0,
        inventory_channels=[channel],
        inventory_debounce_s=0.2,
    ) as p:
        await ensure_inventory_syncs(client, p.settings)
        await _until_told(p, channel, "TEE-BLK-M", 10)
        await p.send_shopify(shopify_order(8801, [("TEE-BLK-M", 3, "25.00")]))
        await p.wait_status("shopify-8801", "AwaitingShipment")
        # Reserved by the ERP allocation: the channel may now sell 7, and availability agrees.
        await _until_told(p, channel, "TEE-BLK-M", 7)
        r = await p.http.get("/v1/availability", params={"sku": "TEE-BLK-M", "channel": channel})
        assert r.json()["items"][0]["available"] == 7
        await client.get_workflow_handle(f"inventory-sync-{channel}").terminate("test over")
