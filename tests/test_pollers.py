"""Polled channels on a real Temporal server and store, against the in-process fakes of Amazon
SP-API and Adobe Commerce: orders are imported once and complete, an order updated between two
pages is not missed by the next overlapping window, a window run twice imports nothing twice, a
429 slows the poll without losing orders, a malformed order is a finding and the others go on,
and the schedules are created per polled channel."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from adapters.channels.adobe_commerce import AdobeCommerceClient
from orchestration.poll_models import PollResult
from sandboxes.adobe_commerce import (
    TOKEN,
    AdobeCommerceSandbox,
    adobe_order,
    create_adobe_commerce_app,
)
from sandboxes.amazon import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    AmazonSandbox,
    amazon_order,
    create_amazon_app,
)
from sandboxes.app_server import AppServer
from store import findings as fs
from store.reconcile import get_watermark
from tests.platform import Platform, platform
from tests.seed import seed_catalog
from workflows.schedules import apply_schedules, describe_schedules, poll_schedule_id, start_poll

FAST_PLANS = {"getOrders": (5.0, 50), "getOrder": (5.0, 50), "getOrderItems": (20.0, 100)}


def _settings(amazon: AppServer, adobe: AppServer) -> dict[str, Any]:
    return {
        "poll_channels": ["amazon", "adobe_commerce"],
        "poll_schedule_prefix": f"poll-{uuid.uuid4().hex[:8]}",
        "poll_page_size": 2,
        "poll_settle_s": 1.5,  # the Amazon fake wants LastUpdatedBefore 1 s in the past
        "poll_overlap_s": 60.0,
        "amazon_endpoint": amazon.url,
        "amazon_lwa_url": f"{amazon.url}/auth/o2/token",
        "amazon_client_id": CLIENT_ID,
        "amazon_client_secret": CLIENT_SECRET,
        "amazon_refresh_token": REFRESH_TOKEN,
        "adobe_commerce_url": adobe.url,
        "adobe_commerce_token": TOKEN,
        "inventory_channels": [],
    }


@asynccontextmanager
async def _polled(
    client: Client, tmp: Path, database_url: str
) -> AsyncIterator[tuple[Platform, AmazonSandbox, AdobeCommerceSandbox]]:
    amazon = AmazonSandbox(lag_s=0.0, min_before_s=1.0, plans=dict(FAST_PLANS), seed=7)
    adobe = AdobeCommerceSandbox()
    async with (
        AppServer(create_amazon_app(amazon)) as a,
        AppServer(create_adobe_commerce_app(adobe)) as b,
        platform(client, tmp, database_url, seed=seed_catalog, **_settings(a, b)) as p,
    ):
        yield p, amazon, adobe


async def _poll(p: Platform, channel: str, since: datetime | None = None) -> PollResult:
    return await (await start_poll(p.client, p.settings, channel, since)).result()


def _ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def _amz(n: int) -> str:
    """Order numbers distinct per test: every test shares one Temporal server (workflow ids)."""
    return f"111-{n:07d}-{n:07d}"


async def test_orders_are_imported_once_and_complete_and_a_malformed_one_is_a_finding(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _polled(client, tmp_path, database_url) as (p, amazon, adobe):
        amazon.add_order(*amazon_order(_amz(1), [("MUG-01", 2, "12.50")], updated=_ago(60), promotion="2.00"))
        amazon.add_order(*amazon_order(_amz(2), [("TEE-BLK-M", 1, "25.00")], updated=_ago(50)))
        amazon.add_order(*amazon_order(_amz(3), [("MUG-01", 1, "12.50")], updated=_ago(40), status="Pending"))
        bad, bad_items = amazon_order(_amz(4), [("MUG-01", 3, "12.50")], updated=_ago(30))
        bad_items[0]["ItemPrice"]["Amount"] = "37.51"  # not 3 x a price in cents
        bad["OrderTotal"]["Amount"] = str(Decimal(bad["OrderTotal"]["Amount"]) + Decimal("0.01"))
        amazon.add_order(bad, bad_items)
        adobe.add_order(adobe_order(501, [("MUG-01", 2, "12.50")], updated=_ago(60), discount="5.00"))
        adobe.add_order(adobe_order(502, [("HAT-RED", 1, "18.00")], updated=_ago(50), paid=False, guest=True))
        adobe.add_order(adobe_order(503, [("MUG-01", 1, "12.50")], updated=_ago(40), state="pending_payment"))

        first = await _poll(p, "amazon")
        assert (first.count("imported"), first.count("held"), first.count("unmappable")) == (2, 1, 1)
        assert first.watermark_advanced and get_watermark(p.store, "poll", "amazon") == first.until
        ac = await _poll(p, "adobe_commerce")
        assert (ac.count("imported"), ac.count("held")) == (2, 1)
        for key in (
            f"amazon-{_amz(1)}",
            f"amazon-{_amz(2)}",
            "adobe_commerce-000000501",
            "adobe_commerce-000000502",
        ):
            await p.wait_status(key, "Completed", timeout=60)
        [finding] = fs.list_findings(p.store, kind=fs.ORDER_UNMAPPABLE)
        assert finding.keys == {"channel": "amazon", "external_id": _amz(4)} and finding.status == "open"
        assert "OrderItems[0].ItemPrice" in finding.detail

        # The same window again, and the next (overlapping) one: nothing is imported twice. (The
        # shipments told to the channels moved the orders' update times: let them settle first.)
        await asyncio.sleep(p.settings.poll_settle_s + 0.5)
        again = await _poll(p, "amazon", since=first.since)
        assert (again.count("imported"), again.count("known")) == (0, 2)
        assert not again.watermark_advanced and get_watermark(p.store, "poll", "amazon") == first.until
        nxt = await _poll(p, "adobe_commerce")
        assert (nxt.count("imported"), nxt.count("known")) == (0, 2) and nxt.since < ac.until
        assert len(fs.list_findings(p.store)) == 1  # seen twice, recorded once

        # Paid at last: the held order is imported by the next window.
        amazon.update_order(_amz(3), OrderStatus="Unshipped")
        await asyncio.sleep(p.settings.poll_settle_s + 0.5)
        later = await _poll(p, "amazon")
        assert later.count("imported") == 1
        await p.wait_status(f"amazon-{_amz(3)}", "Completed", timeout=60)


async def test_an_order_updated_between_two_pages_is_not_missed(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _polled(client, tmp_path, database_url) as (p, amazon, adobe):
        for n in range(1, 6):
            amazon.add_order(*amazon_order(_amz(10 + n), [("MUG-01", 1, "12.50")], updated=_ago(60 - n)))
            adobe.add_order(adobe_order(600 + n, [("MUG-01", 1, "12.50")], updated=_ago(60 - n)))

        first_edited: list[str] = []

        def amazon_edit(page: int) -> None:
            if page == 1:  # an order the listing has not returned yet moves past the window
                later = [i for i in amazon.orders if i not in amazon.served_ids[0]]
                amazon.update_order(later[0], NumberOfItemsShipped=0)
                first_edited.append(later[0])

        def adobe_edit(page: int) -> None:
            if page == 1:  # an order already listed moves past the window: offsets would shift
                adobe.update_order(601, status="processing")

        amazon.on_page, adobe.on_page = amazon_edit, adobe_edit
        first = await _poll(p, "amazon")
        assert first.count("imported") == 4  # the edited one left this window...
        ac = await _poll(p, "adobe_commerce")
        assert ac.count("imported") == 5  # paged by key: nothing skipped
        amazon.on_page = adobe.on_page = None

        # The imported orders ship and the channels hear it (their update times move): wait for
        # that to be over, so the next windows see each of them exactly once.
        for key in [f"amazon-{i}" for i in amazon.orders if i != first_edited[0]] + [
            f"adobe_commerce-{600 + n:09d}" for n in range(1, 6)
        ]:
            await p.wait_status(key, "Completed", timeout=60)
        await asyncio.sleep(p.settings.poll_settle_s + 0.5)
        second = await _poll(p, "amazon")
        # ...and is in the next window, which overlaps the first: the others are seen again, known.
        assert (second.count("imported"), second.count("known")) == (1, 4)
        ac2 = await _poll(p, "adobe_commerce")
        assert (ac2.count("imported"), ac2.count("known")) == (0, 5)
        for n in range(1, 6):
            assert (await p.client.get_workflow_handle(f"order-amazon-{_amz(10 + n)}").describe()).run_id


async def test_a_429_slows_the_poll_without_losing_orders(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _polled(client, tmp_path, database_url) as (p, amazon, adobe):
        for n in range(1, 6):
            amazon.add_order(*amazon_order(_amz(20 + n), [("MUG-01", 1, "12.50")], updated=_ago(60 - n)))
            adobe.add_order(adobe_order(700 + n, [("MUG-01", 1, "12.50")], updated=_ago(60 - n)))

        def throttle(page: int) -> None:
            if page == 1:
                amazon.fail_next("getOrders", 429)
                amazon.fail_next("getOrderItems", 429, 429)
                adobe.fail_next(429)

        amazon.on_page = throttle
        adobe.on_page = lambda page: throttle(page) if page == 1 else None
        result = await _poll(p, "amazon")
        ac = await _poll(p, "adobe_commerce")
        assert amazon.throttled == {"getOrders": 1, "getOrderItems": 2}
        assert (result.count("imported"), ac.count("imported")) == (5, 5)
        assert amazon.pages_served >= 4  # the throttled page was asked again, never skipped


async def test_a_schedule_per_polled_channel(client: Client, tmp_path: Path, database_url: str) -> None:
    async with _polled(client, tmp_path, database_url) as (p, _, _):
        s = p.settings.model_copy(update={"reconcile_schedule_prefix": f"rc-{uuid.uuid4().hex[:8]}"})
        try:
            created = await apply_schedules(p.client, s)
            assert created[poll_schedule_id(s, "amazon")] == "created"
            again = await apply_schedules(p.client, s)
            assert again[poll_schedule_id(s, "adobe_commerce")] == "updated"
            kinds = {v.kind: v for v in await describe_schedules(p.client, s)}
            assert kinds["poll-amazon"].every == timedelta(seconds=s.poll_every_s)
            handle = p.client.get_schedule_handle(poll_schedule_id(s, "amazon"))
            assert (await handle.describe()).schedule.policy.overlap.name == "SKIP"
        finally:
            for sid in [poll_schedule_id(s, c) for c in s.poll_channels] + [
                f"{s.reconcile_schedule_prefix}-{k}" for k in ("orders", "inventory", "settlement")
            ]:
                await p.client.get_schedule_handle(sid).delete()


async def test_the_buyers_address_comes_with_a_restricted_data_token_and_without_one_a_person_enters_it(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with _polled(client, tmp_path, database_url) as (p, amazon, _):
        amazon.add_order(*amazon_order(_amz(71), [("MUG-01", 1, "12.50")], updated=_ago(60)))
        assert (await _poll(p, "amazon")).count("imported") == 1
        st = await p.wait_status(f"amazon-{_amz(71)}", "Completed", timeout=60)
        assert st.fulfillments  # shipped to the street the RDT revealed
        assert any(op == "createRestrictedDataToken" for op, _ in amazon.calls)

        # An app without the Direct-to-Consumer Delivery role: imported all the same, without the
        # street, so the address check holds it for a person instead of shipping it nowhere.
        amazon.restricted_role = False
        p.adapters.channels.pop("amazon", None)  # a new client asks for a new token
        amazon.add_order(*amazon_order(_amz(72), [("MUG-01", 1, "12.50")], updated=_ago(30)))
        assert (await _poll(p, "amazon")).count("imported") == 1
        held = await p.wait_status(f"amazon-{_amz(72)}", "NeedsAttention", timeout=60)
        assert held.attention is not None and held.attention.reason == "address_check_failed"
        assert "street" in held.attention.message


async def test_adobe_commerce_paging_does_not_skip_a_second_shared_by_more_than_a_page() -> None:
    """Many orders updated in the same second (a bulk update at the store): when the cursor moves
    into that second, its first page holds only orders already seen, and the rest must still come."""
    sandbox = AdobeCommerceSandbox()
    at = _ago(30)
    for eid in range(801, 806):  # the window starts earlier: the first page moves the cursor into ``at``
        sandbox.add_order(adobe_order(eid, [("MUG-01", 1, "12.50")], updated=at))
    async with AppServer(create_adobe_commerce_app(sandbox)) as server, httpx.AsyncClient() as http:
        ac = AdobeCommerceClient(server.url, "default", TOKEN, http)
        seen: list[int] = []
        cursor = None
        for _ in range(20):
            page = await ac.orders_updated(_ago(120), _ago(0), cursor, 2)
            seen += [o["entity_id"] for o in page.orders]
            cursor = page.cursor
            if cursor is None:
                break
    assert seen == [801, 802, 803, 804, 805]
