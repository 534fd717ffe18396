"""Compare-and-set inventory pushes to Shopify (GraphQL inventorySetQuantities) against the sandbox
storefront: the adapter's contract (compare values, @idempotent, throttling, the REST fallback) and
the sync on a real Temporal server resolving a POS sale it had not heard of."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from activities.inventory import InventoryActivities
from adapters.channels.port import ChannelPort
from adapters.channels.shopify.admin import ShopifyAdminChannel
from adapters.erp.inventory import InventoryLedger
from adapters.errors import CompareMismatchError, RateLimitedError
from backoffice.bootstrap import open_store
from canonical import ChannelAvailability, InventoryEvent
from orchestration.inventory_models import ChannelSyncInput, InventoryAdjustmentInput, SyncPolicy, SyncState
from sandboxes.shopify import (
    DEFAULT_ACCESS_TOKEN,
    SandboxServer,
    SandboxShop,
    create_sandbox_app,
)
from store import findings as fs
from store.channel_stock import told
from store.db import Store
from tests.seed import PRODUCTS, seed_catalog
from tests.test_inventory_sync import RecordingChannel
from workflows.inventory import (
    ChannelInventorySync,
    InventoryAdjustment,
    adjustment_workflow_id,
    sync_workflow_id,
)

BASE = "https://sandbox.myshopify.com"


def level(sku: str, n: int, location: str = "WH-EAST") -> ChannelAvailability:
    return ChannelAvailability(channel="shopify", sku=sku, available=n, locations=[location], safety_buffer=0)


def sandbox(**kw: float) -> SandboxShop:
    shop = SandboxShop(**kw)  # type: ignore[arg-type]
    for sku, _ in PRODUCTS:
        shop.register_sku(sku)
    return shop


@asynccontextmanager
async def admin(
    shop: SandboxShop, version: str = "2025-07", api: str = "graphql"
) -> AsyncIterator[ShopifyAdminChannel]:
    transport = httpx.ASGITransport(app=create_sandbox_app(shop))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield ShopifyAdminChannel(BASE, DEFAULT_ACCESS_TOKEN, version, http, inventory_api=api)


# -- the adapter against the sandbox -------------------------------------------------------------


async def test_a_push_with_the_right_compare_value_applies_and_a_stale_one_changes_nothing() -> None:
    shop = sandbox()
    shop.set_available("MUG-01", "WH-EAST", 10)
    async with admin(shop) as ch:
        await ch.push_inventory_compared([level("MUG-01", 12)], {"MUG-01": 10}, "k-1")
        assert shop.available("MUG-01", "WH-EAST") == 12
        [group] = shop.adjustment_groups
        assert group["changes"] == [{"name": "available", "delta": 2, "quantityAfterChange": 12}]
        assert group["referenceDocumentUri"].startswith("gid://retail-connect/InventorySync/")
        shop.adjust_available("MUG-01", "WH-EAST", -1)  # a POS sale we have not heard of
        with pytest.raises(CompareMismatchError) as err:
            await ch.push_inventory_compared(
                [level("MUG-01", 20), level("TEE-BLK-M", 5)], {"MUG-01": 12}, "k-2"
            )
        assert err.value.mismatched == {"MUG-01": 12}
        # All or nothing: the other SKU of the batch was not set either.
        assert (shop.available("MUG-01", "WH-EAST"), shop.available("TEE-BLK-M", "WH-EAST")) == (11, None)


async def test_2026_04_compares_with_change_from_quantity() -> None:
    shop = sandbox()
    shop.set_available("MUG-01", "WH-EAST", 3)
    async with admin(shop, version="2026-04") as ch:
        await ch.push_inventory_compared([level("MUG-01", 4)], {"MUG-01": 3}, "k-1")
        with pytest.raises(CompareMismatchError):
            await ch.push_inventory_compared([level("MUG-01", 5)], {"MUG-01": 3}, "k-2")
    assert shop.available("MUG-01", "WH-EAST") == 4


async def test_an_idempotent_retry_of_the_same_mutation_does_not_apply_twice() -> None:
    shop = sandbox()
    shop.set_available("MUG-01", "WH-EAST", 10)
    async with admin(shop) as ch:
        ack = await ch.push_inventory_compared([level("MUG-01", 7)], {"MUG-01": 10}, "push-1")
        # The answer was lost and the activity retries: same key, same compare value. Shopify
        # answers from its record (without the key the stale compare value would be refused).
        again = await ch.push_inventory_compared([level("MUG-01", 7)], {"MUG-01": 10}, "push-1")
        assert again == ack and len(shop.adjustment_groups) == 1
        assert shop.available("MUG-01", "WH-EAST") == 7
        # The same push key with a new compare value is a new operation (a new directive key).
        shop.adjust_available("MUG-01", "WH-EAST", -2)
        await ch.push_inventory_compared([level("MUG-01", 7)], {"MUG-01": 5}, "push-1")
        assert len(shop.adjustment_groups) == 2 and shop.available("MUG-01", "WH-EAST") == 7


async def test_a_directive_key_reused_with_other_input_is_refused() -> None:
    shop = sandbox()
    item, loc = shop.inventory_item_id("MUG-01"), shop.location_id("WH-EAST")

    def body(qty: int) -> dict[str, object]:
        q = {
            "inventoryItemId": f"gid://shopify/InventoryItem/{item}",
            "locationId": f"gid://shopify/Location/{loc}",
        }
        return {
            "query": "mutation S($input: InventorySetQuantitiesInput!) {"
            " inventorySetQuantities(input: $input)"
            ' @idempotent(key: "11111111-2222-3333-4444-555555555555")'
            " { userErrors { code field message } } }",
            "variables": {
                "input": {
                    "name": "available",
                    "reason": "correction",
                    "quantities": [q | {"quantity": qty, "compareQuantity": 0}],
                }
            },
        }

    transport = httpx.ASGITransport(app=create_sandbox_app(shop))
    headers = {"X-Shopify-Access-Token": DEFAULT_ACCESS_TOKEN}
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        first = (await http.post("/admin/api/2025-07/graphql.json", json=body(3), headers=headers)).json()
        assert first["data"]["inventorySetQuantities"]["userErrors"] == []
        other = (await http.post("/admin/api/2025-07/graphql.json", json=body(4), headers=headers)).json()
        [error] = other["data"]["inventorySetQuantities"]["userErrors"]
        assert error["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
        assert (
            "X-Shopify-Shop-Api-Call-Limit"
            not in (await http.post("/admin/api/2025-07/graphql.json", json=body(3), headers=headers)).headers
        )  # GraphQL has its own limit, not the REST bucket
    assert shop.available("MUG-01", "WH-EAST") == 3


@pytest.mark.parametrize("status", [200, 429])
async def test_graphql_throttling_is_rate_limited_with_the_time_the_bucket_needs(status: int) -> None:
    clock = [1000.0]
    shop = sandbox(graphql_cost_maximum=10, graphql_restore_per_s=4, graphql_throttle_status=status)
    shop.graphql_limiter._clock = lambda: clock[0]  # exact refill times
    async with admin(shop) as ch:
        await ch.push_inventory_compared([level("MUG-01", 1)], {"MUG-01": 0}, "k-1")
        with pytest.raises(RateLimitedError) as err:
            await ch.push_inventory_compared([level("MUG-01", 2)], {"MUG-01": 1}, "k-2")
        assert err.value.retry_after == pytest.approx(2.5)  # 10 points short, 4 a second
        clock[0] += 2.5
        await ch.push_inventory_compared([level("MUG-01", 2)], {"MUG-01": 1}, "k-2")
    assert shop.available("MUG-01", "WH-EAST") == 2 and shop.graphql_throttled == 1


async def test_the_rest_fallback_sets_blindly() -> None:
    shop = sandbox()
    shop.set_available("MUG-01", "WH-EAST", 10)
    async with admin(shop, api="rest") as ch:
        assert not ch.compares_inventory
        await ch.push_inventory_compared([level("MUG-01", 4)], {"MUG-01": 99}, "k-1")
    assert shop.available("MUG-01", "WH-EAST") == 4 and shop.adjustment_groups == []


# -- the sync on Temporal, the sandbox over HTTP ---------------------------------------------------


@dataclass
class CasRig:
    client: Client
    store: Store
    ledger: InventoryLedger
    shop: SandboxShop
    amazon: RecordingChannel
    task_queue: str

    async def event(self, kind: str, sku: str, location: str, qty: int) -> None:
        ev = InventoryEvent(
            event_id=f"ev-{uuid.uuid4().hex[:10]}",
            kind=kind,  # type: ignore[arg-type]
            sku=sku,
            location=location,
            quantity=qty,
            source="wms",
            occurred_at=datetime.now(UTC),
        )
        await self.client.execute_workflow(
            InventoryAdjustment.run,
            InventoryAdjustmentInput(event=ev, channels=["shopify", "amazon"]),
            id=adjustment_workflow_id(ev.event_id),
            task_queue=self.task_queue,
        )

    async def until(self, what: Callable[[], object], expected: object, timeout: float = 25) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            last = what()
            if last == expected:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"got {last}, expected {expected}")

    def told(self, channel: str, sku: str) -> int | None:
        return {t.sku: t.quantity for t in told(self.store, channel)}.get(sku)

    async def state(self) -> SyncState:
        handle = self.client.get_workflow_handle_for(ChannelInventorySync.run, sync_workflow_id("shopify"))
        return await handle.query(ChannelInventorySync.state)


@asynccontextmanager
async def cas_rig(
    client: Client, database_url: str, shop: SandboxShop, *, journal_channel_sales: bool = True
) -> AsyncIterator[CasRig]:
    store = open_store(database_url)
    seed_catalog(store)
    ledger = InventoryLedger(store)
    ledger.set_channel_policy("shopify", locations=["WH-EAST"])
    amazon = RecordingChannel("amazon")
    tq = f"cas-{uuid.uuid4().hex[:8]}"
    policy = SyncPolicy(debounce_s=0.3, poll_s=0.5, batch_size=50, activity_timeout_s=5)
    async with SandboxServer(shop, port=0) as server, httpx.AsyncClient() as http:
        shopify = ShopifyAdminChannel(
            server.url, DEFAULT_ACCESS_TOKEN, http=http, inventory_location="WH-EAST"
        )
        channels: dict[str, ChannelPort] = {"shopify": shopify, "amazon": amazon}
        lookup: Callable[[str], ChannelPort] = lambda name: channels[name]  # noqa: E731
        acts = InventoryActivities(store, ledger, lookup, journal_channel_sales=journal_channel_sales)
        async with Worker(
            client,
            task_queue=tq,
            workflows=[InventoryAdjustment, ChannelInventorySync],
            activities=acts.all(),
        ):
            for name, peer in (("shopify", "amazon"), ("amazon", "shopify")):
                await client.start_workflow(
                    ChannelInventorySync.run,
                    ChannelSyncInput(channel=name, policy=policy, peers=[peer]),
                    id=sync_workflow_id(name),
                    task_queue=tq,
                    id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
                )
            try:
                yield CasRig(client, store, ledger, shop, amazon, tq)
            finally:
                for name in channels:
                    await client.get_workflow_handle(sync_workflow_id(name)).terminate("test over")
                store.dispose()


async def test_a_pos_sale_between_pushes_is_journalled_and_the_sync_converges(
    client: Client, database_url: str
) -> None:
    shop = sandbox()
    async with cas_rig(client, database_url, shop) as r:
        await r.until(lambda: shop.available("HAT-RED", "WH-EAST"), 3)  # the first push (compared with 0)
        await r.until(lambda: r.told("amazon", "HAT-RED"), 6)
        await r.until(lambda: r.told("shopify", "HAT-RED"), 3)
        shop.adjust_available("HAT-RED", "WH-EAST", -1)  # sold at the shop's POS: 2 left there
        await r.event("receipt", "HAT-RED", "WH-EAST", 2)  # the ledger says 5; Shopify shows 2, not 3
        # The push compared with 3 and was refused; the sync read 2 back, journalled one unit sold
        # at the channel, and pushed 5 - 1 = 4 compared with 2.
        await r.until(lambda: shop.available("HAT-RED", "WH-EAST"), 4)
        await r.until(lambda: r.told("shopify", "HAT-RED"), 4)
        await r.until(lambda: r.told("amazon", "HAT-RED"), 7)  # 6 + 2 - 1: the other channel heard it
        sales = [m for m in r.ledger.movements("HAT-RED") if m.kind == "channel_sale"]
        assert [(m.quantity, m.location, m.source) for m in sales] == [(1, "WH-EAST", "channel:shopify")]
        east = [p for p in r.ledger.positions("HAT-RED") if p.location == "WH-EAST"]
        assert east[0].on_hand == 4
        state = await r.state()
        assert state.compare_conflicts == 0
        # A later push compares with what Shopify showed after the sale was resolved: it applies.
        await r.event("receipt", "HAT-RED", "WH-EAST", 1)
        await r.until(lambda: shop.available("HAT-RED", "WH-EAST"), 5)
        assert len([m for m in r.ledger.movements("HAT-RED") if m.kind == "channel_sale"]) == 1


async def test_by_default_a_drop_at_the_channel_is_not_taken_for_a_sale(
    client: Client, database_url: str
) -> None:
    """A storefront lowers its own number for a web order before the ERP reserves it: journalling
    that drop as a sale would count the order twice. By default the ledger's number goes out."""
    shop = sandbox()
    async with cas_rig(client, database_url, shop, journal_channel_sales=False) as r:
        await r.until(lambda: shop.available("HAT-RED", "WH-EAST"), 3)
        await r.until(lambda: r.told("shopify", "HAT-RED"), 3)
        shop.adjust_available("HAT-RED", "WH-EAST", -1)  # a web order Shopify took: 2 shown
        await r.event("receipt", "HAT-RED", "WH-EAST", 2)  # the ledger says 5
        # Refused (compared with 3), read back (2), pushed again compared with 2: the ledger's 5.
        await r.until(lambda: shop.available("HAT-RED", "WH-EAST"), 5)
        assert [m for m in r.ledger.movements("HAT-RED") if m.kind == "channel_sale"] == []
        assert (await r.state()).compare_conflicts == 0


async def test_graphql_throttling_slows_the_sync_without_losing_the_last_value(
    client: Client, database_url: str
) -> None:
    shop = sandbox(graphql_cost_maximum=10, graphql_restore_per_s=5)  # one mutation per 2 s
    async with cas_rig(client, database_url, shop) as r:
        await r.until(lambda: shop.available("MUG-01", "WH-EAST"), 100)
        for _ in range(3):
            await r.event("receipt", "MUG-01", "WH-EAST", 1)
            await asyncio.sleep(0.5)
        await r.until(lambda: shop.available("MUG-01", "WH-EAST"), 103)
        await r.until(lambda: r.told("shopify", "MUG-01"), 103)
        assert shop.graphql_throttled >= 1
        assert not [m for m in r.ledger.movements("MUG-01") if m.kind == "channel_sale"]


async def test_a_number_that_keeps_moving_is_given_up_as_a_finding(client: Client, database_url: str) -> None:
    shop = sandbox()
    async with cas_rig(client, database_url, shop) as r:
        await r.until(lambda: r.told("shopify", "TEE-BLK-M"), 10)
        # Another writer raises Shopify's number before every write of ours (never a sale).
        original = shop.set_inventory_quantities

        def meddling(data: object, version: str, key: str | None) -> dict[str, object]:
            shop.adjust_available("TEE-BLK-M", "WH-EAST", +1)
            return original(data, version, key)

        shop.set_inventory_quantities = meddling  # type: ignore[method-assign]
        await r.event("receipt", "TEE-BLK-M", "WH-EAST", 2)
        await r.until(lambda: bool(fs.list_findings(r.store, kind=fs.INVENTORY_COMPARE_CONFLICT)), True)
        # The finding is written by an activity; the sync's own state follows when it returns.
        deadline = time.monotonic() + 15
        while (state := await r.state()).compare_conflicts < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert state.compare_conflicts >= 1 and "compare_conflict" in (state.last_error or "")
        assert not [m for m in r.ledger.movements("TEE-BLK-M") if m.kind == "channel_sale"]
        shop.set_inventory_quantities = original  # type: ignore[method-assign]
        await r.event("receipt", "TEE-BLK-M", "WH-EAST", 1)  # the next change goes out again
        await r.until(lambda: shop.available("TEE-BLK-M", "WH-EAST"), 13)
