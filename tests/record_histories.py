"""Record the workflow histories that CI replays (tests/test_replay.py).

    .venv/bin/python -m tests.record_histories

Runs a few order scenarios on a fresh Temporal dev server and saves each workflow's history
to tests/histories/. Re-record after a deliberate, versioned (workflow.patched) change; keep
the old files too, since running workflows still have those histories.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from devserver import temporal_cli
from tests.dbutil import fresh_database_url
from tests.platform import platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from workflows import search_attributes as sa
from workflows.models import OperatorRequest
from workflows.order_to_cash import OrderToCash

OUT = Path(__file__).parent / "histories"


async def main() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=sa.ALL,
        data_converter=pydantic_data_converter,
    )
    try:
        with tempfile.TemporaryDirectory() as tmp, fresh_database_url(Path(tmp)) as url:
            async with platform(env.client, Path(tmp), url, seed=seed_catalog) as p:
                await p.send_shopify(shopify_order(3001, [("HAT-RED", 5, "18.00")]))  # split shipment
                await p.send_shopify(shopify_order(3002, [("NEW-SKU", 1, "9.00")]))  # stuck, then retried
                await p.send_shopify(shopify_order(3003, [("MUG-01", 1, "12.50")], financial_status="paid"))
                await p.wait_status("shopify-3002", "NeedsAttention")
                seed_catalog(p.store, extra=[("NEW-SKU", "9.00", "WH-EAST", 5)])
                await p.handle("shopify-3002").execute_update(
                    OrderToCash.retry, OperatorRequest(operator="recorder", reason="SKU imported")
                )
                for key in ("shopify-3001", "shopify-3002", "shopify-3003"):
                    await p.wait_status(key, "Completed", timeout=60)
            async with platform(env.client, Path(tmp), url, seed=seed_catalog, wms_pick_delay_s=60.0) as p:
                await p.send_shopify(shopify_order(3004, [("TEE-BLK-M", 1, "25.00")]))
                await p.wait_status("shopify-3004", "AwaitingShipment")
                await p.handle("shopify-3004").execute_update(
                    OrderToCash.cancel, OperatorRequest(operator="recorder", reason="customer asked")
                )
                await p.wait_status("shopify-3004", "Cancelled")
            OUT.mkdir(exist_ok=True)
            for n in (3001, 3002, 3003, 3004):
                history = await env.client.get_workflow_handle(f"order-shopify-{n}").fetch_history()
                (OUT / f"order-shopify-{n}.json").write_text(history.to_json())
                print(f"saved {OUT / f'order-shopify-{n}.json'}")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
