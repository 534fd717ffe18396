"""Observability: the worker's Prometheus metrics after a scripted scenario on the real Temporal
server, the visibility gauges, the alert rules and dashboard, correlation IDs and redaction in logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML
from structlog.testing import LogCapture
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.worker import Replayer

import activities.orders
import api.metrics
import worker
from api.inventory_metrics import SYNC_LAG_WORST, InventorySyncCollector
from api.reconcile_metrics import FINDINGS, INVENTORY_ACCURACY, INVENTORY_ACCURACY_AT, ReconcileCollector
from cli.logs import REDACTED, configure_logging, redact_secrets
from orchestration import metrics as m
from orchestration.client import ensure_inventory_syncs
from orchestration.metrics import VisibilityGauges, register_visibility_collector, visibility_gauges
from orchestration.models import OperatorRequest
from replay import load_histories
from settings import Faults, FaultSettings, Settings
from store.channel_stock import told
from tests.platform import platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from worker import WORKFLOWS, CorrelationInterceptor, connect_worker_client, worker_runtime
from workflows.order_to_cash import OrderToCash

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "retail-orders.json"
OPS = OperatorRequest(operator="ops", reason="test")

Samples = list[tuple[str, dict[str, str], float]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def new_order_id() -> int:
    return 10**9 + uuid.uuid4().int % 10**11


def parse(text: str) -> Samples:
    return [
        (s.name, dict(s.labels), s.value) for fam in text_string_to_metric_families(text) for s in fam.samples
    ]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
        return parse(r.read().decode())


async def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll an async check until it stops raising AssertionError (visibility lags)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


# -- a worker exporting Prometheus metrics ---------------------------------------------------------


@pytest.fixture(scope="module")
def metrics_address() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def runtime(metrics_address: str) -> Runtime:
    rt = worker_runtime(Settings(worker_metrics_address=metrics_address))
    assert rt is not None
    return rt


@pytest.fixture
async def metrics_client(client: Client, runtime: Runtime) -> Client:
    """A client on the exporting runtime: workers built on it report to its endpoint."""
    address = client.service_client.config.target_host
    return await connect_worker_client(Settings(temporal_address=address), runtime)


def test_an_empty_metrics_address_turns_the_exporter_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIL_WORKER_METRICS_ADDRESS", "")
    assert Settings().worker_metrics_address == ""
    assert worker_runtime(Settings()) is None
    monkeypatch.delenv("RETAIL_WORKER_METRICS_ADDRESS")
    assert Settings().worker_metrics_address == "127.0.0.1:9464"


def test_a_taken_metrics_address_leaves_the_worker_running_without_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker, "log", structlog.get_logger("worker"))  # not one cached earlier
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with structlog.testing.capture_logs() as logs:
            assert worker_runtime(Settings(worker_metrics_address=address)) is None
    assert [e["address"] for e in logs if e["event"].startswith("worker metrics not served")] == [address]


async def test_business_metrics_and_visibility_gauges_for_a_scripted_scenario(
    metrics_client: Client, metrics_address: str, tmp_path: Path, database_url: str
) -> None:
    async with platform(metrics_client, tmp_path, database_url, seed=seed_catalog) as p:
        tq = p.settings.task_queue
        scope = f'TaskQueue = "{tq}"'
        a, b, c = (f"shopify-{new_order_id()}" for _ in range(3))
        await p.send_shopify(shopify_order(int(a.split("-")[1]), [("MUG-01", 1, "12.50")]))
        await p.send_shopify(shopify_order(int(b.split("-")[1]), [("NEW-THING", 1, "40.00")]))
        await p.send_shopify(shopify_order(int(c.split("-")[1]), [("OTHER-THING", 1, "9.00")]))
        await p.wait_status(a, "Completed")
        for key in (b, c):
            st = await p.wait_status(key, "NeedsAttention")
            assert st.attention is not None and st.attention.reason == "unknown_sku"

        # Visibility: both stuck orders, by reason, and nothing else open.
        async def two_stuck() -> VisibilityGauges:
            g = await visibility_gauges(p.client, scope)
            assert g["needs_attention_by_reason"] == {"unknown_sku": 2}, g
            return g

        gauges = await eventually(two_stuck)
        assert gauges["open_by_status"]["NeedsAttention"] == 2
        assert sum(gauges["open_by_status"].values()) == 2 and gauges["awaiting_erp"] == 0
        assert set(gauges["open_by_status"]) == set(m.OPEN_STATUSES)

        # The same through the collector, as the API will serve it.
        registry = CollectorRegistry()
        collector = register_visibility_collector(registry, p.client, scope=scope, refresh_s=0.1)
        try:

            async def served() -> Samples:
                samples = parse(generate_latest(registry).decode())
                assert value(samples, m.NEEDS_ATTENTION, reason="unknown_sku") == 2, samples
                return samples

            samples = await eventually(served)
            assert value(samples, m.OPEN, status="NeedsAttention") == 2
            assert value(samples, m.OPEN, status="Processing") == 0
            assert value(samples, m.AWAITING_ERP) == 0
            assert abs(value(samples, m.VISIBILITY_REFRESHED) - time.time()) < 60
            assert value(samples, f"{m.VISIBILITY_ERRORS}_total") == 0
        finally:
            await collector.aclose()
        assert m.OPEN not in generate_latest(registry).decode()  # unregistered

        # One is fixed and retried, the other cancelled.
        seed_catalog(p.store, extra=[("NEW-THING", "40.00", "WH-EAST", 5)])
        await p.handle(b).execute_update(OrderToCash.retry, OPS)
        await p.handle(c).execute_update(OrderToCash.cancel, OPS)
        await p.wait_status(b, "Completed")
        await p.wait_status(c, "Cancelled")

        async def none_open() -> None:
            g = await visibility_gauges(p.client, scope)
            assert g["needs_attention_by_reason"] == {} and not any(g["open_by_status"].values()), g

        await eventually(none_open)

    samples = scrape(metrics_address)
    mine = {"task_queue": tq, "workflow_type": "OrderToCash", "channel": "shopify"}
    assert value(samples, "retail_order_attention_total", reason="unknown_sku", **mine) == 2
    assert value(samples, "retail_orders_completed_total", **mine) == 2
    assert value(samples, "retail_orders_cancelled_total", **mine) == 1
    # A and B reached the ERP and shipped; C never did.
    assert value(samples, "retail_order_erp_accepted_seconds_count", **mine) == 2
    assert value(samples, "retail_order_shipped_seconds_count", **mine) == 2
    shipped_s = value(samples, "retail_order_shipped_seconds_sum", **mine)
    erp_s = value(samples, "retail_order_erp_accepted_seconds_sum", **mine)
    assert 0 < erp_s < shipped_s < 120
    recovery = "retail_order_attention_recovery_seconds_count"
    assert value(samples, recovery, reason="unknown_sku", resolution="retry", **mine) == 1
    assert value(samples, recovery, reason="unknown_sku", resolution="cancel", **mine) == 1
    # The buckets are ours (seconds to a week), not the SDK's millisecond defaults.
    les = {float(ls["le"]) for n, ls, _ in samples if n == "retail_order_shipped_seconds_bucket"}
    assert les == {*m.LATENCY_BUCKETS_S, float("inf")}
    # The SDK's own metrics are on the same endpoint.
    assert value(samples, "temporal_workflow_completed_total", task_queue=tq) == 3
    # Everything the dashboard reads from the worker is really exported.
    exported = {n for n, _, _ in samples}
    for name in dashboard_metrics():
        if name.startswith("temporal_"):
            assert exported & {name, f"{name}_bucket"}, f"the dashboard reads {name}: not exported"


async def test_awaiting_erp_counts_orders_the_erp_has_not_acknowledged(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    # No worker: the order stays Received, as when the ERP or every worker is down.
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        key = f"shopify-{new_order_id()}"
        r = await p.send_shopify(shopify_order(int(key.split("-")[1]), [("MUG-01", 1, "12.50")]))
        assert r.status_code == 200, r.text
        scope = f'TaskQueue = "{p.settings.task_queue}"'
        try:

            async def waiting() -> VisibilityGauges:
                g = await visibility_gauges(p.client, scope)
                assert g["awaiting_erp"] == 1, g
                return g

            g = await eventually(waiting)
            assert g["open_by_status"]["Received"] == 1 and g["needs_attention_by_reason"] == {}
        finally:
            await p.handle(key).terminate("test done")


# -- correlation IDs in the activities' logs -------------------------------------------------------


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[LogCapture]:
    """Every structlog event, after the context (and redaction) processors."""
    cap = LogCapture()
    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, redact_secrets, cap],
        cache_logger_on_first_use=False,
    )
    monkeypatch.setattr(activities.orders, "log", structlog.get_logger("activities"))
    try:
        yield cap
    finally:
        structlog.configure(**saved)


async def test_activity_log_lines_carry_the_correlation_id_and_ids(
    client: Client, tmp_path: Path, database_url: str, captured_logs: LogCapture
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        oid = new_order_id()
        delivery = f"wh-{uuid.uuid4().hex[:12]}"
        await p.send_shopify(shopify_order(oid, [("MUG-01", 1, "12.50")]), webhook_id=delivery)
        await p.wait_status(f"shopify-{oid}", "Completed")
        run_id = (await p.handle(f"shopify-{oid}").describe()).run_id

    # The activities' lines (the API logs its own, with the ids it knows).
    lines = [
        e for e in captured_logs.entries if e.get("workflow_id") == f"order-shopify-{oid}" and "activity" in e
    ]
    events = {e["event"] for e in lines}
    assert {"customer resolved", "sales order accepted", "payment authorized", "invoice posted"} <= events
    for e in lines:
        assert e["correlation_id"] == delivery, e
        assert e["run_id"] == run_id and e["activity_id"] and e["attempt"] >= 1, e
    accepted = next(e for e in lines if e["event"] == "sales order accepted")
    assert accepted["activity"] == "erp.create_sales_order"
    # The interceptor's binding ends with the activity: nothing leaks into this task.
    assert "correlation_id" not in structlog.contextvars.get_contextvars()


async def test_histories_replay_with_the_correlation_interceptor() -> None:
    """Activity headers are no commands: histories recorded without them still replay."""
    replayer = Replayer(
        workflows=WORKFLOWS, interceptors=[CorrelationInterceptor()], data_converter=pydantic_data_converter
    )
    histories = load_histories(ROOT / "tests" / "histories")
    assert histories
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, (history.workflow_id, result.replay_failure)


# -- redaction ------------------------------------------------------------------------------------


def test_redaction_hides_secrets_and_card_data_at_any_depth() -> None:
    event: dict[str, Any] = {
        "event": "webhook received with Authorization: Bearer sk_live_abcdef123456",
        "shopify_webhook_secret": "shpss_123",
        "X-Shopify-Hmac-Sha256": "abc=",
        "headers": {"Authorization": "Basic dXNlcjpwYXNz", "Content-Type": "application/json"},
        "payment": {"credit_card_number": "4242424242424242", "cvv": "123", "amount": "12.50"},
        "items": [{"access_token": "t0k"}, {"sku": "MUG-01"}],
        "password": "hunter2",
        "api_key": "k",
        "signature": "sha256=00",
        # Not secrets: kept for the operator.
        "authorization_id": "AUTH-1",
        "reason": "card_declined",
        "company": "ACME",
        "idempotency_key": "order-shopify-1:capture",
        "correlation_id": "wh-1",
    }
    out = redact_secrets(None, "info", dict(event))
    for key in ("shopify_webhook_secret", "X-Shopify-Hmac-Sha256", "password", "api_key", "signature"):
        assert out[key] == REDACTED, key
    assert out["headers"] == {"Authorization": REDACTED, "Content-Type": "application/json"}
    assert out["payment"] == {"credit_card_number": REDACTED, "cvv": REDACTED, "amount": "12.50"}
    assert out["items"] == [{"access_token": REDACTED}, {"sku": "MUG-01"}]
    assert "sk_live_abcdef123456" not in out["event"] and "Bearer [REDACTED]" in out["event"]
    for key in ("authorization_id", "reason", "company", "idempotency_key", "correlation_id"):
        assert out[key] == event[key], key


def test_configured_logging_redacts_structlog_and_stdlib_lines(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = structlog.get_config()
    try:
        configure_logging("INFO")
        structlog.get_logger("t").info("token check", token="tok_secret_1", order_key="shopify-1")
        logging.getLogger("t.stdlib").warning("signed", extra={"hmac": "abc_secret_2", "step": "x"})
        err = capsys.readouterr().err
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**saved)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [(ln["event"], ln.get("token"), ln.get("hmac")) for ln in lines] == [
        ("token check", REDACTED, None),
        ("signed", None, REDACTED),
    ]
    assert lines[0]["order_key"] == "shopify-1" and lines[1]["step"] == "x"  # extras are kept
    assert "secret_1" not in err and "secret_2" not in err


# -- alert rules and dashboard --------------------------------------------------------------------

_METRIC = re.compile(r"\b((?:retail|temporal)_[a-z0-9_]+)\b")
_HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


def known_metrics() -> set[str]:
    """Every metric name the code exports: the workflow's, the visibility gauges, the API's."""
    names = set(m.WORKER_METRICS) | set(m.VISIBILITY_METRICS)
    for collector in (ReconcileCollector, InventorySyncCollector):  # describe() reads no store
        names |= {fam.name for fam in collector(None).describe()}  # type: ignore[arg-type]
    for obj in vars(api.metrics).values():
        if isinstance(obj, MetricWrapperBase):
            for fam in obj.describe():
                names.add(f"{fam.name}_total" if fam.type == "counter" else fam.name)
    return names


def _base(name: str) -> str:
    for part in _HISTOGRAM_PARTS:
        if name.endswith(part):
            return name.removesuffix(part)
    return name


def dashboard_metrics() -> set[str]:
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])]
    return {_base(n) for e in exprs for n in _METRIC.findall(e)}


def load_alerts() -> list[dict[str, Any]]:
    data = YAML(typ="safe", pure=True).load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_alert_rules_are_complete_and_use_exported_metrics() -> None:
    rules = load_alerts()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    assert {"RetailOrdersAwaitingErp", "RetailOrdersNeedingAttentionRising"} <= set(names)
    known = known_metrics()
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
        assert rule["labels"]["severity"] in ("page", "ticket"), rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule
        used = {_base(n) for n in _METRIC.findall(rule["expr"])}
        assert used <= known, (rule["alert"], used - known)
    by_name = {r["alert"]: r for r in rules}
    assert "retail_orders_awaiting_erp" in by_name["RetailOrdersAwaitingErp"]["expr"]
    assert by_name["RetailOrdersAwaitingErp"]["for"] == "10m"
    lag = by_name["RetailInventorySyncLagHigh"]
    assert "histogram_quantile(0.95" in lag["expr"] and m.INVENTORY_SYNC_LAG_SECONDS in lag["expr"]
    assert lag["for"] == "10m"
    assert {"RetailInventoryAccuracyLow", "RetailReconcileFindingsOpen", "RetailReturnsStuck"} <= set(names)


def test_the_alert_check_does_catch_an_unknown_metric() -> None:
    assert _base("retail_order_shipped_seconds_bucket") in known_metrics()
    assert "retail_orders_shiped_total" not in known_metrics()


def test_dashboard_parses_and_reads_metrics_the_code_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(p["targets"] and p["datasource"]["type"] == "prometheus" for p in panels)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    used = dashboard_metrics()
    retail = {n for n in used if n.startswith("retail_")}
    assert retail <= known_metrics(), retail - known_metrics()
    # Every business metric has a panel.
    assert {_base(n) for n in m.WORKER_METRICS} <= used
    assert {m.NEEDS_ATTENTION, m.AWAITING_ERP, m.OPEN, m.RETURNS_OPEN} <= used
    assert {FINDINGS, INVENTORY_ACCURACY, INVENTORY_ACCURACY_AT, SYNC_LAG_WORST} <= used


async def test_inventory_sync_lag_is_recorded_per_channel_after_a_stock_event(
    metrics_client: Client, metrics_address: str, tmp_path: Path, database_url: str
) -> None:
    channel = f"lag-{uuid.uuid4().hex[:6]}"
    lag = m.INVENTORY_SYNC_LAG_SECONDS
    async with platform(
        metrics_client,
        tmp_path,
        database_url,
        simulators=False,
        seed=seed_catalog,
        inventory_channels=[channel],
        inventory_debounce_s=0.1,
    ) as p:
        await ensure_inventory_syncs(metrics_client, p.settings)

        async def told_at(qty: int) -> None:
            assert {t.sku: t.quantity for t in told(p.store, channel)}.get("TEE-BLK-M") == qty

        await eventually(lambda: told_at(10))  # the first push: the whole catalogue
        pushes = value(scrape(metrics_address), f"{lag}_count", channel=channel)
        assert pushes >= 1
        event = {
            "event_id": f"lag-{uuid.uuid4().hex[:8]}",
            "kind": "receipt",
            "sku": "TEE-BLK-M",
            "location": "WH-EAST",
            "quantity": 5,
            "source": "wms",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
        assert (await p.http.post("/v1/inventory/events", json=event)).status_code == 202
        await eventually(lambda: told_at(15))

        async def recorded() -> Samples:
            samples = scrape(metrics_address)
            assert value(samples, f"{lag}_count", channel=channel) > pushes
            return samples

        samples = await eventually(recorded)
        count = value(samples, f"{lag}_count", channel=channel)
        assert value(samples, f"{lag}_sum", channel=channel) >= 0
        assert value(samples, f"{lag}_bucket", channel=channel, le="+Inf") == count
        labels = next(ls for n, ls, _ in samples if n == f"{lag}_count" and ls.get("channel") == channel)
        assert labels["activity_type"] == "inventory.push_to_channel"
        # The API's gauge: the worst lag among the channel's recent pushes, from channel_stock.
        api_samples = parse((await p.http.get("/metrics")).text)
        worst = [v for n, ls, v in api_samples if n == SYNC_LAG_WORST and ls.get("channel") == channel]
        assert len(worst) == 1 and worst[0] >= 0
        await metrics_client.get_workflow_handle(f"inventory-sync-{channel}").terminate("test over")


async def test_a_failing_erp_is_counted_for_the_erp_unavailable_alert(
    metrics_client: Client, metrics_address: str, tmp_path: Path, database_url: str
) -> None:
    flaky = Faults(erp=FaultSettings(transient_rate=0.5, seed=3))
    async with platform(metrics_client, tmp_path, database_url, seed=seed_catalog, faults=flaky) as p:
        key = f"shopify-{new_order_id()}"
        await p.send_shopify(shopify_order(int(key.split("-")[1]), [("MUG-01", 1, "12.50")]))
        await p.wait_status(key, "Completed", timeout=60)
        tq = p.settings.task_queue
    samples = scrape(metrics_address)
    failed = value(samples, f"{m.VENDOR_UNAVAILABLE}_total", system="erp", task_queue=tq)
    assert failed >= 1
    assert value(samples, f"{m.VENDOR_UNAVAILABLE}_total", system="payment", task_queue=tq) == 0
    rule = {r["alert"]: r for r in load_alerts()}["RetailErpUnavailable"]
    assert m.VENDOR_UNAVAILABLE in rule["expr"] and 'system="erp"' in rule["expr"]
