"""The WMS stock webhook (``inventory.adjusted`` / ``inventory.counted`` on ``POST
/webhooks/wms/{name}``): signed, kept in the inbox, started as InventoryAdjustment, into the
ledger and out to the channel's sync; redeliveries and bad deliveries change nothing."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from adapters.erp.inventory import InventoryLedger
from adapters.signing import signed_headers
from orchestration.client import ensure_inventory_syncs
from store.channel_stock import told
from store.inventory import Movement
from tests.platform import Platform, platform
from tests.seed import seed_catalog

URL = "/webhooks/wms/builtin"
SECRET = "wms_sandbox_secret"  # the default RETAIL_WMS_WEBHOOK_SECRET


def stock_event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": f"adj-{uuid.uuid4().hex[:10]}",
        "type": "inventory.adjusted",
        "kind": "receipt",
        "sku": "TEE-BLK-M",
        "location": "WH-EAST",
        "quantity": 5,
        "reason": "PO-4711",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    return {**base, **fields}


async def post(http: httpx.AsyncClient, body: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    raw = json.dumps(body).encode()
    return await http.post(URL, content=raw, headers=signed_headers(raw, secret))


def journal(p: Platform, event_id: str) -> list[Movement]:
    return [m for m in InventoryLedger(p.store).movements("TEE-BLK-M") if m.event_id == event_id]


async def until_told(p: Platform, channel: str, sku: str, qty: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = {t.sku: t.quantity for t in told(p.store, channel)}.get(sku)
        if last == qty:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{channel} was told {last} for {sku}, expected {qty}")


def on_hand(p: Platform, sku: str, location: str) -> int:
    (pos,) = InventoryLedger(p.store).positions(sku, location)
    return pos.on_hand


async def test_a_signed_wms_stock_webhook_reaches_the_ledger_and_the_channel_once(
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
        inventory_debounce_s=0.1,
    ) as p:
        await ensure_inventory_syncs(client, p.settings)
        await until_told(p, channel, "TEE-BLK-M", 10)
        receipt = stock_event()
        r = await post(p.http, receipt)
        assert r.status_code == 200, r.text
        body = r.json()
        ledger_id = f"wms:builtin:{receipt['event_id']}"
        assert body == {"status": "accepted", "event_id": ledger_id, "workflow_id": f"inventory-{ledger_id}"}
        await until_told(p, channel, "TEE-BLK-M", 15)
        (row,) = [m for m in InventoryLedger(p.store).movements("TEE-BLK-M") if m.event_id == ledger_id]
        assert (row.kind, row.on_hand_delta, row.source, row.reference) == (
            "receipt",
            5,
            "wms:builtin",
            "PO-4711",
        )

        # A redelivery is acknowledged as a duplicate and moves nothing.
        again = await post(p.http, receipt)
        assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text
        await asyncio.sleep(0.5)
        assert on_hand(p, "TEE-BLK-M", "WH-EAST") == 15
        assert (
            len([m for m in InventoryLedger(p.store).movements("TEE-BLK-M") if m.event_id == ledger_id]) == 1
        )

        # A cycle count sets the counted on hand; the channel hears the absolute number.
        count = stock_event(type="inventory.counted", kind=None, quantity=12)
        del count["kind"]
        r = await post(p.http, count)
        assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
        await until_told(p, channel, "TEE-BLK-M", 12)
        assert on_hand(p, "TEE-BLK-M", "WH-EAST") == 12
        await client.get_workflow_handle(f"inventory-sync-{channel}").terminate("test over")


async def test_bad_stock_webhooks_are_refused_with_the_field_or_the_signature(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, worker=False, simulators=False, seed=seed_catalog
    ) as p:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"quantity": "5"}, "quantity"),
            ({"sku": ""}, "sku"),
            ({"kind": "shipment"}, "kind"),
            ({"occurred_at": "yesterday"}, "occurred_at"),
            ({"kind": "receipt", "quantity": 10**12}, "quantity"),
            ({"kind": "transfer", "to_location": "WH-EAST"}, "to_location"),
        ]
        for change, path in cases:
            r = await post(p.http, stock_event(**change))
            assert r.status_code == 422, (change, r.text)
            assert r.json()["detail"]["path"] == path, (change, r.json())
        missing = stock_event()
        del missing["sku"]
        r = await post(p.http, missing)
        assert r.status_code == 422 and r.json()["detail"]["path"] == "sku", r.text
        counted_with_kind = stock_event(type="inventory.counted")
        r = await post(p.http, counted_with_kind)
        assert r.status_code == 422 and r.json()["detail"]["reason"] == "mapping_error", r.text

        r = await post(p.http, stock_event(), secret="not-the-secret")
        assert r.status_code == 401 and r.json()["detail"]["reason"] == "invalid_signature", r.text
        unsigned = json.dumps(stock_event()).encode()
        r = await p.http.post(URL, content=unsigned, headers={"Content-Type": "application/json"})
        assert r.status_code == 401
