"""The webhook inbox: every accepted delivery is kept before it is acknowledged, deduplicated on
the vendor's event id and on the business key, and relayed to Temporal now or later; every
refused one is recorded without its secrets and listed by `retail webhooks rejected`.

The API runs in-process (httpx's ASGI transport) on the test's store (SQLite, or a PostgreSQL
schema when DATABASE_URL is set) and, where Temporal is needed, the session's real server.
"Temporal is down" is a client factory that fails, so these tests stay fast; the outage of a
real server is tests/test_temporal_outage.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
import structlog
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from prometheus_client import REGISTRY
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus

from adapters.channels.shopify.signature import sign as shopify_sign
from adapters.signing import SIGNATURE_HEADER
from adapters.signing import sign as retail_sign
from api import signatures
from api.app import create_app
from api.relay import InboxRelay
from api.temporal import signal_once
from backoffice.bootstrap import open_store
from backoffice.models import Base
from orchestration.models import CancelRequest
from settings import Settings, get_settings
from store import inbox
from store.db import Store
from tests.cli_runner import cli
from tests.platform import API, SHOPIFY_SECRET
from tests.platform import test_settings as platform_settings
from tests.shopify_payloads import shopify_order

Json = dict[str, Any]
T = TypeVar("T")


def new_order_id() -> int:
    """A Shopify order id no other test uses (the Temporal server is shared by the session)."""
    return 10**9 + uuid.uuid4().int % 10**11


def closed_port() -> int:
    """A local port nothing listens on: Temporal "down" without waiting for a timeout."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(database_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "webhook_inline_relay_timeout_s": 5.0,
        "webhook_relay_retry_initial_s": 0.3,
        "webhook_relay_retry_max_s": 0.3,
    }
    base.update(overrides)
    return platform_settings(database_url, f"127.0.0.1:{closed_port()}", **base)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(database_url)
    try:
        yield s
    finally:
        s.dispose()


@asynccontextmanager
async def api(
    settings: Settings,
    store: Store,
    *,
    client: Client | None = None,
    factory: Callable[[], Awaitable[Client]] | None = None,
) -> AsyncIterator[tuple[InboxRelay, httpx.AsyncClient]]:
    """The API app on ``store``, without its background relay loop (tests drive the relay)."""
    app = create_app(settings, client, store=store, client_factory=factory, relay_loop=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=API) as http:
        yield app.state.relay, http


async def down() -> Client:
    raise RuntimeError("Temporal is down (test)")


async def post_shopify(
    http: httpx.AsyncClient,
    payload: Json | bytes,
    *,
    topic: str = "orders/create",
    event_id: str | None = None,
    webhook_id: str | None = None,
    secret: str = SHOPIFY_SECRET,
    signature: str | None = None,
    content_type: str = "application/json",
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": content_type,
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id or uuid.uuid4().hex,
        "X-Shopify-Shop-Domain": "sandbox.myshopify.com",
        "X-Shopify-Hmac-Sha256": signature if signature is not None else shopify_sign(raw, secret),
        **(extra or {}),
    }
    if event_id is not None:
        headers["X-Shopify-Event-Id"] = event_id
    return await http.post("/webhooks/shopify", content=raw, headers=headers)


def inbox_id(r: httpx.Response) -> int:
    assert r.status_code == 200, r.text
    return int(r.headers["X-Retail-Inbox-Id"])


def entry(store: Store, entry_id: int) -> inbox.InboxEntry:
    found = inbox.get_entry(store, entry_id)
    assert found is not None
    return found


async def until(probe: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(probe)
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def ingested() -> float:
    value = REGISTRY.get_sample_value(
        "retail_orders_ingested_total", {"channel": "shopify", "source": "shopify_webhook"}
    )
    return value or 0.0


async def count_events(client: Client, workflow_id: str, attribute: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(1 for e in history.events if e.HasField(attribute))


# -- schema -----------------------------------------------------------------------------------


def test_the_migration_creates_the_tables_the_models_describe(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = [d for d in compare_metadata(ctx, Base.metadata) if "webhook_" in repr(d)]
    assert diffs == []


# -- accepted deliveries ------------------------------------------------------------------------


async def test_a_delivery_is_in_the_inbox_before_it_is_acknowledged(
    client: Client, store: Store, database_url: str
) -> None:
    gate = asyncio.Event()

    async def slow_temporal() -> Client:
        await gate.wait()
        return client

    async with api(settings_for(database_url), store, factory=slow_temporal) as (_, http):
        oid = new_order_id()
        raw = json.dumps(shopify_order(oid, [("MUG-01", 1, "12.50")])).encode()
        request = asyncio.create_task(post_shopify(http, raw, event_id="evt-before"))

        # While the request waits for Temporal, the delivery is already kept.
        kept = await until(lambda: inbox.list_inbox(store), "the delivery to be kept")
        assert not request.done()
        (e,) = kept
        assert e.status == "pending" and e.workflow_id == f"order-shopify-{oid}"
        assert e.topic == "orders/create" and e.event_id == "evt-before" and e.action == "start"
        assert inbox.entry_body(store, e.id) == raw

        gate.set()
        r = await request
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "accepted" and r.json()["workflow_id"] == f"order-shopify-{oid}"
        assert inbox_id(r) == e.id
        after = entry(store, e.id)
        assert after.status == "relayed" and after.attempts == 1 and after.settled_at is not None
        handle = client.get_workflow_handle(f"order-shopify-{oid}")
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await handle.terminate("test cleanup: no worker runs it")


async def test_the_inbox_keeps_headers_but_never_signatures_or_credentials(
    store: Store, database_url: str
) -> None:
    async with api(settings_for(database_url), store, factory=down) as (_, http):
        r = await post_shopify(
            http,
            shopify_order(new_order_id(), [("MUG-01", 1, "12.50")]),
            extra={"Authorization": "Bearer very-secret-token", "X-Api-Key": "k-123"},
        )
        assert r.json()["status"] == "queued"
        with store.session() as s:
            headers = s.scalar(select(inbox.InboxRow.headers).where(inbox.InboxRow.id == inbox_id(r)))
        assert headers is not None
        assert headers["x-shopify-topic"] == "orders/create"
        assert "x-shopify-webhook-id" in headers
        for name in ("x-shopify-hmac-sha256", "authorization", "x-api-key"):
            assert name not in headers
        assert "very-secret-token" not in json.dumps(headers)


async def test_a_redelivered_event_is_a_duplicate_and_starts_or_signals_nothing_new(
    client: Client, store: Store, database_url: str
) -> None:
    async with api(settings_for(database_url), store, client=client) as (_, http):
        oid = new_order_id()
        wf = f"order-shopify-{oid}"
        payload = shopify_order(oid, [("MUG-01", 1, "12.50")])
        before = ingested()

        first = await post_shopify(http, payload, event_id="evt-1", webhook_id="wh-1")
        assert first.json()["status"] == "accepted"
        # Shopify redelivers the same event under a new delivery id.
        again = await post_shopify(http, payload, event_id="evt-1", webhook_id="wh-2")
        assert again.json() == {
            "status": "duplicate",
            "duplicate_of": str(inbox_id(first)),
            "order_key": f"shopify-{oid}",
            "workflow_id": wf,
        }
        # The same change of the order under another event id (a second subscription): the
        # business key (order, topic, updated_at) catches it.
        other = await post_shopify(http, payload, event_id="evt-2", webhook_id="wh-3")
        assert other.json()["status"] == "duplicate"

        rows = sorted(inbox.list_inbox(store, workflow_id=wf), key=lambda e: e.id)
        assert [(e.status, e.duplicate_of) for e in rows] == [
            ("relayed", None),
            ("duplicate", rows[0].id),
            ("duplicate", rows[0].id),
        ]
        assert rows[1].outcome is not None and "same event id" in rows[1].outcome
        assert rows[2].outcome is not None and "same business key" in rows[2].outcome
        assert ingested() - before == 1  # one start, however many deliveries
        assert await count_events(client, wf, "workflow_execution_started_event_attributes") == 1

        # A cancellation delivered twice is signalled once.
        cancelled = {**payload, "updated_at": "2026-11-20T11:00:00-05:00", "cancel_reason": "customer"}
        c1 = await post_shopify(http, cancelled, topic="orders/cancelled", event_id="evt-c")
        assert c1.json() == {"status": "cancel requested"}
        c2 = await post_shopify(http, cancelled, topic="orders/cancelled", event_id="evt-c")
        assert c2.json()["status"] == "duplicate"
        signalled = "workflow_execution_signaled_event_attributes"
        assert await count_events(client, wf, signalled) == 1

        # A relay retried after a lost answer sends the same request id: Temporal drops it.
        req = CancelRequest(reason="relay retry", source="channel")
        await signal_once(client, wf, "request_cancel", req, request_id="inbox-retry-test")
        await signal_once(client, wf, "request_cancel", req, request_id="inbox-retry-test")
        assert await count_events(client, wf, signalled) == 2

        await client.get_workflow_handle(wf).terminate("test cleanup: no worker runs it")


async def test_warehouse_and_carrier_redeliveries_are_duplicates_too(store: Store, database_url: str) -> None:
    from tests.test_api import carrier_payload, wms_payload

    settings = settings_for(database_url)
    async with api(settings, store, factory=down) as (_, http):
        for kind, raw, secret in (
            ("wms", wms_payload(f"shopify-{new_order_id()}"), settings.wms_webhook_secret),
            ("carrier", carrier_payload(f"shopify-{new_order_id()}"), settings.carrier_webhook_secret),
        ):
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: retail_sign(raw, secret.get_secret_value()),
            }
            first = await http.post(f"/webhooks/{kind}/builtin", content=raw, headers=headers)
            assert first.json()["status"] == "queued", first.text
            again = await http.post(f"/webhooks/{kind}/builtin", content=raw, headers=headers)
            assert again.json()["status"] == "duplicate"
            assert again.json()["duplicate_of"] == str(inbox_id(first))
            assert entry(store, inbox_id(first)).source == f"{kind}:builtin"


async def test_warehouse_and_carrier_mapping_errors_name_the_field(store: Store, database_url: str) -> None:
    from tests.test_api import carrier_payload, wms_payload

    settings = settings_for(database_url)
    async with api(settings, store, factory=down) as (_, http):
        shipment = json.loads(wms_payload(f"shopify-{new_order_id()}"))
        del shipment["order_key"]
        tracking = json.loads(carrier_payload(f"shopify-{new_order_id()}"))
        tracking["status"] = "teleported"
        for kind, body, path in (("wms", shipment, "order_key"), ("carrier", tracking, "status")):
            raw = json.dumps(body).encode()
            secret = getattr(settings, f"{kind}_webhook_secret").get_secret_value()
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: retail_sign(raw, secret)}
            r = await http.post(f"/webhooks/{kind}/builtin", content=raw, headers=headers)
            assert r.status_code == 422, r.text
            assert r.json()["detail"]["path"] == path, r.json()
        assert [r.path for r in inbox.list_rejections(store)] == ["status", "order_key"]


# -- secret rotation ----------------------------------------------------------------------------


def test_old_secrets_are_valid_until_the_rotation_window_closes(database_url: str) -> None:
    closes = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    s = settings_for(
        database_url,
        shopify_webhook_secret="new-secret",
        shopify_webhook_secrets_old=["old-1", "old-2"],
        shopify_webhook_old_secrets_until=closes,
        wms_webhook_secret="wms-new",
        wms_webhook_secrets_old="wms-old",
    )
    raw = b'{"foo": "bar"}'
    before, at, after = closes - timedelta(seconds=1), closes, closes + timedelta(seconds=1)
    for old in ("old-1", "old-2"):
        assert signatures.verify("shopify", s, raw, shopify_sign(raw, old), before)
        assert not signatures.verify("shopify", s, raw, shopify_sign(raw, old), at)
        assert not signatures.verify("shopify", s, raw, shopify_sign(raw, old), after)
    for now in (before, after):
        assert signatures.verify("shopify", s, raw, shopify_sign(raw, "new-secret"), now)
        assert not signatures.verify("shopify", s, raw, shopify_sign(raw, "never-a-secret"), now)
    # Without an end time the old secret stays valid until it is removed from the settings.
    assert signatures.verify("wms", s, raw, retail_sign(raw, "wms-old"), after + timedelta(days=365))
    assert signatures.verify("wms", s, raw, retail_sign(raw, "wms-new"), after)
    assert not signatures.verify("carrier", s, raw, retail_sign(raw, "wms-old"), after)


def test_old_secrets_come_from_the_environment_as_a_list_or_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RETAIL_SHOPIFY_WEBHOOK_SECRETS_OLD", "old-a, old-b")
    monkeypatch.setenv("RETAIL_CARRIER_WEBHOOK_SECRETS_OLD", '["with,comma"]')
    monkeypatch.setenv("RETAIL_SHOPIFY_WEBHOOK_OLD_SECRETS_UNTIL", "2026-12-01T12:00:00Z")
    s = Settings()
    assert [x.get_secret_value() for x in s.shopify_webhook_secrets_old] == ["old-a", "old-b"]
    assert [x.get_secret_value() for x in s.carrier_webhook_secrets_old] == ["with,comma"]
    assert s.shopify_webhook_old_secrets_until == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert "old-a" not in repr(s)


async def test_rotation_over_http_old_secret_accepted_in_the_window_refused_after(
    store: Store, database_url: str
) -> None:
    payload = shopify_order(new_order_id(), [("MUG-01", 1, "12.50")])
    now = datetime.now(UTC)
    rotation = {"shopify_webhook_secret": "new-secret", "shopify_webhook_secrets_old": ["old-secret"]}
    open_window = settings_for(
        database_url, **rotation, shopify_webhook_old_secrets_until=now + timedelta(hours=1)
    )
    async with api(open_window, store, factory=down) as (_, http):
        r = await post_shopify(http, payload, secret="old-secret", webhook_id="w-old-1")
        assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    closed = settings_for(
        database_url, **rotation, shopify_webhook_old_secrets_until=now - timedelta(seconds=1)
    )
    async with api(closed, store, factory=down) as (_, http):
        r = await post_shopify(http, payload, secret="old-secret", webhook_id="w-old-2")
        assert r.status_code == 401 and r.json()["detail"]["reason"] == "invalid_signature"
        assert "old-secret" not in r.text and "new-secret" not in r.text
        r = await post_shopify(http, payload, secret="new-secret", webhook_id="w-new")
        assert r.status_code == 200 and r.json()["status"] == "duplicate"  # the same order as above


# -- refused deliveries -----------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(
    store: Store, database_url: str
) -> None:
    limit = 8192
    async with api(settings_for(database_url, webhook_max_bytes=limit), store, factory=down) as (_, http):
        payload = shopify_order(new_order_id(), [("MUG-01", 1, "12.50")])
        payload["note"] = ""
        payload["note"] = "x" * (limit - len(json.dumps(payload).encode()))
        exact = json.dumps(payload).encode()
        assert len(exact) == limit
        assert (await post_shopify(http, exact)).status_code == 200  # at the limit: fine

        over = exact[:-1] + b" }"
        assert len(over) == limit + 1
        r = await post_shopify(http, over)
        assert r.status_code == 413 and r.json()["detail"]["reason"] == "payload_too_large"

        # No Content-Length (chunked): the bytes read are counted.
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(limit // 1000 + 1):
                yield b" " * 1000

        streamed = await http.post(
            "/webhooks/shopify",
            content=chunks(),
            headers={"Content-Type": "application/json", "X-Shopify-Topic": "orders/create"},
        )
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413

        big = inbox.list_rejections(store)
        assert [r.reason for r in big] == ["payload_too_large", "payload_too_large"]
        assert all(r.body is None and r.status_code == 413 for r in big)
        assert big[1].body_size == limit + 1  # declared
        assert big[0].body_size is not None and big[0].body_size > limit  # counted


async def test_rejected_deliveries_are_recorded_without_secrets_and_listed_by_the_cli(
    store: Store, database_url: str, cli_env: None
) -> None:
    settings = settings_for(database_url, webhook_max_bytes=100_000)
    good = shopify_order(new_order_id(), [("MUG-01", 1, "12.50")])
    raw = json.dumps(good).encode()
    forged = shopify_sign(raw, "not-the-secret")
    unmappable = json.loads(raw)
    del unmappable["line_items"][0]["price"], unmappable["line_items"][0]["price_set"]
    async with api(settings, store, factory=down) as (_, http):
        sent = [
            await post_shopify(http, raw, signature=forged, extra={"Authorization": "Bearer tok-123"}),
            await post_shopify(http, b'{"id": 1, "line_items": ['),
            await post_shopify(http, raw, content_type="text/plain"),
            await post_shopify(http, unmappable),
            await post_shopify(http, raw, topic="products/create"),
            await post_shopify(http, b"x" * 100_001),
            await http.post("/webhooks/wms/builtin", content=b"{}", headers={SIGNATURE_HEADER: "sha256=00"}),
        ]
        assert [r.status_code for r in sent] == [401, 400, 415, 422, 422, 413, 401]
        queued = await post_shopify(http, raw)  # accepted, waiting for Temporal
        assert queued.json()["status"] == "queued"

    listed = await cli("webhooks", "rejected", "--json", "--body")
    assert listed.exit_code == 0, listed.output
    for secret in (SHOPIFY_SECRET, forged, "tok-123", settings.wms_webhook_secret.get_secret_value()):
        assert secret not in listed.stdout
    rows = list(reversed(json.loads(listed.stdout)))  # oldest first, like `sent`
    assert [(r["status_code"], r["reason"]) for r in rows] == [
        (401, "invalid_signature"),
        (400, "malformed_json"),
        (415, "unsupported_media_type"),
        (422, "mapping_error"),
        (422, "unsupported_topic"),
        (413, "payload_too_large"),
        (401, "invalid_signature"),
    ]
    for r in rows:
        assert not {"x-shopify-hmac-sha256", "x-retail-signature", "authorization"} & set(r["headers"])
    bad_sig, malformed, _, mapping, topic, _, wms = rows
    # Unauthenticated bodies are not kept, only their hash; authenticated ones are.
    assert bad_sig["body"] is None and bad_sig["body_sha256"] == hashlib.sha256(raw).hexdigest()
    assert bad_sig["headers"]["x-shopify-topic"] == "orders/create"
    assert malformed["body"] == '{"id": 1, "line_items": ['
    assert mapping["path"] == "line_items[0].price" and mapping["body"] is not None
    assert topic["topic"] == "products/create"
    assert wms["source"] == "wms:builtin"

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert json.loads((await cli("webhooks", "rejected", "--json", "--since", future)).stdout) == []
    assert len(json.loads((await cli("webhooks", "rejected", "--json", "--since", "1h")).stdout)) == 7
    table = await cli("webhooks", "rejected")
    assert (
        table.exit_code == 0 and "invalid_signature" in table.stdout and "line_items[0].price" in table.stdout
    )
    assert (await cli("webhooks", "rejected", "--since", "yesterday-ish")).exit_code != 0

    pending = await cli("webhooks", "inbox", "--pending", "--json")
    (waiting,) = json.loads(pending.stdout)
    assert waiting["id"] == inbox_id(queued) and waiting["status"] == "pending"
    assert waiting["attempts"] == 1 and "Temporal is down (test)" in waiting["last_error"]
    everything = await cli("webhooks", "inbox")
    assert everything.exit_code == 0 and f"order-shopify-{good['id']}" in everything.stdout


# -- the relay --------------------------------------------------------------------------------


async def test_the_relay_retries_a_failed_relay_later(
    client: Client, store: Store, database_url: str
) -> None:
    calls = 0

    async def flaky() -> Client:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("connection refused (test)")
        return client

    async with api(settings_for(database_url), store, factory=flaky) as (relay, http):
        oid = new_order_id()
        r = await post_shopify(http, shopify_order(oid, [("MUG-01", 1, "12.50")]))
        assert r.json() == {
            "status": "queued",
            "detail": r.json()["detail"],
            "order_key": f"shopify-{oid}",
            "workflow_id": f"order-shopify-{oid}",
        }
        e = entry(store, inbox_id(r))
        assert e.status == "pending" and e.attempts == 1
        assert e.last_error is not None and "connection refused (test)" in e.last_error
        assert e.next_attempt_at > e.received_at
        assert not relay.temporal_ok
        assert inbox.pending_stats(store) == (1, e.received_at)

        # Not due yet: the backoff is respected.
        assert (await relay.run_once()).claimed == 0
        await asyncio.sleep(max(0.0, (e.next_attempt_at - datetime.now(UTC)).total_seconds()) + 0.05)
        report = await relay.run_once()
        assert report.claimed == 1 and report.outcomes["relayed"] == 1
        e = entry(store, e.id)
        assert e.status == "relayed" and e.attempts == 2 and relay.temporal_ok
        assert inbox.pending_stats(store) == (0, None)
        handle = client.get_workflow_handle(f"order-shopify-{oid}")
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await handle.terminate("test cleanup: no worker runs it")


async def test_events_accepted_while_temporal_is_down_are_decided_when_relayed(
    client: Client, store: Store, database_url: str
) -> None:
    up = False

    async def temporal() -> Client:
        if not up:
            raise RuntimeError("Temporal is down (test)")
        return client

    finished_id, unknown_id, late_id = new_order_id(), new_order_id(), new_order_id()
    finished = shopify_order(finished_id, [("MUG-01", 1, "12.50")])
    async with api(settings_for(database_url), store, client=client) as (_, http):
        assert (await post_shopify(http, finished)).json()["status"] == "accepted"
    await client.get_workflow_handle(f"order-shopify-{finished_id}").terminate("finished (test)")

    async with api(settings_for(database_url), store, factory=temporal) as (relay, http):
        cancel = {"cancel_reason": "customer"}
        to_finished = await post_shopify(http, {"id": finished_id, **cancel}, topic="orders/cancelled")
        to_unknown = await post_shopify(http, {"id": unknown_id, **cancel}, topic="orders/cancelled")
        # Out of order: the cancellation arrives before the order it cancels.
        early_cancel = await post_shopify(http, {"id": late_id, **cancel}, topic="orders/cancelled")
        late_order = await post_shopify(http, shopify_order(late_id, [("MUG-01", 1, "12.50")]))
        for r in (to_finished, to_unknown, early_cancel, late_order):
            assert r.json()["status"] == "queued", r.text  # no 404 while it cannot be decided

        up = True
        inbox.expedite_pending(store)  # skip the backoff of the first, which was tried inline
        report = await relay.run_once()
        assert report.claimed == 4
        assert entry(store, inbox_id(to_finished)).status == "ignored"
        unknown = entry(store, inbox_id(to_unknown))
        assert (
            unknown.status == "rejected"
            and unknown.outcome is not None
            and "unknown_order" in unknown.outcome
        )
        assert entry(store, inbox_id(late_order)).status == "relayed"
        early = entry(store, inbox_id(early_cancel))
        assert (
            early.status == "pending"
            and early.last_error == f"waiting for order-shopify-{late_id} to be started"
        )

        inbox.expedite_pending(store)
        assert (await relay.run_once()).outcomes["relayed"] == 1
        assert entry(store, inbox_id(early_cancel)).status == "relayed"
        wf = f"order-shopify-{late_id}"
        assert await count_events(client, wf, "workflow_execution_signaled_event_attributes") == 1

        (rejection,) = inbox.list_rejections(store)
        assert rejection.inbox_id == unknown.id and rejection.reason == "unknown_order"
        assert rejection.status_code == 404 and rejection.body is not None

        # A rejected delivery gives its keys up: the sender's retry is judged afresh (and,
        # Temporal being reachable now, answered at once).
        retry = await post_shopify(http, {"id": unknown_id, **cancel}, topic="orders/cancelled")
        assert retry.status_code == 404 and retry.json()["detail"]["reason"] == "unknown_order"
        await client.get_workflow_handle(wf).terminate("test cleanup: no worker runs it")


def test_concurrent_relays_never_claim_the_same_row(store: Store) -> None:
    ids = []
    for i in range(30):
        recorded = inbox.record_delivery(
            store,
            inbox.NewDelivery(
                source="shopify",
                topic="orders/create",
                delivery_id=f"d{i}",
                event_id=None,
                dedupe_key=f"claim-test|{i}",
                business_key=None,
                workflow_id=f"order-shopify-{i}",
                action="start",
                signal=None,
                argument={},
                correlation_id=f"c{i}",
                headers={},
                body=b"{}",
            ),
        )
        ids.append(recorded.entry.id)

    def claimer(name: str) -> list[int]:
        got: list[int] = []
        for _ in range(20):
            now = datetime.now(UTC)
            claimed = inbox.claim_due(
                store, inbox.new_lease_owner(name), lease_until=now + timedelta(minutes=5), now=now, limit=4
            )
            got += [e.id for e in claimed]
        return got

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(claimer, ["a", "b", "c"]))
    claimed = [i for r in results for i in r]
    assert sorted(claimed) == sorted(ids)  # every row once, none twice
    assert inbox.claim_due(store, "late", lease_until=datetime.now(UTC) + timedelta(minutes=5)) == []


# -- CLI plumbing -----------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[None]:
    """The CLI's settings (lru_cached, from the environment) on this test's store; logs on
    stderr so `--json` output stays parseable."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    yield
    structlog.reset_defaults()
    get_settings.cache_clear()
