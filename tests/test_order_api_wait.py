"""POST /v1/orders?wait=accepted for headless storefronts: the ERP order number when the ERP
accepts in time (update-with-start), else 202 with the workflow id; a real Temporal server."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from temporalio.client import Client

from settings import Faults, FaultSettings
from tests.factories import make_order
from tests.platform import Platform, platform
from tests.seed import seed_catalog


async def _post(p: Platform, external_id: str, sku: str, key: str | None = None) -> httpx.Response:
    order = make_order(external_id, channel="headless", lines=[(sku, 1, "12.50")])
    return await p.http.post(
        "/v1/orders?wait=accepted",
        content=order.model_dump_json(),
        headers={"Content-Type": "application/json", "Idempotency-Key": key or uuid.uuid4().hex},
    )


async def test_the_erp_order_number_comes_back_in_the_answer(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        ext = uuid.uuid4().hex[:10]
        key = uuid.uuid4().hex
        r = await _post(p, ext, "MUG-01", key)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "accepted_by_erp" and body["workflow_id"] == f"order-headless-{ext}"
        st = await p.wait_status(f"headless-{ext}", "Completed")
        assert body["erp_order_id"] == st.erp_order_id
        # A retry with the same key gets the same answer; a duplicate order (new key) finds the
        # finished workflow and says what the ERP did, without a second order.
        again = await _post(p, ext, "MUG-01", key)
        assert again.status_code == 200 and again.json()["erp_order_id"] == st.erp_order_id
        dup = await _post(p, ext, "MUG-01")
        assert dup.status_code == 200 and dup.json()["erp_order_id"] == st.erp_order_id

        # An order the ERP refuses waits for a person: the answer says so at once.
        stuck = await _post(p, uuid.uuid4().hex[:10], "NOPE-1")
        assert stuck.status_code == 202, stuck.text
        assert (
            stuck.json()["status"] == "needs_attention" and stuck.json()["attention_reason"] == "unknown_sku"
        )


async def test_a_slow_erp_gets_202_with_the_workflow_id_and_the_order_carries_on(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    slow = Faults(erp=FaultSettings(latency_ms=1500))
    async with platform(
        client, tmp_path, database_url, seed=seed_catalog, faults=slow, order_api_wait_s=0.3
    ) as p:
        ext = uuid.uuid4().hex[:10]
        r = await _post(p, ext, "MUG-01")
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "accepted" and r.json()["workflow_id"] == f"order-headless-{ext}"
        st = await p.wait_status(f"headless-{ext}", "Completed", timeout=60)
        assert st.erp_order_id
