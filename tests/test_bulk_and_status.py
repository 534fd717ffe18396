"""`retail orders retry --query` (bulk, dry run first) and `retail status`, against the real
Temporal dev server and a real store (see tests/test_cli.py for how the CLI runs in tests)."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from temporalio.client import Client

from cli.orders import _retry_one
from cli.status import business_status, percentile
from orchestration.models import OperatorRequest
from settings import get_settings
from tests.cli_runner import cli, cli_json
from tests.platform import Platform, platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order


def new_order_id() -> int:
    return 10**9 + uuid.uuid4().int % 10**11


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    """Platform logs go to stderr, so `--json` on stdout stays parseable."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    yield
    structlog.reset_defaults()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, client: Client) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("RETAIL_TEMPORAL_ADDRESS", client.service_client.config.target_host)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll an async check until it stops raising AssertionError (visibility lags)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def send(p: Platform, lines: list[tuple[str, int, str]]) -> str:
    oid = new_order_id()
    r = await p.send_shopify(shopify_order(oid, lines))
    assert r.status_code == 200, r.text
    return f"shopify-{oid}"


def test_percentile_is_nearest_rank() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert percentile(values, 50) == 3.0 and percentile(values, 95) == 10.0
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) is None


async def test_retry_needs_an_order_or_a_query_but_not_both(cli_env: None) -> None:
    neither = await cli("orders", "retry", "--reason", "x")
    assert neither.exit_code == 2 and "give an ORDER, or --query" in neither.stderr
    both = await cli("orders", "retry", "shopify-1", "--query", 'AttentionReason="x"', "--reason", "x")
    assert both.exit_code == 2 and "not both" in both.stderr


async def test_bulk_retry_dry_run_then_retry_and_status_numbers(
    client: Client, tmp_path: Path, database_url: str, cli_env: None
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        scope = f'TaskQueue = "{p.settings.task_queue}"'
        done = await send(p, [("MUG-01", 1, "12.50")])
        unknown = [await send(p, [(sku, 1, "40.00")]) for sku in ("NEW-THING", "NEWER-THING")]
        backordered = await send(p, [("TEE-BLK-M", 50, "25.00")])  # 10 in stock
        await p.wait_status(done, "Completed")
        for key in unknown:
            await p.wait_status(key, "NeedsAttention")
        st = await p.wait_status(backordered, "NeedsAttention")
        assert st.attention is not None and st.attention.reason == "backordered"

        # -- retail status: the scenario's numbers ---------------------------------------------
        async def status_settled() -> dict[str, Any]:
            s: dict[str, Any] = cli_json(await cli("status", "--json", "--query", scope))
            assert s["orders_by_status"]["NeedsAttention"] == 3 and s["orders_by_status"]["Completed"] == 1, s
            return s

        s = await eventually(status_settled)
        assert s["needs_attention_by_reason"] == {"backordered": 1, "unknown_sku": 2}
        assert {k: v for k, v in s["orders_by_status"].items() if v} == {"NeedsAttention": 3, "Completed": 1}
        assert (s["running"], s["awaiting_erp"], s["closed_abnormally"]) == (3, 0, 0)
        w = s["window"]
        assert (w["hours"], w["ingested"], w["completed"], w["cancelled"]) == (24, 4, 1, 0)
        lat = w["ingest_to_completed_s"]
        assert lat["orders"] == 1 and 0 < lat["p50"] == lat["p95"] < 60
        assert w["ingest_to_shipped_s"] is None and any(
            "retail_order_shipped_seconds" in n for n in s["notes"]
        )
        # A window that starts after these orders: nothing ingested or completed in it.
        later = await business_status(
            client, window=timedelta(minutes=30), scope=scope, now=datetime.now(UTC) + timedelta(hours=1)
        )
        assert later["window"]["ingested"] == 0 and later["window"]["completed"] == 0
        assert later["orders_by_status"] == s["orders_by_status"]  # not windowed
        table = await cli("status", "--query", scope)
        assert table.exit_code == 0, table.output
        assert "needs attention: unknown_sku" in table.stdout and "ingested, last 24h" in table.stdout

        # -- the dry run lists exactly the matching stuck orders and changes nothing -----------
        query = f'AttentionReason = "unknown_sku" AND {scope}'
        dry = cli_json(await cli("orders", "retry", "--query", query, "--reason", "SKUs imported", "--json"))
        assert dry["dry_run"] is True
        assert sorted(r["order_id"] for r in dry["orders"]) == sorted(unknown)
        for row in dry["orders"]:
            assert row["reason"] == "unknown_sku" and row["step"] == "create_sales_order"
            assert "THING" in row["message"]
        table = await cli("orders", "retry", "--query", query, "--reason", "SKUs imported")
        assert table.exit_code == 0, table.output
        assert "2 stuck orders would be retried" in table.stdout and "--yes" in table.stdout
        assert all(k in table.stdout for k in unknown) and backordered not in table.stdout
        for key in unknown:
            st = await p.state(key)
            assert st.status == "NeedsAttention" and st.actions == []

        # -- the real run retries each, with a summary -----------------------------------------
        seed_catalog(
            p.store, extra=[("NEW-THING", "40.00", "WH-EAST", 5), ("NEWER-THING", "40.00", "WH-EAST", 5)]
        )
        result = await cli(
            "orders", "retry", "--query", query, "--reason", "SKUs imported", "--operator", "ops-ada",
            "--yes", "--json",
        )  # fmt: skip
        out = cli_json(result)
        assert out["dry_run"] is False and out["refused"] == [] and out["failed"] == []
        assert sorted(r["order_id"] for r in out["retried"]) == sorted(unknown)
        assert all(r["detail"] == "retrying create_sales_order" for r in out["retried"])
        for key in unknown:
            st = await p.wait_status(key, "Completed")
            assert [(a.action, a.operator, a.reason) for a in st.actions] == [
                ("retry", "ops-ada", "SKUs imported")
            ]
        st = await p.state(backordered)
        assert st.status == "NeedsAttention" and st.actions == []

        # Nothing left to match: the dry run says so, and a retry of an order that moved on is
        # refused, not failed.
        async def none_left() -> None:
            left = cli_json(await cli("orders", "retry", "--query", query, "--reason", "again", "--json"))
            assert left["orders"] == [], left

        await eventually(none_left)
        req = OperatorRequest(operator="ops", reason="again")
        for key in (done, unknown[0]):
            outcome, detail = await _retry_one(client, {"workflow_id": f"order-{key}"}, req)
            assert outcome == "refused", (key, detail)

        async def status_after() -> dict[str, Any]:
            s: dict[str, Any] = cli_json(await cli("status", "--json", "--query", scope))
            assert s["orders_by_status"]["Completed"] == 3, s
            return s

        s = await eventually(status_after)
        assert s["needs_attention_by_reason"] == {"backordered": 1}
        assert s["window"]["completed"] == 3 and s["window"]["ingest_to_completed_s"]["orders"] == 3
        await p.handle(backordered).terminate("test done")
