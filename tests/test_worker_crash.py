"""A worker process killed in the middle of the capture step: after a restart, exactly one capture.

The payment provider records the capture, then the answer is held back (a slow response); the
worker is killed with SIGKILL while it waits. Temporal retries the step on a new worker after the
activity timeout, with the same idempotency key, and the provider returns the capture it made.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from temporalio.client import Client

from adapters.payment.builtin import list_captures, list_refunds
from store.db import Store
from tests.platform import Platform, platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from workflows.return_to_refund import ReturnToRefund


def _worker(p: Platform, database_url: str, log: Path, *, slow: str | None) -> subprocess.Popen[bytes]:
    """A `retail worker` process; ``slow`` names a payment operation whose answer it never gets."""
    env = {
        **os.environ,
        "RETAIL_TEMPORAL_ADDRESS": p.settings.temporal_address,
        "RETAIL_TASK_QUEUE": p.settings.task_queue,
        "DATABASE_URL": database_url,
    }
    if slow:
        env["RETAIL_FAULTS__PAYMENT__RESPONSE_DELAY_MS"] = "60000"
        env["RETAIL_FAULTS__PAYMENT__RESPONSE_DELAY_OPERATIONS"] = f'["{slow}"]'
    retail = Path(sys.executable).parent / "retail"
    return subprocess.Popen([str(retail), "worker"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def _until(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_worker_killed_during_capture_captures_exactly_once(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, worker=False, seed=seed_catalog, activity_timeout_s=3.0
    ) as p:
        log = tmp_path / "worker.log"
        first = _worker(p, database_url, log, slow="capture")
        second: subprocess.Popen[bytes] | None = None
        try:
            await p.send_shopify(shopify_order(2001, [("MUG-01", 2, "12.50")]))
            st = await p.wait_status("shopify-2001", "PartiallyShipped", "Shipped", timeout=60)
            auth = st.authorization_id
            assert auth is not None
            store: Store = p.store
            # The capture took effect at the provider; the worker is now waiting for the answer.
            await _until(lambda: len(list_captures(store, auth)) == 1, 30, "the capture to be recorded")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            assert first.returncode == -signal.SIGKILL

            second = _worker(p, database_url, log, slow=None)
            st = await p.wait_status("shopify-2001", "Completed", timeout=90)
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(10)

        captures = list_captures(p.store, auth)
        assert len(captures) == 1, (
            f"expected one capture, got {captures} (worker log: {log.read_text()[-2000:]})"
        )
        assert captures[0].amount == st.total == st.captured
        capture_steps = [s for s in st.steps if s.step.startswith("capture:")]
        assert [s.status for s in capture_steps] == ["done"]
        # The history shows the capture ran a second attempt (on the new worker).
        history = await p.handle("shopify-2001").fetch_history()
        scheduled = {
            e.event_id
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == "payment.capture"
        }
        attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.HasField("activity_task_started_event_attributes")
            and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
        ]
        assert attempts and max(attempts) >= 2, attempts


async def test_worker_killed_during_the_refund_of_a_return_refunds_exactly_once(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, worker=False, seed=seed_catalog, activity_timeout_s=3.0
    ) as p:
        log = tmp_path / "worker.log"
        first = _worker(p, database_url, log, slow="refund")
        second: subprocess.Popen[bytes] | None = None
        try:
            await p.send_shopify(shopify_order(2002, [("MUG-01", 2, "12.50")]))
            order = await p.wait_status("shopify-2002", "Completed", timeout=60)
            assert order.authorization_id is not None
            caps = list_captures(p.store, order.authorization_id)
            r = await p.http.post(
                "/v1/returns",
                json={
                    "channel": "shopify",
                    "order_external_id": "2002",
                    "return_id": "rma-2002",
                    "lines": [{"sku": "MUG-01", "quantity": 2}],
                    "reason": "broken handle",
                },
            )
            assert r.status_code == 202, r.text
            store: Store = p.store
            # The refund took effect at the provider; the worker is now waiting for the answer.
            await _until(
                lambda: sum(len(list_refunds(store, c.capture_id)) for c in caps) == 1, 60, "the refund"
            )
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            second = _worker(p, database_url, log, slow=None)
            handle = p.client.get_workflow_handle_for(ReturnToRefund.run, "return-shopify-rma-2002")
            deadline = time.monotonic() + 90
            while (st := await handle.query(ReturnToRefund.state)).status != "Refunded":
                assert time.monotonic() < deadline, f"not refunded: {st}"
                await asyncio.sleep(0.2)
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(10)

        refunds = [x for c in caps for x in list_refunds(p.store, c.capture_id)]
        assert len(refunds) == 1, (
            f"expected one refund, got {refunds} (worker log: {log.read_text()[-2000:]})"
        )
        # Everything came back, so shipping too (the default policy): the whole capture, once.
        assert refunds[0].amount == st.credited == st.refunded == order.captured
