"""`retail reconcile` and `retail schedules` against a running platform: run a comparison, list
and settle its findings, and operate the schedules."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from adapters.payment.builtin import BuiltinPayment
from canonical import Money
from settings import get_settings
from tests.cli_runner import cli, cli_json, plain
from tests.platform import platform
from tests.seed import seed_catalog
from tests.test_cli import _quiet_logs, cli_env, temporal_env, use_task_queue

__all__ = ["_quiet_logs", "cli_env", "temporal_env"]  # fixtures shared with test_cli


async def test_run_list_resolve_and_operate_the_schedules(
    client: Client, tmp_path: Path, database_url: str, temporal_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"rc-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RETAIL_RECONCILE_SETTLE_S", "0")
    monkeypatch.setenv("RETAIL_RECONCILE_SCHEDULE_PREFIX", prefix)
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        use_task_queue(monkeypatch, p)
        get_settings.cache_clear()
        payment = BuiltinPayment(p.store)
        amount = Money.of("19.99", "USD")
        auth = await payment.authorize(amount, None, "order-shopify-8801:authorize")
        await payment.capture(auth.authorization_id, amount, "order-shopify-8801:capture:SHP-9")

        report = cli_json(await cli("reconcile", "run", "settlement", "--json"))
        assert report["settlement"]["differences"] == {"capture_without_invoice": 1}
        [finding] = cli_json(await cli("reconcile", "findings", "--open", "--json"))
        assert (finding["kind"], finding["subject"], finding["actual"]) == (
            "capture_without_invoice",
            "shopify-8801",
            "19.9900",
        )

        bad = await cli("reconcile", "run", "payouts")
        assert bad.exit_code == 2 and "unknown reconciliation" in plain(bad.output)
        done = await cli("reconcile", "resolve", str(finding["id"]), "--reason", "refunded by hand")
        assert done.exit_code == 0, done.output
        assert cli_json(await cli("reconcile", "findings", "--open", "--json")) == []
        [settled] = cli_json(await cli("reconcile", "findings", "--json"))
        assert (settled["status"], settled["reason"]) == ("resolved", "refunded by hand")

        try:
            applied = await cli("schedules", "apply")
            assert applied.exit_code == 0 and applied.output.count("created") == 3, applied.output
            paused = await cli("schedules", "pause", "inventory", "--note", "channel maintenance")
            assert paused.exit_code == 0, paused.output
            again = await cli("schedules", "apply")
            assert again.output.count("updated") == 3
            listed = {v["kind"]: v for v in cli_json(await cli("schedules", "list", "--json"))}
            assert listed["inventory"]["paused"] and listed["inventory"]["note"] == "channel maintenance"
            assert not listed["orders"]["paused"]
            assert (await cli("schedules", "resume", "inventory")).exit_code == 0
            listed = {v["kind"]: v for v in cli_json(await cli("schedules", "list", "--json"))}
            assert not listed["inventory"]["paused"]
        finally:
            for kind in ("orders", "inventory", "settlement"):
                await client.get_schedule_handle(f"{prefix}-{kind}").delete()
