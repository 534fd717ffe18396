"""Idempotency-Key on POST /v1/orders: a replay gets the same answer, another body with the
same key a 409 naming the stored order; keys are per API key; refused requests free the key;
and while Temporal is unavailable the order is kept in the inbox (202 queued) and started by
the relay once Temporal answers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from api.app import create_app
from backoffice.bootstrap import open_store
from store import apikeys, idempotency, inbox
from store.db import Store
from tests.factories import make_order
from tests.platform import API, platform
from tests.platform import test_settings as platform_settings

Json = dict[str, Any]


def order_json(external_id: str | None = None) -> Json:
    data: Json = make_order(external_id or str(10**9 + uuid.uuid4().int % 10**11)).model_dump(mode="json")
    return data


async def post(http: httpx.AsyncClient, body: Json | bytes, key: str, **headers: str) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http.post(
        "/v1/orders",
        content=raw,
        headers={"Content-Type": "application/json", "Idempotency-Key": key, **headers},
    )


async def test_a_replay_gets_the_same_answer_and_another_body_a_409(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        order = order_json()
        first = await post(p.http, order, "idem-1")
        assert first.status_code == 202 and first.json()["status"] == "accepted", first.text
        # The same JSON, keys in another order and other whitespace: the same request.
        reordered = json.dumps(dict(reversed(list(order.items()))), indent=2).encode()
        again = await post(p.http, reordered, "idem-1")
        assert again.status_code == 202 and again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"

        other = order_json()
        reused = await post(p.http, other, "idem-1")
        assert reused.status_code == 409, reused.text
        problem = reused.json()["detail"]
        assert problem["reason"] == "idempotency_key_reused"
        assert (
            problem["order_key"] == first.json()["order_key"]
            and first.json()["order_key"] in problem["detail"]
        )

        # Keys belong to their API key: another caller's "idem-1" is its own.
        mine = p.new_key("orders:write")
        separate = await post(p.http, other, "idem-1", Authorization=f"Bearer {mine}")
        assert (
            separate.status_code == 202 and separate.json()["order_key"] == f"shopify-{other['external_id']}"
        )

        # A refused request keeps nothing: the key is free for the corrected one.
        broken = {**order_json(), "lines": []}
        assert (await post(p.http, broken, "idem-2")).status_code == 422
        fixed = await post(p.http, order_json(), "idem-2")
        assert fixed.status_code == 202, fixed.text
        assert (await post(p.http, order, "x" * 256)).json()["detail"]["reason"] == "invalid_idempotency_key"

        for r in (first, separate, fixed):
            await p.handle(r.json()["order_key"]).terminate("test cleanup: no worker runs it")


async def test_orders_are_queued_in_the_inbox_while_temporal_is_down(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    store = open_store(database_url)
    temporal = {"up": False}

    async def factory() -> Client:
        if not temporal["up"]:
            raise RuntimeError("Temporal is down (test)")
        return client

    settings = platform_settings(database_url, "127.0.0.1:1")
    _, key = apikeys.create_key(store, "erp", ["orders:write"])
    app = create_app(settings, None, store=store, client_factory=factory, relay_loop=False)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=API, headers={"X-API-Key": key}
        ) as http:
            order = order_json()
            r = await post(http, order, "down-1")
            assert r.status_code == 202, r.text
            body = r.json()
            assert body["status"] == "queued" and body["order_key"] == f"shopify-{order['external_id']}"
            entry = inbox.get_entry(store, int(r.headers["X-Retail-Inbox-Id"]))
            assert entry is not None and entry.status == "pending" and entry.source == "api"
            assert entry.workflow_id == body["workflow_id"] and entry.action == "start"
            assert (await post(http, order, "down-1")).json() == body  # a replay: the same answer

            temporal["up"] = True
            report = await app.state.relay.run_once()
            assert report.outcomes["relayed"] == 1, report
            assert inbox.get_entry(store, entry.id).status == "relayed"  # type: ignore[union-attr]
            handle = client.get_workflow_handle(body["workflow_id"])
            assert (await handle.describe()).id == body["workflow_id"]
            await handle.terminate("test cleanup: no worker runs it")
    finally:
        store.dispose()


def test_records_expire_and_a_dead_claim_is_taken_over(store: Store) -> None:
    now = datetime.now(UTC)
    args: dict[str, Any] = {
        "principal": "k1",
        "endpoint": "orders",
        "key": "a",
        "request_sha256": "h1",
        "resource_key": "shopify-1",
        "retention": timedelta(hours=1),
        "lock": timedelta(seconds=30),
    }
    claimed = idempotency.begin(store, **args, now=now)
    assert isinstance(claimed, idempotency.Claimed)
    assert isinstance(idempotency.begin(store, **args, now=now), idempotency.InProgress)
    assert isinstance(
        idempotency.begin(store, **{**args, "request_sha256": "h2"}, now=now), idempotency.Reused
    )
    taken = idempotency.begin(store, **args, now=now + timedelta(seconds=31))  # the first one died
    assert taken == claimed
    idempotency.complete(store, claimed.record_id, 202, {"status": "accepted"})
    assert idempotency.begin(store, **args, now=now) == idempotency.Replay(202, {"status": "accepted"})
    later = now + timedelta(hours=2)
    assert isinstance(
        idempotency.begin(store, **{**args, "request_sha256": "h2"}, now=later), idempotency.Claimed
    )
    assert idempotency.purge_expired(store, now=later + timedelta(hours=2)) == 1
