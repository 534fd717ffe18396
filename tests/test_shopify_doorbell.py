"""Shopify webhooks as doorbells (RETAIL_SHOPIFY_REFETCH_ORDERS): the relay fetches the order from
the Admin API (the sandbox storefront here) and starts it from that, not from the payload."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.client import Client

from canonical import Money
from sandboxes.shopify import DEFAULT_ACCESS_TOKEN, SandboxServer, SandboxShop
from store import inbox
from tests.platform import platform
from tests.seed import PRODUCTS, seed_catalog
from tests.shopify_payloads import shopify_order


async def test_a_trimmed_webhook_rings_and_the_order_is_fetched_from_the_admin_api(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    shop = SandboxShop(bucket_size=400, leak_per_s=200)
    shop.seed_catalog({"sku": sku, "title": f"Product {sku}", "price": price} for sku, price in PRODUCTS)
    async with SandboxServer(shop) as server:
        settings = {
            "shopify_admin_url": server.url,
            "shopify_access_token": DEFAULT_ACCESS_TOKEN,
            "shopify_refetch_orders": True,
            "reconcile_schedule_prefix": f"db-{uuid.uuid4().hex[:8]}",
        }
        async with platform(client, tmp_path, database_url, seed=seed_catalog, **settings) as p:
            # An order id no other test uses: the session shares one Temporal server.
            placed = shop.create_order(
                shopify_order(10**9 + uuid.uuid4().int % 10**9, [("MUG-01", 2, "12.50")])
            )
            # What arrives is trimmed to the id (and stale in every other field).
            r = await p.send_shopify({"id": placed["id"], "line_items": []}, webhook_id=uuid.uuid4().hex)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "queued"  # a doorbell never calls the channel in the request
            assert p.app is not None
            relay = p.app.state.relay
            await relay.run_once()  # the API's relay loop, by hand (the test app runs no lifespan)
            st = await p.wait_status(f"shopify-{placed['id']}", "Completed", timeout=60)
            # The order that ran is the storefront's: 2 x 12.50 + 1.81 tax + 5.00 shipping.
            assert st.total == Money.of("31.81", "USD") == st.captured

            # An order the Admin API does not know is refused by the relay with its reason.
            r = await p.send_shopify({"id": 99999999}, webhook_id=uuid.uuid4().hex)
            assert r.status_code == 200
            await relay.run_once()
            rejected = inbox.list_inbox(p.store, workflow_id="order-shopify-99999999")
            assert [e.status for e in rejected] == ["rejected"], rejected
            assert "Shopify" in (rejected[0].last_error or rejected[0].outcome or "")

            bad = await p.send_shopify({"id": "not-a-number"}, webhook_id=uuid.uuid4().hex)
            assert bad.status_code == 422 and '"path":"id"' in bad.text.replace(" ", "")
