"""`retail returns` against a real Temporal dev server: create, list, show, the operator actions,
and the order's returns in `retail orders show`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from temporalio.client import Client

from settings import Faults, FaultSettings
from tests.cli_runner import cli, cli_json
from tests.platform import platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from tests.test_cli import new_order_id, use_task_queue
from tests.test_returns import wait_status

pytest_plugins = ["tests.test_cli"]


async def _listed(*args: str, want: str, timeout: float = 15.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = cli_json(await cli("returns", "list", "--json", *args))
        if any(r["return_key"] == want for r in rows):
            return rows
        await asyncio.sleep(0.25)
    raise AssertionError(f"{want} not listed with {args}; last: {rows}")


async def test_returns_create_list_show_retry_and_the_order_lists_its_returns(
    client: Client, tmp_path: Path, database_url: str, temporal_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = Faults(payment=FaultSettings(reject=["operation=refund"]))
    async with platform(client, tmp_path, database_url, seed=seed_catalog, faults=faults) as p:
        use_task_queue(monkeypatch, p)
        oid = new_order_id()
        await p.send_shopify(shopify_order(oid, [("MUG-01", 2, "12.50")]))
        await p.wait_status(f"shopify-{oid}", "Completed")

        refused = await cli("returns", "create", f"shopify-{oid}", "--line", "MUG-01:3", "--reason", "x")
        assert refused.exit_code == 1 and "3 to return, 2 shipped" in refused.output
        made = await cli(
            "returns",
            "create",
            f"shopify-{oid}",
            "--line",
            "MUG-01:1",
            "--reason",
            "chipped",
            "--id",
            "rma-c1",
        )
        assert made.exit_code == 0, made.output
        key = "shopify-rma-c1"
        assert key in made.stdout

        await wait_status(p, key, "NeedsAttention")
        stuck = await _listed("--stuck", want=key)
        row = next(r for r in stuck if r["return_key"] == key)
        assert row["status"] == "NeedsAttention" and row["attention"]["reason"] == "injected_rejection"  # type: ignore[index]

        shown = cli_json(await cli("returns", "show", key, "--json"))
        assert shown["rma_id"] and shown["credit_memo_id"] and shown["refunded"]["amount"] == "0.00"
        nothing = await cli("returns", "cancel", key, "--reason", "changed mind")
        assert nothing.exit_code == 1 and "received" in nothing.output  # goods are back: refund must happen

        p.adapters.payment.faults.heal()  # type: ignore[attr-defined]
        retried = await cli("returns", "retry", key, "--reason", "provider fixed", "--operator", "ana")
        assert retried.exit_code == 0, retried.output
        st = await wait_status(p, key, "Refunded")
        assert st.refunded == st.credited and [(a.action, a.operator) for a in st.actions] == [
            ("retry", "ana")
        ]

        table = await cli("returns", "show", key)
        assert table.exit_code == 0 and "Refunded" in table.stdout and str(st.rma_id) in table.stdout
        order = cli_json(await cli("orders", "show", f"shopify-{oid}", "--json"))
        assert [(r["return_key"], r["status"]) for r in order["returns"]] == [(key, "Refunded")]
        again = await cli("returns", "retry", key, "--reason", "again")
        assert again.exit_code == 1
