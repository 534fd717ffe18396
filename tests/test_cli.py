"""The `retail` command line against the real Temporal dev server and a real store.

The CLI calls ``asyncio.run`` itself, so it is invoked from a worker thread while the test's
event loop keeps running the platform (worker, API, simulators)."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import structlog
from temporalio.client import Client

from adapters.erp.builtin import stock_levels
from backoffice.wms import list_fulfillment_orders
from cli.orders import list_query
from orchestration import search_attributes as sa
from settings import Faults, FaultSettings, get_settings
from store.db import Store
from tests.cli_runner import cli, cli_json, plain
from tests.platform import Platform, platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order


def new_order_id() -> int:
    """A Shopify order id no other test uses (the Temporal server is shared by the session)."""
    return 10**9 + uuid.uuid4().int % 10**11


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    """The API and the simulators log through structlog to stdout, which CliRunner captures
    while a command runs: send them to stderr so `--json` output stays parseable."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    yield
    structlog.reset_defaults()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[None]:
    """Point the CLI's settings (lru_cached, from the environment) at this test's store."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def temporal_env(cli_env: None, monkeypatch: pytest.MonkeyPatch, client: Client) -> Iterator[None]:
    """...and at the session's Temporal dev server."""
    monkeypatch.setenv("RETAIL_TEMPORAL_ADDRESS", client.service_client.config.target_host)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def use_task_queue(monkeypatch: pytest.MonkeyPatch, p: Platform) -> None:
    monkeypatch.setenv("RETAIL_TASK_QUEUE", p.settings.task_queue)
    get_settings.cache_clear()


async def wait_listed(workflow_id: str, *extra: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = cli_json(await cli("orders", "list", "--json", *extra))
        if any(r["workflow_id"] == workflow_id for r in rows):
            return rows
        await asyncio.sleep(0.25)
    raise AssertionError(f"{workflow_id} not listed with {extra} within {timeout}s; last: {rows}")


async def wait_unlisted(workflow_id: str, *extra: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = cli_json(await cli("orders", "list", "--json", *extra))
        if all(r["workflow_id"] != workflow_id for r in rows):
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{workflow_id} still listed with {extra} after {timeout}s; last: {rows}")


# -- orders show -----------------------------------------------------------------------------


async def test_orders_show_json_prints_the_state_with_exact_amounts(
    client: Client, tmp_path: Path, database_url: str, temporal_env: None
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        oid = new_order_id()
        await p.send_shopify(shopify_order(oid, [("MUG-01", 2, "12.50")]))
        st = await p.wait_status(f"shopify-{oid}", "Completed")

        shown = cli_json(await cli("orders", "show", f"shopify-{oid}", "--json"))
        assert shown["status"] == "Completed"
        assert shown["erp_order_id"] == st.erp_order_id and shown["erp_order_id"]
        total = {"amount": "31.81", "currency": "USD"}  # 25.00 + 1.81 tax + 5.00 shipping
        assert shown["total"] == total and shown["captured"] == total and shown["invoiced"] == total
        assert shown["refunded"] == {"amount": "0.00", "currency": "USD"}
        assert [s["shipment_id"] for s in shown["shipments"]] == [s.shipment_id for s in st.shipments]
        assert shown["shipments"][0]["lines"][0]["sku"] == "MUG-01"
        assert shown["attention"] is None and shown["actions"] == []

        # The workflow id works too, and the table names the status and the ERP order.
        table = await cli("orders", "show", f"order-shopify-{oid}")
        assert table.exit_code == 0, table.output
        assert "Completed" in table.stdout and str(st.erp_order_id) in table.stdout


async def test_orders_show_of_an_unknown_order_fails(temporal_env: None) -> None:
    key = f"shopify-{new_order_id()}"
    result = await cli("orders", "show", key, "--json")
    assert result.exit_code != 0
    assert f"no order {key}" in result.stderr and result.stdout == ""


async def test_an_unreachable_temporal_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, cli_env: None
) -> None:
    monkeypatch.setenv("RETAIL_TEMPORAL_ADDRESS", "127.0.0.1:9")  # discard: nothing listens
    get_settings.cache_clear()
    for args in (["orders", "list", "--json"], ["orders", "show", "shopify-1"]):
        result = await cli(*args)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
        assert "cannot reach Temporal at 127.0.0.1:9" in result.stderr, result.output


# -- stuck orders: list, skip ------------------------------------------------------------------


async def test_stuck_order_is_listed_and_skip_with_a_reference_continues_it(
    client: Client,
    tmp_path: Path,
    database_url: str,
    temporal_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog, simulators=False) as p:
        use_task_queue(monkeypatch, p)
        oid = new_order_id()
        key, wf_id = f"shopify-{oid}", f"order-shopify-{oid}"
        started = datetime.now(UTC) - timedelta(seconds=5)
        await p.send_shopify(shopify_order(oid, [("NEW-THING", 1, "40.00")]))
        await p.wait_status(key, "NeedsAttention")

        only_this = f'OrderId = "{key}"'
        rows = await wait_listed(wf_id, "--stuck", "--query", only_this)
        [row] = [r for r in rows if r["workflow_id"] == wf_id]
        assert row["order_id"] == key and row["channel"] == "shopify"
        assert row["status"] == "NeedsAttention" and row["attention"] == "unknown_sku"
        # --since takes ISO 8601 (naive = UTC, or with an offset) and makes a valid filter.
        since = started.replace(microsecond=0)
        for value in (
            since.strftime("%Y-%m-%dT%H:%M:%S"),
            since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            since.astimezone(timezone(timedelta(hours=2))).isoformat(),
        ):
            rows = await wait_listed(wf_id, "--stuck", "--since", value, "--query", only_this)
            assert [r["workflow_id"] for r in rows] == [wf_id]
        future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
        listed = await cli("orders", "list", "--stuck", "--json", "--since", future, "--query", only_this)
        assert cli_json(listed) == []
        # An offset is honoured, not dropped: an hour from now, written in UTC-5.
        later = (datetime.now(UTC) + timedelta(hours=1)).astimezone(timezone(timedelta(hours=-5)))
        listed = await cli("orders", "list", "--json", "--since", later.isoformat(), "--query", only_this)
        assert cli_json(listed) == []
        table = await cli("orders", "list", "--stuck", "--query", only_this)
        assert table.exit_code == 0 and key in table.stdout and "unknown_sku" in table.stdout

        # skip without --reference: typer refuses it; with an empty one, the workflow's validator.
        missing = await cli("orders", "skip", key, "--reason", "keyed in by hand")
        assert missing.exit_code == 2 and "--reference" in plain(missing.output)
        empty = await cli("orders", "skip", key, "--reason", "keyed in by hand", "--reference", "")
        assert empty.exit_code == 1 and "refused: skip needs --reference" in empty.stderr
        assert (await p.state(key)).actions == []

        done = await cli(
            "orders", "skip", key, "--reason", "keyed in by hand", "--reference", "SO-MANUAL-1",
            "--operator", "ops-ada",
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        assert "skipped create_sales_order (SO-MANUAL-1)" in done.stdout

        st = await p.wait_for(key, lambda s: s.status not in ("NeedsAttention", "Processing"))
        assert st.status == "AwaitingShipment" and st.erp_order_id == "SO-MANUAL-1"
        assert [(a.action, a.operator, a.reference, a.step) for a in st.actions] == [
            ("skip", "ops-ada", "SO-MANUAL-1", "create_sales_order")
        ]
        assert ("create_sales_order", "skipped", "SO-MANUAL-1") in [
            (s.step, s.status, s.detail) for s in st.steps
        ]
        # Once it moved on, it leaves the stuck list.
        await wait_unlisted(wf_id, "--stuck", "--query", only_this)


# -- retry and cancel ---------------------------------------------------------------------------


async def test_retry_is_refused_when_nothing_is_stuck_and_cancel_compensates(
    client: Client,
    tmp_path: Path,
    database_url: str,
    temporal_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with platform(
        client, tmp_path, database_url, seed=seed_catalog, simulators=False, wms_pick_delay_s=60.0
    ) as p:
        use_task_queue(monkeypatch, p)
        oid = new_order_id()
        key = f"shopify-{oid}"
        await p.send_shopify(shopify_order(oid, [("MUG-01", 1, "12.50")]))
        await p.wait_status(key, "AwaitingShipment")

        refused = await cli("orders", "retry", key, "--reason", "just in case", "--operator", "ops")
        assert refused.exit_code == 1
        assert "refused: nothing to retry" in refused.stderr and "AwaitingShipment" in refused.stderr
        assert (await p.state(key)).actions == []

        blank = await cli("orders", "cancel", key, "--reason", "", "--operator", "ops-bob")
        assert blank.exit_code == 1 and "refused: --reason" in blank.stderr
        assert (await p.state(key)).status == "AwaitingShipment"

        ok = await cli("orders", "cancel", key, "--reason", "customer called", "--operator", "ops-bob")
        assert ok.exit_code == 0, ok.output
        assert ok.stdout.strip() == "cancelling"
        st = await p.wait_status(key, "Cancelled")
        assert st.captured.is_zero and st.voided == st.total
        assert [(a.action, a.operator, a.reason) for a in st.actions] == [
            ("cancel", "ops-bob", "customer called")
        ]
        assert "notify_channel_cancelled" in {s.step for s in st.steps}

        again = await cli("orders", "cancel", key, "--reason", "twice", "--operator", "ops-bob")
        assert again.exit_code == 1 and f"no running order {key}" in again.stderr

        unknown = await cli("orders", "retry", f"shopify-{new_order_id()}", "--reason", "x")
        assert unknown.exit_code == 1 and "no running order" in unknown.stderr


async def test_cancel_is_refused_for_a_shipped_order_stuck_on_capture(
    client: Client,
    tmp_path: Path,
    database_url: str,
    temporal_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faults = Faults(payment=FaultSettings(reject=["operation=capture"]))
    async with platform(client, tmp_path, database_url, seed=seed_catalog, faults=faults) as p:
        use_task_queue(monkeypatch, p)
        oid = new_order_id()
        key = f"shopify-{oid}"
        await p.send_shopify(shopify_order(oid, [("MUG-01", 1, "12.50")]))
        st = await p.wait_status(key, "NeedsAttention")
        assert st.attention is not None and st.attention.reason == "injected_rejection"
        assert st.attention.step.startswith("capture:") and len(st.shipments) == 1

        result = await cli("orders", "cancel", key, "--reason", "too late", "--operator", "ops")
        assert result.exit_code == 1 and "cannot cancel" in result.stderr
        st = await p.state(key)
        assert st.status == "NeedsAttention" and st.voided.is_zero


async def test_the_erp_backend_is_a_search_attribute_listed_with_the_order(
    client: Client,
    tmp_path: Path,
    database_url: str,
    temporal_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with platform(
        client, tmp_path, database_url, seed=seed_catalog, simulators=False, wms_pick_delay_s=60.0
    ) as p:
        use_task_queue(monkeypatch, p)
        oid = new_order_id()
        key, wf_id = f"shopify-{oid}", f"order-shopify-{oid}"
        await p.send_shopify(shopify_order(oid, [("MUG-01", 1, "12.50")]))
        st = await p.wait_status(key, "AwaitingShipment")
        assert st.erp_backend == "builtin"
        described = await p.handle(key).describe()
        assert described.typed_search_attributes.get(sa.ERP_BACKEND) == "builtin"

        rows = await wait_listed(wf_id, "--query", f'OrderId = "{key}" AND ErpBackend = "builtin"')
        [row] = [r for r in rows if r["workflow_id"] == wf_id]
        assert row["erp_backend"] == "builtin"
        table = await cli("orders", "list", "--query", f'OrderId = "{key}"')
        assert table.exit_code == 0 and "ERP" in table.stdout and "builtin" in table.stdout


# -- address check -------------------------------------------------------------------------------


async def test_a_failed_address_check_holds_the_order_until_edited_and_approved(
    client: Client,
    tmp_path: Path,
    database_url: str,
    temporal_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        use_task_queue(monkeypatch, p)
        oid = new_order_id()
        key = f"shopify-{oid}"
        payload = shopify_order(oid, [("MUG-01", 1, "12.50")])
        payload["shipping_address"] = {**payload["shipping_address"], "zip": "9410", "province_code": ""}
        await p.send_shopify(payload)
        st = await p.wait_status(key, "NeedsAttention")
        assert st.attention is not None and st.attention.reason == "address_check_failed"
        assert st.attention.step == "address_check"
        assert "postal code '9410' is not a US postal code" in st.attention.message
        assert "region (state/province) is required in US" in st.attention.message
        assert st.erp_order_id is None and st.authorization_id is None  # nothing done before approval

        refused = await cli("orders", "retry", key, "--reason", "x", "--operator", "ops")
        assert refused.exit_code == 1 and "failed address check: approve or cancel" in refused.stderr
        fixed = await cli(
            "orders", "edit-address", key, "--reason", "customer confirmed by phone", "--operator", "ops",
            "--line1", "1 Main St", "--city", "San Francisco", "--region", "CA", "--postal-code", "94105",
            "--country", "US",
        )  # fmt: skip
        assert fixed.exit_code == 0, fixed.output
        approved = await cli("orders", "approve", key, "--reason", "address fixed", "--operator", "ops")
        assert approved.exit_code == 0, approved.output

        st = await p.wait_status(key, "Completed", timeout=60)
        assert st.captured == st.invoiced == st.total
        assert [a.action for a in st.actions] == ["edit_address", "approve"]
        assert ("address_check", "done", "approved by ops: address fixed (address edited)") in [
            (s.step, s.status, s.detail) for s in st.steps
        ]
        [fo] = list_fulfillment_orders(p.store, key)
        assert (
            fo.ship_to is not None and fo.ship_to["postal_code"] == "94105" and fo.ship_to["region"] == "CA"
        )


async def test_the_address_check_can_be_turned_off_and_a_good_address_passes(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog, address_check=False) as p:
        oid = new_order_id()
        payload = shopify_order(oid, [("MUG-01", 1, "12.50")])
        payload["shipping_address"] = {**payload["shipping_address"], "zip": "9410"}
        await p.send_shopify(payload)
        st = await p.wait_status(f"shopify-{oid}", "Completed", timeout=60)
        assert "check_address" not in {s.step for s in st.steps}
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        oid = new_order_id()
        await p.send_shopify(shopify_order(oid, [("MUG-01", 1, "12.50")]))
        st = await p.wait_status(f"shopify-{oid}", "AwaitingShipment", "Shipped", "Completed", timeout=60)
        assert ("check_address", "done") in [(s.step, s.status) for s in st.steps]


# -- list filters -------------------------------------------------------------------------------


def test_list_query_builds_a_valid_filter() -> None:
    q = list_query("Completed", "shopify", True, datetime(2026, 11, 20, 10, 0), 'OrderId = "x"')
    assert q == (
        'WorkflowType = "OrderToCash" AND OrderStatus = "NeedsAttention" AND OrderStatus = "Completed"'
        ' AND Channel = "shopify" AND StartTime >= "2026-11-20T10:00:00Z" AND (OrderId = "x")'
    )
    aware = datetime(2026, 11, 20, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert 'StartTime >= "2026-11-20T10:00:00Z"' in list_query(None, None, False, aware, None)


# -- catalog and inventory import ------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _stock(database_url: str, sku: str) -> dict[str, tuple[int, int]]:
    store = Store(database_url)
    try:
        return {lv.location: (lv.on_hand, lv.reserved) for lv in stock_levels(store, sku)}
    finally:
        store.dispose()


class _TrackedStore(Store):
    """The CLI's store, counting how often it was closed."""

    disposed = 0

    def dispose(self) -> None:
        type(self).disposed += 1
        super().dispose()


async def test_catalog_and_inventory_import_report_counts_and_fill_the_store(
    tmp_path: Path, database_url: str, cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cli.catalog.Store", _TrackedStore)
    _TrackedStore.disposed = 0
    products = _write(
        tmp_path / "products.csv",
        "sku,title,price,currency\nCLI-MUG,Mug,12.50,USD\nCLI-TEE,Tee,25.00,USD\n",
    )
    r = await cli("catalog", "import", str(products))
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "products: 2 (2 new, 0 updated, 0 unchanged)"
    r = await cli("catalog", "import", str(products))  # idempotent
    assert r.stdout.strip() == "products: 2 (0 new, 0 updated, 2 unchanged)"

    stock = _write(
        tmp_path / "stock.csv",
        "sku,location,on_hand\nCLI-MUG,WH-EAST,40\nCLI-MUG,WH-WEST,7\nCLI-TEE,WH-EAST,3\n",
    )
    r = await cli("inventory", "import", str(stock))
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "stock levels: 3 (3 new, 0 updated, 0 unchanged)"
    assert _stock(database_url, "CLI-MUG") == {"WH-EAST": (40, 0), "WH-WEST": (7, 0)}
    assert _stock(database_url, "CLI-TEE") == {"WH-EAST": (3, 0)}

    assert _TrackedStore.disposed == 3  # each command closes its connection pool

    # JSON works too; an absolute count replaces the old one.
    update = _write(tmp_path / "stock.json", '[{"sku": "CLI-MUG", "location": "WH-WEST", "on_hand": 9}]')
    r = await cli("inventory", "import", str(update))
    assert r.stdout.strip() == "stock levels: 1 (0 new, 1 updated, 0 unchanged)"
    assert _stock(database_url, "CLI-MUG") == {"WH-EAST": (40, 0), "WH-WEST": (9, 0)}


async def test_a_bad_row_fails_the_import_naming_the_row_and_writes_nothing(
    tmp_path: Path, database_url: str, cli_env: None
) -> None:
    bad_products = _write(
        tmp_path / "products.csv",
        "sku,title,price,currency\nCLI-OK,Fine,1.00,USD\nCLI-BAD,Broken,twelve,USD\n",
    )
    r = await cli("catalog", "import", str(bad_products))
    assert r.exit_code == 1
    assert "row 2" in r.stderr and "price" in r.stderr and r.stdout == ""

    good = _write(tmp_path / "ok.csv", "sku,title,price,currency\nCLI-OK,Fine,1.00,USD\n")
    r = await cli("catalog", "import", str(good))
    # Nothing of the failed file was written: the good row is new now.
    assert r.stdout.strip() == "products: 1 (1 new, 0 updated, 0 unchanged)"

    bad_stock = _write(
        tmp_path / "stock.csv",
        "sku,location,on_hand\nCLI-OK,WH-EAST,5\nCLI-OK,WH-WEST,-1\nCLI-NOPE,WH-EAST,1\n",
    )
    r = await cli("inventory", "import", str(bad_stock))
    assert r.exit_code == 1 and "row 2" in r.stderr and "on_hand" in r.stderr
    unknown = _write(tmp_path / "unknown.csv", "sku,location,on_hand\nCLI-OK,WH-EAST,5\nCLI-NOPE,WH-EAST,1\n")
    r = await cli("inventory", "import", str(unknown))
    assert r.exit_code == 1 and "row 2: unknown sku 'CLI-NOPE'" in r.stderr
    assert _stock(database_url, "CLI-OK") == {}

    missing = await cli("catalog", "import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and "does not exist" in plain(missing.output)
