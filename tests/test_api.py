"""HTTP ingress against the real app (in-process, over httpx's ASGI transport) and a real Temporal
server: signatures, content types, malformed and unmappable bodies, the order API, the warehouse
and carrier webhooks, health and metrics. Bad input is a 4xx with a reason, never a 5xx."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client, WorkflowExecutionStatus

from adapters.carrier.webhook import TrackingWebhook
from adapters.channels.shopify.signature import sign as shopify_sign
from adapters.signing import SIGNATURE_HEADER, sign
from adapters.wms.webhook import ShipmentWebhook, ShipmentWebhookLine
from tests.factories import make_order
from tests.platform import SHOPIFY_SECRET, Platform, platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order

Json = dict[str, Any]


def new_order_id() -> int:
    """A Shopify order id no other test uses: workflow ids are deterministic and the Temporal
    server is shared by the whole session."""
    return 10**9 + uuid.uuid4().int % 10**11


def shopify_headers(
    raw: bytes,
    *,
    topic: str = "orders/create",
    signature: str | None = "sign",
    content_type: str = "application/json",
) -> dict[str, str]:
    """Headers as Shopify sends them; ``signature="sign"`` signs ``raw`` with the test secret,
    None leaves the header out, anything else is sent as given."""
    headers = {
        "Content-Type": content_type,
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": uuid.uuid4().hex,
        "X-Shopify-Shop-Domain": "sandbox.myshopify.com",
    }
    if signature == "sign":
        headers["X-Shopify-Hmac-Sha256"] = shopify_sign(raw, SHOPIFY_SECRET)
    elif signature is not None:
        headers["X-Shopify-Hmac-Sha256"] = signature
    return headers


async def post_shopify(p: Platform, raw: bytes, **kw: Any) -> httpx.Response:
    return await p.http.post("/webhooks/shopify", content=raw, headers=shopify_headers(raw, **kw))


def problem(r: httpx.Response, status: int) -> Json:
    """The problem body of a rejection, after checking its status."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    detail = r.json()["detail"]
    assert isinstance(detail, dict) and detail["reason"] and detail["detail"], detail
    return detail


def order_json(external_id: str, lines: list[tuple[str, int, str]] | None = None) -> Json:
    order = make_order(external_id, lines=lines or [("MUG-01", 1, "12.50")])
    data: Json = order.model_dump(mode="json")
    return data


async def post_order(
    p: Platform, body: Json | bytes, *, key: str | None = "k1", content_type: str = "application/json"
) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Idempotency-Key"] = key
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await p.http.post("/v1/orders", content=raw, headers=headers)


def wms_payload(order_key: str) -> bytes:
    return ShipmentWebhook(
        event_id=uuid.uuid4().hex,
        type="shipment.shipped",
        fulfillment_id="FO-1",
        order_key=order_key,
        location="WH-EAST",
        lines=[ShipmentWebhookLine(line_id="L1", sku="MUG-01", quantity=1)],
        carrier="builtin",
        tracking_numbers=["1ZRC000000000001"],
        shipped_at=datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
    ).to_json()


def carrier_payload(order_key: str) -> bytes:
    return TrackingWebhook(
        event_id=uuid.uuid4().hex,
        tracking_number="1ZRC000000000001",
        order_key=order_key,
        carrier="builtin",
        status="in_transit",
        occurred_at=datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
    ).to_json()


def metric(text: str, name: str, labels: Mapping[str, str]) -> float:
    """One sample's value from a Prometheus exposition (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def poll_order(p: Platform, key: str, status: str, timeout: float = 30.0) -> Json:
    """GET /v1/orders/{key} until the order has ``status``."""
    deadline = time.monotonic() + timeout
    body: Json = {}
    while time.monotonic() < deadline:
        r = await p.http.get(f"/v1/orders/{key}")
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] == status:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{key} never reached {status}; last: {body}")


# -- Shopify webhook ---------------------------------------------------------------------------


async def test_shopify_webhook_refuses_missing_and_wrong_signatures_without_leaking_them(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        raw = json.dumps(shopify_order(new_order_id(), [("MUG-01", 1, "12.50")])).encode()
        expected = shopify_sign(raw, SHOPIFY_SECRET)
        forged = [
            None,  # no header at all
            "",
            shopify_sign(raw, "some-other-secret"),
            shopify_sign(raw + b" ", SHOPIFY_SECRET),  # a signature of other bytes
            expected[:-4],  # a truncated one
            "not base64 at all!",
        ]
        for sig in forged:
            r = await post_shopify(p, raw, signature=sig)
            assert problem(r, 401)["reason"] == "invalid_signature", sig
            assert SHOPIFY_SECRET not in r.text
            assert expected not in r.text
        # A good signature on the same bytes passes the check (here: a valid order is accepted).
        r = await post_shopify(p, raw)
        assert r.status_code == 200, r.text
        await p.handle(r.json()["order_key"]).terminate("test cleanup: no worker runs it")


async def test_shopify_webhook_rejects_bad_bodies_with_the_reason(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        # Signed, but not JSON.
        body = problem(await post_shopify(p, b'{"id": 1, "line_items": ['), 400)
        assert body["reason"] == "malformed_json"

        # Signed JSON, but sent as something else.
        good = json.dumps(shopify_order(new_order_id(), [("MUG-01", 1, "12.50")])).encode()
        body = problem(await post_shopify(p, good, content_type="text/plain"), 415)
        assert body["reason"] == "unsupported_media_type"
        body = problem(await post_shopify(p, good, content_type="application/x-www-form-urlencoded"), 415)

        # A payload that cannot be mapped: the exact Shopify field is named.
        unmappable = shopify_order(new_order_id(), [("MUG-01", 1, "12.50")])
        del unmappable["line_items"][0]["price"]
        del unmappable["line_items"][0]["price_set"]
        body = problem(await post_shopify(p, json.dumps(unmappable).encode()), 422)
        assert body["reason"] == "mapping_error"
        assert body["path"] == "line_items[0].price"
        assert "line_items[0].price" in body["detail"]

        wrong_type = shopify_order(new_order_id(), [("MUG-01", 1, "12.50")])
        wrong_type["line_items"][0]["quantity"] = "two"
        body = problem(await post_shopify(p, json.dumps(wrong_type).encode()), 422)
        assert body["path"] == "line_items[0].quantity"

        body = problem(await post_shopify(p, b"[]"), 422)
        assert body["reason"] == "mapping_error"

        # A topic the platform does not handle.
        body = problem(await post_shopify(p, good, topic="products/create"), 422)
        assert body["reason"] == "unsupported_topic" and "products/create" in body["detail"]

        # orders/cancelled without an order id.
        body = problem(await post_shopify(p, b'{"cancel_reason": "customer"}', topic="orders/cancelled"), 422)
        assert body["path"] == "id"


async def test_shopify_orders_create_starts_one_workflow_per_order(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        oid = new_order_id()
        raw = json.dumps(shopify_order(oid, [("MUG-01", 2, "12.50")])).encode()
        r = await post_shopify(p, raw)
        assert r.status_code == 200, r.text
        assert r.json()["order_key"] == f"shopify-{oid}"
        assert r.json()["workflow_id"] == f"order-shopify-{oid}"
        again = await post_shopify(p, raw)  # Shopify redelivers
        assert again.status_code == 200 and again.json()["workflow_id"] == f"order-shopify-{oid}"

        handle = p.handle(f"shopify-{oid}")
        desc = await handle.describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        assert desc.task_queue == p.settings.task_queue
        await handle.terminate("test cleanup: no worker runs it")


async def test_shopify_orders_cancelled_cancels_a_running_order(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog, wms_pick_delay_s=60.0) as p:
        oid = new_order_id()
        payload = shopify_order(oid, [("MUG-01", 1, "12.50")])
        assert (await p.send_shopify(payload)).status_code == 200
        await p.wait_status(f"shopify-{oid}", "AwaitingShipment")

        cancelled = {**payload, "cancelled_at": "2026-11-20T11:00:00-05:00", "cancel_reason": "customer"}
        r = await post_shopify(p, json.dumps(cancelled).encode(), topic="orders/cancelled")
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "cancel requested"}

        st = await p.wait_status(f"shopify-{oid}", "Cancelled")
        assert st.captured.is_zero and st.voided == st.total
        done = {s.step for s in st.steps}
        assert "cancel_sales_order" in done and "void_payment" in done
        # The channel told us: it is not told back.
        assert "notify_channel_cancelled" not in done

        # A cancellation for an order the platform never saw.
        unknown = {**cancelled, "id": new_order_id()}
        r = await post_shopify(p, json.dumps(unknown).encode(), topic="orders/cancelled")
        assert problem(r, 404)["reason"] == "unknown_order"


# -- order API ----------------------------------------------------------------------------------


async def test_order_api_refuses_missing_key_wrong_type_and_totals_that_do_not_add_up(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        good = order_json(str(new_order_id()))

        assert problem(await post_order(p, good, key=None), 400)["reason"] == "missing_idempotency_key"
        assert problem(await post_order(p, good, key=""), 400)["reason"] == "missing_idempotency_key"
        assert problem(await post_order(p, good, content_type="text/plain"), 415)["reason"] == (
            "unsupported_media_type"
        )
        assert problem(await post_order(p, b"{not json"), 400)["reason"] == "malformed_json"

        # Totals that do not add up: refused with the figures that disagree.
        bad = order_json(str(new_order_id()))
        bad["totals"]["total"]["amount"] = "99.99"
        body = problem(await post_order(p, bad), 422)
        assert body["reason"] == "invalid_order"
        messages = " | ".join(e["message"] for e in body["errors"])
        assert "totals.total is 99.99 USD but the lines add up to 18.41 USD" in messages
        assert "payments add up to 18.41 USD but the order total is 99.99 USD" in messages

        # Field errors carry the field's path.
        bad = order_json(str(new_order_id()))
        bad["lines"][0]["quantity"] = 0
        bad["channel"] = "Not A Channel!"
        body = problem(await post_order(p, bad), 422)
        paths = {e["path"] for e in body["errors"]}
        assert {"lines.0.quantity", "channel"} <= paths, body["errors"]

        # Money as a JSON float is refused, not rounded.
        bad = order_json(str(new_order_id()))
        bad["lines"][0]["unit_price"]["amount"] = 12.5
        body = problem(await post_order(p, bad), 422)
        assert "lines.0.unit_price.amount" in {e["path"] for e in body["errors"]}


async def test_order_api_accepts_an_order_that_then_completes(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        external_id = str(new_order_id())
        order = order_json(external_id)
        r = await post_order(p, order, key=f"idem-{external_id}")
        assert r.status_code == 202, r.text
        accepted = r.json()
        assert accepted["order_key"] == f"shopify-{external_id}"
        assert accepted["workflow_id"] == f"order-shopify-{external_id}"
        assert accepted["correlation_id"] == f"idem-{external_id}"

        state = await poll_order(p, f"shopify-{external_id}", "Completed")
        total = {"amount": "18.41", "currency": "USD"}  # 12.50 + 0.91 tax + 5.00 shipping
        assert state["total"] == total and state["captured"] == total and state["invoiced"] == total
        assert state["erp_order_id"] and state["attention"] is None
        assert len(state["shipments"]) == 1

        # The workflow id works as well as the order key; a repeat finds the same order.
        assert (await p.http.get(f"/v1/orders/order-shopify-{external_id}")).json()["status"] == "Completed"
        again = await post_order(p, order, key=f"idem-{external_id}")
        assert again.status_code == 202 and again.json()["workflow_id"] == accepted["workflow_id"]


async def test_order_api_unknown_order_is_404(client: Client, tmp_path: Path, database_url: str) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        for path in (f"/v1/orders/shopify-{new_order_id()}", f"/v1/orders/order-shopify-{new_order_id()}"):
            assert problem(await p.http.get(path), 404)["reason"] == "unknown_order"
        r = await p.http.post(
            f"/v1/orders/shopify-{new_order_id()}/cancel",
            json={"reason": "customer asked"},
        )
        assert problem(r, 404)["reason"] == "unknown_order"


# -- warehouse and carrier webhooks ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["wms", "carrier"])
async def test_wms_and_carrier_webhooks_check_signature_payload_and_order(
    kind: str, client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        secret = (
            p.settings.wms_webhook_secret if kind == "wms" else p.settings.carrier_webhook_secret
        ).get_secret_value()
        url = f"/webhooks/{kind}/builtin"
        unknown_key = f"shopify-{new_order_id()}"
        raw = wms_payload(unknown_key) if kind == "wms" else carrier_payload(unknown_key)

        async def post(body: bytes, signature: str | None) -> httpx.Response:
            headers = {"Content-Type": "application/json"}
            if signature is not None:
                headers[SIGNATURE_HEADER] = signature
            return await p.http.post(url, content=body, headers=headers)

        other = "carrier" if kind == "wms" else "wms"
        other_secret = getattr(p.settings, f"{other}_webhook_secret").get_secret_value()
        for sig in (
            None,
            "",
            "sha256=00",
            sign(raw, "wrong-secret"),
            sign(raw, other_secret),
            sign(raw, secret)[7:],
        ):
            r = await post(raw, sig)
            assert problem(r, 401)["reason"] == "invalid_signature", sig
            assert secret not in r.text and sign(raw, secret) not in r.text

        for bad in (b'{"event_id": "e1"}', b"[]", b"{}"):
            body = problem(await post(bad, sign(bad, secret)), 422)
            assert body["reason"] == "mapping_error"
        # Not JSON at all: 400, as on every route (it was a 422 before the webhook inbox).
        assert problem(await post(b"not json", sign(b"not json", secret)), 400)["reason"] == "malformed_json"
        body = problem(await post(b'{"event_id": "e1"}', sign(b'{"event_id": "e1"}', secret)), 422)
        assert "order_key" in body["detail"]  # names what is missing

        body = problem(await post(raw, sign(raw, secret)), 404)
        assert body["reason"] == "unknown_order" and unknown_key in body["detail"]


# -- never a 5xx ------------------------------------------------------------------------------

HOSTILE_BODIES: list[bytes] = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'"text"',
    b"123",
    b"\xff\xfe\x00garbage",
    b"[" * 100_000 + b"]" * 100_000,  # deeper than any parser should recurse
    b'{"id": 1e999, "currency": "USD"}',
    b'{"id": {"nested": true}}',
]


def _huge_amount_shopify() -> bytes:
    payload = shopify_order(new_order_id(), [("MUG-01", 1, "12.50")])
    payload["line_items"][0]["price"] = "1e30"
    payload["line_items"][0]["price_set"]["shop_money"]["amount"] = "1e30"
    return json.dumps(payload).encode()


def _huge_amount_order() -> bytes:
    order = order_json(str(new_order_id()))
    order["lines"][0]["unit_price"]["amount"] = "1e30"
    return json.dumps(order).encode()


async def test_no_endpoint_answers_5xx_to_bad_input(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        wms_secret = p.settings.wms_webhook_secret.get_secret_value()
        carrier_secret = p.settings.carrier_webhook_secret.get_secret_value()
        seen: list[tuple[str, int]] = []

        async def check(what: str, r: httpx.Response) -> None:
            seen.append((what, r.status_code))
            assert 400 <= r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
            assert r.json()["detail"]["reason"], what

        for i, raw in enumerate([*HOSTILE_BODIES, _huge_amount_shopify()]):
            for topic in ("orders/create", "orders/cancelled", ""):
                await check(f"shopify {topic} body {i}", await post_shopify(p, raw, topic=topic))
        for i, raw in enumerate([*HOSTILE_BODIES, _huge_amount_order()]):
            await check(f"POST /v1/orders body {i}", await post_order(p, raw))
            await check(
                f"cancel body {i}",
                await p.http.post(
                    f"/v1/orders/shopify-{new_order_id()}/cancel",
                    content=raw,
                    headers={"Content-Type": "application/json"},
                ),
            )
        for i, raw in enumerate(HOSTILE_BODIES):
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(raw, wms_secret)}
            await check(
                f"wms body {i}", await p.http.post("/webhooks/wms/builtin", content=raw, headers=headers)
            )
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(raw, carrier_secret)}
            await check(
                f"carrier body {i}",
                await p.http.post("/webhooks/carrier/builtin", content=raw, headers=headers),
            )
        assert len(seen) == (len(HOSTILE_BODIES) + 1) * 5 + len(HOSTILE_BODIES) * 2


# -- health and metrics ---------------------------------------------------------------------


async def test_healthz_and_metrics_count_ingested_and_rejected(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        health = await p.http.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}

        before = (await p.http.get("/metrics")).text
        raw = json.dumps(shopify_order(new_order_id(), [("MUG-01", 1, "12.50")])).encode()
        assert (await post_shopify(p, raw, signature="forged")).status_code == 401
        assert (await post_shopify(p, raw, topic="products/create")).status_code == 422
        accepted = await post_shopify(p, raw)
        assert accepted.status_code == 200
        via_api = await post_order(p, order_json(str(new_order_id())))
        assert via_api.status_code == 202
        # Unsigned junk at made-up webhook paths: counted, but the path does not become a label.
        made_up = f"made-up-{uuid.uuid4().hex[:8]}"
        for kind in ("wms", "carrier"):
            assert (await p.http.post(f"/webhooks/{kind}/{made_up}", content=b"{}")).status_code == 401

        r = await p.http.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        after = r.text
        assert "retail_orders_ingested_total" in after and "retail_webhooks_rejected_total" in after

        def delta(name: str, **labels: str) -> float:
            return metric(after, name, labels) - metric(before, name, labels)

        rejected = "retail_webhooks_rejected_total"
        assert delta(rejected, source="shopify", reason="invalid_signature") == 1
        assert delta(rejected, source="shopify", reason="unsupported_topic") == 1
        ingested = "retail_orders_ingested_total"
        assert delta(ingested, channel="shopify", source="shopify_webhook") == 1
        assert delta(ingested, channel="shopify", source="api") == 1
        assert made_up not in after
        assert delta(rejected, source="wms:other", reason="invalid_signature") == 1
        assert delta(rejected, source="carrier:other", reason="invalid_signature") == 1

        for key in (accepted.json()["order_key"], via_api.json()["order_key"]):
            await p.handle(key).terminate("test cleanup: no worker runs it")


async def test_late_events_for_a_finished_order_are_acknowledged_not_retried_forever(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    """A vendor retries any non-2xx: an event for an order that already finished gets a 200
    saying it was ignored, while an order the platform never had is still a 404."""
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        await p.send_shopify(shopify_order(7101, [("MUG-01", 1, "12.50")]))
        await p.wait_status("shopify-7101", "Completed")
        cancel = await p.send_shopify({"id": 7101, "cancel_reason": "customer"}, topic="orders/cancelled")
        assert cancel.status_code == 200 and "ignored" in cancel.json()["status"]
        api_cancel = await p.http.post("/v1/orders/shopify-7101/cancel", json={"reason": "too late"})
        assert api_cancel.status_code == 409 and api_cancel.json()["detail"]["reason"] == "order_closed"
        unknown = await p.send_shopify({"id": 7199, "cancel_reason": "customer"}, topic="orders/cancelled")
        assert unknown.status_code == 404
