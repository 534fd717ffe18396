"""Shopify ``inventory_levels/update`` at the channel's own stores (RETAIL_SHOPIFY_STORE_LOCATIONS):
a POS sale there reaches the ledger as a cycle count, once, never undone by an older update;
updates anywhere else are acknowledged and ignored (the platform publishes that stock itself)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import Client

from adapters.channels.shopify.stock import TOPIC
from adapters.erp.inventory import InventoryLedger
from orchestration.client import ensure_inventory_syncs
from sandboxes.shopify import DEFAULT_ACCESS_TOKEN, SandboxServer, SandboxShop
from sandboxes.shopify.shop import DEFAULT_LOCATIONS
from settings import Settings
from store import inbox
from store.channel_stock import told
from store.db import Store
from store.inventory import Movement
from tests.platform import Platform, platform
from tests.seed import seed_catalog

STORE = "STORE-1"


def sku_for_test() -> str:
    """A SKU no other test uses: the session shares one Temporal server (workflow ids)."""
    return f"POS-{uuid.uuid4().hex[:8].upper()}"


def level(item: int, location: int, available: int | None, updated_at: datetime | str) -> dict[str, Any]:
    stamp = updated_at if isinstance(updated_at, str) else updated_at.isoformat(timespec="seconds")
    return {
        "inventory_item_id": item,
        "location_id": location,
        "available": available,
        "updated_at": stamp,
        "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location}?inventory_item_id={item}",
    }


def seeding(sku: str, on_hand_east: int = 5) -> Callable[[Store], None]:
    return lambda store: seed_catalog(store, extra=[(sku, "9.00", "WH-EAST", on_hand_east)])


def store_shop(**kw: Any) -> SandboxShop:
    return SandboxShop(locations=(*DEFAULT_LOCATIONS, STORE), **kw)


def store_settings(shop: SandboxShop, url: str, **more: Any) -> dict[str, Any]:
    return {
        "shopify_admin_url": url,
        "shopify_access_token": DEFAULT_ACCESS_TOKEN,
        "shopify_store_locations": {str(shop.location_id(STORE)): STORE},
        "reconcile_schedules": False,
        "inventory_channels": [f"web-{uuid.uuid4().hex[:6]}"],  # a sync of this test's own
        **more,
    }


def on_hand(p: Platform, sku: str, location: str = STORE) -> int | None:
    found = InventoryLedger(p.store).positions(sku, location)
    return found[0].on_hand if found else None


def counts(p: Platform, sku: str) -> list[Movement]:
    """The SKU's store counts, oldest first."""
    rows = InventoryLedger(p.store).movements(sku, location=STORE)
    return [m for m in reversed(rows) if m.kind == "cycle_count"]


async def until(what: Callable[[], object], expected: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = what()
        if last == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"got {last!r}, expected {expected!r}")


async def relay_all(p: Platform) -> None:
    """The API's relay loop, by hand (the test app runs no lifespan)."""
    assert p.app is not None
    await p.app.state.relay.run_once()


# -- settings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stores", "published", "complaint"),
    [
        ({"STORE-1": "STORE-1"}, None, "not a Shopify location id"),
        ({"1": "STORE-1", "2": "STORE-1"}, None, "both map to 'STORE-1'"),
        ({"1": " "}, None, "not a ledger location name"),
        ({"1": "S" * 101}, None, "not a ledger location name"),
        ({"71000000003": "STORE-1"}, "71000000003", "also RETAIL_SHOPIFY_INVENTORY_LOCATION"),
        ({"71000000003": "STORE-1"}, "STORE-1", "also RETAIL_SHOPIFY_INVENTORY_LOCATION"),
    ],
)
def test_store_locations_that_cannot_be_right_are_refused_at_load(
    stores: dict[str, str], published: str | None, complaint: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        Settings(shopify_store_locations=stores, shopify_inventory_location=published)
    assert "RETAIL_SHOPIFY_STORE_LOCATIONS" in str(exc.value) and complaint in str(exc.value)


def test_store_locations_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().shopify_store_locations == {}  # the default: no store, every update ignored
    monkeypatch.setenv("RETAIL_SHOPIFY_STORE_LOCATIONS", '{"71000000003": "STORE-1"}')
    monkeypatch.setenv("RETAIL_SHOPIFY_INVENTORY_LOCATION", "WH-EAST")
    assert Settings().shopify_store_locations == {"71000000003": "STORE-1"}


# -- ingress -----------------------------------------------------------------------------------------


async def test_levels_outside_the_stores_are_acknowledged_and_ignored_and_bad_ones_refused(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    now = datetime.now(UTC)
    stores = {"71000000003": STORE}
    async with platform(
        client, tmp_path, database_url, worker=False, simulators=False, shopify_store_locations=stores
    ) as p:
        # The location the platform publishes at (or any other non-store): its own pushes and web
        # orders. Kept, answered 200, settled ignored; nothing for Temporal or the ledger.
        r = await p.send_shopify(level(47_900_000_000_001, 71_000_000_001, 3, now), topic=TOPIC)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ignored" and r.json()["detail"].startswith("not a store location")
        [row] = inbox.list_inbox(p.store, workflow_id="webhook-shopify-location-71000000001")
        assert row.status == "ignored" and row.topic == TOPIC
        assert InventoryLedger(p.store).movements("TEE-BLK-M") == []
        # At a store, an untracked item (available null) has nothing to count.
        r = await p.send_shopify(level(47_900_000_000_001, 71_000_000_003, None, now), topic=TOPIC)
        assert r.status_code == 200 and r.json()["status"] == "ignored", r.text
        assert "not track" in r.json()["detail"]

        bad: list[tuple[dict[str, Any], str]] = [
            ({**level(1, 71_000_000_003, 3, now), "location_id": None}, "location_id"),
            ({**level(1, 71_000_000_001, 3, now), "location_id": "store"}, "location_id"),
            ({**level(1, 71_000_000_003, 3, now), "inventory_item_id": -4}, "inventory_item_id"),
            ({**level(1, 71_000_000_003, 3, now), "available": "3"}, "available"),
            ({**level(1, 71_000_000_003, 3, now), "available": 10**12}, "available"),
            ({**level(1, 71_000_000_003, 3, now), "updated_at": None}, "updated_at"),
            (level(1, 71_000_000_003, 3, "2026-11-27T10:00:00"), "updated_at"),  # no offset
        ]
        for payload, path in bad:
            r = await p.send_shopify(payload, topic=TOPIC)
            assert r.status_code == 422, (payload, r.text)
            assert r.json()["detail"]["path"] == path, (payload, r.json())
        assert [rej.reason for rej in inbox.list_rejections(p.store)] == ["mapping_error"] * len(bad)


async def test_store_counts_reach_the_ledger_once_and_an_older_update_changes_nothing(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    sku = sku_for_test()
    shop = store_shop(bucket_size=400, leak_per_s=200)
    item = shop.register_sku(sku)
    store_id = shop.location_id(STORE)
    async with (
        SandboxServer(shop) as server,
        platform(
            client,
            tmp_path,
            database_url,
            simulators=False,
            seed=seeding(sku),
            **store_settings(shop, server.url),
        ) as p,
    ):
        t0 = datetime.now(UTC).replace(microsecond=0)
        r = await p.send_shopify(level(item, store_id, 7, t0), topic=TOPIC, event_id="ev-7")
        assert r.status_code == 200, r.text
        body = r.json()
        event_id = f"shopify:inventory:{store_id}:{item}:{t0.isoformat().replace('+00:00', 'Z')}:7"
        assert body["status"] == "queued"  # the SKU is looked up by the relay, never in the request
        assert (body["event_id"], body["workflow_id"]) == (event_id, f"inventory-{event_id}")
        # The same event again (Event-Id), and the same change as another event: duplicates.
        again = await p.send_shopify(level(item, store_id, 7, t0), topic=TOPIC, event_id="ev-7")
        twin = await p.send_shopify(level(item, store_id, 7, t0), topic=TOPIC, event_id="ev-7-twin")
        assert [again.json()["status"], twin.json()["status"]] == ["duplicate", "duplicate"]
        await relay_all(p)
        await until(lambda: on_hand(p, sku), 7)
        await p.client.get_workflow_handle(f"inventory-{event_id}").result()
        [count] = counts(p, sku)
        assert (count.event_id, count.quantity, count.source, count.stale) == (
            event_id,
            7,
            "channel:shopify",
            False,
        )
        assert count.occurred_at == t0 and count.reference == f"Shopify location {store_id}: available 7"

        # A POS sale two minutes later (counts may not be dated further ahead of our clock), then
        # the level from before it, delivered late.
        t1 = t0 + timedelta(minutes=2)
        await p.send_shopify(level(item, store_id, 6, t1), topic=TOPIC)
        await relay_all(p)
        await until(lambda: on_hand(p, sku), 6)
        late = level(item, store_id, 9, t0 + timedelta(minutes=1))
        r = await p.send_shopify(late, topic=TOPIC)
        await relay_all(p)
        await p.client.get_workflow_handle(r.json()["workflow_id"]).result()
        assert on_hand(p, sku) == 6
        assert [(m.quantity, m.on_hand_delta, m.stale) for m in counts(p, sku)] == [
            (7, 7, False),
            (6, -1, False),
            (9, 0, True),
        ]

        # Oversold at the till: Shopify shows -2; the ledger counts 0 and says why. Offsets are
        # read as the instants they are (t1 + 1 s, written at UTC-05:00).
        oversold = level(item, store_id, -2, (t1 + timedelta(seconds=1)).astimezone(shop.tz))
        await p.send_shopify(oversold, topic=TOPIC)
        await relay_all(p)
        await until(lambda: on_hand(p, sku), 0)
        last = counts(p, sku)[-1]
        assert (last.quantity, last.occurred_at) == (0, t1 + timedelta(seconds=1))
        assert last.reference == f"Shopify location {store_id}: available -2 (oversold): counted as 0"
        assert on_hand(p, sku, "WH-EAST") == 5  # other locations are not the store's business


async def test_an_item_shopify_knows_no_sku_for_is_rejected_when_relayed_and_shopify_gets_200(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    shop = store_shop(bucket_size=400, leak_per_s=200)
    async with (
        SandboxServer(shop) as server,
        platform(
            client,
            tmp_path,
            database_url,
            worker=False,
            simulators=False,
            **store_settings(shop, server.url),
        ) as p,
    ):
        unknown = level(47_900_999_999_999, shop.location_id(STORE), 4, datetime.now(UTC))
        r = await p.send_shopify(unknown, topic=TOPIC)
        assert r.status_code == 200 and r.json()["status"] == "queued", r.text
        await relay_all(p)
        [row] = inbox.list_inbox(p.store, workflow_id=r.json()["workflow_id"])
        assert row.status == "rejected" and (row.outcome or "").startswith("unknown_inventory_item")
        [rejection] = inbox.list_rejections(p.store)
        assert (rejection.reason, rejection.topic, rejection.inbox_id) == (
            "unknown_inventory_item",
            TOPIC,
            row.id,
        )
        assert "47900999999999" in rejection.detail and STORE in rejection.detail


async def test_a_shopify_that_is_unreachable_or_rate_limited_leaves_the_count_pending(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    shop = store_shop(bucket_size=2, leak_per_s=0.05)  # two calls, then one every 20 s
    item = shop.register_sku(sku_for_test())
    now = datetime.now(UTC)
    async with SandboxServer(shop) as server:
        settings = store_settings(shop, server.url, webhook_relay_retry_initial_s=0.1)
        async with platform(client, tmp_path, database_url, worker=False, simulators=False, **settings) as p:
            for _ in range(2):
                shop.rate_limiter.admit(DEFAULT_ACCESS_TOKEN)  # someone else used the bucket up
            r = await p.send_shopify(level(item, shop.location_id(STORE), 3, now), topic=TOPIC)
            await relay_all(p)
            [row] = inbox.list_inbox(p.store, workflow_id=r.json()["workflow_id"])
            assert (row.status, row.attempts) == ("pending", 1)
            assert "rate limit" in (row.last_error or "")
            # Retried no sooner than Shopify's Retry-After (about 20 s), not the 0.1 s backoff.
            assert row.next_attempt_at > datetime.now(UTC) + timedelta(seconds=10)
    # The storefront is gone: the row waits with backoff, nothing is rejected.
    async with platform(client, tmp_path, database_url, worker=False, simulators=False, **settings) as p:
        r = await p.send_shopify(level(item, shop.location_id(STORE), 2, now), topic=TOPIC)
        await relay_all(p)
        [row] = inbox.list_inbox(p.store, workflow_id=r.json()["workflow_id"])
        assert row.status == "pending" and "Shopify" in (row.last_error or ""), row
        assert inbox.list_rejections(p.store) == []


# -- end to end --------------------------------------------------------------------------------------


async def test_a_pos_sale_at_a_store_reaches_the_ledger_and_the_channels_through_the_signed_webhook(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    sku = sku_for_test()
    clock = [datetime.now(UTC) - timedelta(minutes=5)]
    shop = store_shop(bucket_size=400, leak_per_s=200, clock=lambda: clock[0])
    shop.register_sku(sku)
    async with SandboxServer(shop) as server:
        settings = store_settings(shop, server.url, inventory_debounce_s=0.1)
        [channel] = settings["inventory_channels"]
        async with platform(
            client, tmp_path, database_url, simulators=False, seed=seeding(sku), **settings
        ) as p:
            webhooks = p.shopify_webhooks(shop, topics=[TOPIC])
            await ensure_inventory_syncs(client, p.settings)
            try:
                await until(lambda: {t.sku: t.quantity for t in told(p.store, channel)}.get(sku), 5)
                [offered] = p.adapters.ledger.channel_availability(channel, [sku])
                assert (offered.available, offered.locations) == (5, ["WH-EAST"])
                shop.set_available(sku, STORE, 4)  # the store's stock, as Shopify POS keeps it
                shop.set_available(sku, "WH-EAST", 50)  # where the platform publishes: not a count
                await webhooks.drain()
                await relay_all(p)
                await until(lambda: on_hand(p, sku), 4)
                clock[0] += timedelta(seconds=30)
                shop.pos_sale(sku, STORE, 1)  # sold at the till: no order reaches the platform
                await webhooks.drain()
                assert webhooks.summary()["delivered"] == 3
                await relay_all(p)
                await until(lambda: on_hand(p, sku), shop.available(sku, STORE))
                assert on_hand(p, sku) == 3 and on_hand(p, sku, "WH-EAST") == 5
                # The store's shelf is the POS's: the web channel is offered WH-EAST's 5 only.
                await until(lambda: {t.sku: t.quantity for t in told(p.store, channel)}.get(sku), 5)
                [offered] = p.adapters.ledger.channel_availability(channel, [sku])
                assert (offered.available, offered.locations) == (5, ["WH-EAST"])
                assert [(m.quantity, m.on_hand_delta) for m in counts(p, sku)] == [(4, 4), (3, -1)]
                ignored = [e for e in inbox.list_inbox(p.store) if e.status == "ignored" and e.topic == TOPIC]
                assert len(ignored) == 1  # the WH-EAST level
            finally:
                webhooks.close()
                await client.get_workflow_handle(f"inventory-sync-{channel}").terminate("test over")
