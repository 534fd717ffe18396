"""ReturnToRefund end to end on a real Temporal server: the order ships through the platform, the
return comes back through the API, the warehouse simulator's receipt webhook and Shopify refunds,
and money and stock agree in the ERP, tax, payment, ledger and channel afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from adapters.channels.shopify.signature import sign as shopify_sign
from adapters.erp.builtin import stock_levels
from adapters.payment.builtin import list_captures, list_refunds
from backoffice.channel import list_return_notices
from backoffice.erp import get_rma, list_rmas
from backoffice.tax import reversed_tax
from canonical import Money, OrderState
from canonical.returns import ReturnState
from orchestration.client import ensure_inventory_syncs
from orchestration.metrics import visibility_gauges
from orchestration.models import OperatorRequest
from settings import Faults, FaultSettings
from store.channel_stock import told
from tests.platform import SHOPIFY_SECRET, Platform, platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from workflows.return_to_refund import ReturnToRefund

OPS = OperatorRequest(operator="ops", reason="fixed at the provider")


def _handle(p: Platform, key: str) -> WorkflowHandle[ReturnToRefund, ReturnState]:
    return p.client.get_workflow_handle_for(ReturnToRefund.run, f"return-{key}")


async def wait_return(
    p: Platform, key: str, pred: Callable[[ReturnState], bool], timeout: float = 30
) -> ReturnState:
    deadline = time.monotonic() + timeout
    last: ReturnState | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = await _handle(p, key).query(ReturnToRefund.state)
            if pred(last):
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"return {key} did not reach the expected state; last: {last!r}")


async def wait_status(p: Platform, key: str, *statuses: str, timeout: float = 30) -> ReturnState:
    return await wait_return(p, key, lambda s: s.status in statuses, timeout)


async def shipped_order(p: Platform, n: int, lines: list[tuple[str, int, str]], **kw: Any) -> OrderState:
    r = await p.send_shopify(shopify_order(n, lines, **kw))
    assert r.status_code == 200, r.text
    return await p.wait_status(f"shopify-{n}", "Completed")


async def request_return(
    p: Platform, n: int, lines: dict[str, int], return_id: str, reason: str = "too small"
) -> httpx.Response:
    return await p.http.post(
        "/v1/returns",
        json={
            "channel": "shopify",
            "order_external_id": str(n),
            "return_id": return_id,
            "lines": [{"sku": sku, "quantity": q} for sku, q in lines.items()],
            "reason": reason,
        },
    )


async def _notices(p: Platform, order_id: str, timeout: float = 15) -> list[Any]:
    """What the channel was told about the order's returns, once it was told something: the
    workflow's status can read final a moment before its last step (telling the channel) ends."""
    deadline = time.monotonic() + timeout
    while not (notices := list_return_notices(p.store, order_id)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return notices


def _available(p: Platform, sku: str, location: str = "WH-EAST") -> tuple[int, int]:
    for lvl in stock_levels(p.store, sku):
        if lvl.location == location:
            return lvl.on_hand, lvl.reserved
    raise AssertionError(f"no stock row for {sku} at {location}")


def _books_agree(p: Platform, st: ReturnState) -> None:
    """Credit memo = refund = what the state says; tax reversed = the credit's tax."""
    assert st.rma_id is not None and st.credited is not None
    rma = get_rma(p.store, st.rma_id)
    assert rma is not None and rma.credit_total == st.credited
    assert st.refunded == st.credited
    assert Money.sum((r.amount for r in st.refunds), st.credited.currency) == st.credited


async def test_full_return_restocks_credits_refunds_and_every_channel_hears(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    channel = f"mirror-{uuid.uuid4().hex[:6]}"
    async with platform(
        client,
        tmp_path,
        database_url,
        seed=seed_catalog,
        inventory_channels=[channel],
        inventory_debounce_s=0.1,
    ) as p:
        await ensure_inventory_syncs(client, p.settings)
        order = await shipped_order(p, 3001, [("TEE-BLK-M", 2, "25.00"), ("MUG-01", 1, "12.50")])
        assert _available(p, "TEE-BLK-M") == (8, 0)

        r = await request_return(p, 3001, {"TEE-BLK-M": 2}, "rma-3001")
        assert r.status_code == 202, r.text
        assert r.json()["workflow_id"] == "return-shopify-rma-3001"
        st = await wait_status(p, "shopify-rma-3001", "Refunded")

        # 2 x 25.00 + 3.62 tax (3.625 rounded half even: the line's whole tax), no shipping.
        assert st.credited == Money.of("53.62", "USD")
        _books_agree(p, st)
        assert st.tax_reversed == Money.of("3.62", "USD")
        assert st.return_tracking and st.receipt_id and st.credit_memo_id
        assert [d.disposition for d in st.dispositions] == ["restock"]
        assert order.authorization_id is not None
        captured = list_captures(p.store, order.authorization_id)
        refunds = [x for c in captured for x in list_refunds(p.store, c.capture_id)]
        assert Money.sum((x.amount for x in refunds), "USD") == st.credited
        tax = reversed_tax(p.store, order.tax_document or "")
        assert tax == st.tax_reversed
        # Back on the shelf, and the channel is told the new absolute number.
        assert _available(p, "TEE-BLK-M") == (10, 0)
        deadline = time.monotonic() + 20
        pushed: list[int] = []
        while time.monotonic() < deadline:
            pushed = [t.quantity for t in told(p.store, channel, ["TEE-BLK-M"])]
            if pushed == [10]:
                break
            await asyncio.sleep(0.2)
        assert pushed == [10], f"{channel} was not told TEE-BLK-M=10: {pushed}"
        notices = await _notices(p, "3001")
        assert [(n.status, n.amount) for n in notices] == [("refunded", st.credited)]
        assert st.cycle_time_s is not None and st.cycle_time_s >= 0


async def test_partial_returns_add_up_and_nothing_more_can_be_returned(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, seed=seed_catalog, returns_refund_shipping="when_fully_returned"
    ) as p:
        await shipped_order(p, 3002, [("TEE-BLK-M", 2, "9.99")])
        first = await request_return(p, 3002, {"TEE-BLK-M": 1}, "rma-3002-a")
        assert first.status_code == 202, first.text
        a = await wait_status(p, "shopify-rma-3002-a", "Refunded")
        second = await request_return(p, 3002, {"TEE-BLK-M": 1}, "rma-3002-b")
        assert second.status_code == 202, second.text
        b = await wait_status(p, "shopify-rma-3002-b", "Refunded")
        _books_agree(p, a)
        _books_agree(p, b)
        order = await p.state("shopify-3002")
        # Everything came back: together the two returns refund exactly what was captured,
        # shipping included with the return that completed it.
        assert a.credited is not None and b.credited is not None
        assert a.credited + b.credited == order.captured
        assert _available(p, "TEE-BLK-M") == (10, 0)

        third = await request_return(p, 3002, {"TEE-BLK-M": 1}, "rma-3002-c")
        # Shipped 2, both returned: accepted at the door (it only knows what shipped), then the
        # ERP refuses the RMA and the return is rejected with its reason, nothing refunded.
        assert third.status_code == 202, third.text
        c = await wait_status(p, "shopify-rma-3002-c", "Rejected")
        assert c.rejection and c.rma_id is None
        assert c.refunded is not None and c.refunded.is_zero
        assert len(list_rmas(p.store)) == 2


async def test_a_damaged_unit_is_written_off_and_not_restocked(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, seed=seed_catalog, wms_damaged_return_skus=["MUG-01"]
    ) as p:
        await shipped_order(p, 3003, [("TEE-BLK-M", 1, "25.00"), ("MUG-01", 1, "12.50")])
        before = _available(p, "MUG-01")
        r = await request_return(p, 3003, {"TEE-BLK-M": 1, "MUG-01": 1}, "rma-3003")
        assert r.status_code == 202, r.text
        st = await wait_status(p, "shopify-rma-3003", "Refunded")
        assert {d.sku: d.disposition for d in st.dispositions} == {
            "TEE-BLK-M": "restock",
            "MUG-01": "damaged",
        }
        assert _available(p, "MUG-01") == before  # not back on the shelf
        assert st.rma_id is not None
        rma = get_rma(p.store, st.rma_id)
        assert rma is not None and rma.restocked == 1 and rma.written_off.amount > 0
        _books_agree(p, st)  # the customer is refunded for the damaged unit too


async def test_an_rma_never_received_expires_closes_and_frees_the_units(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client,
        tmp_path,
        database_url,
        seed=seed_catalog,
        returns_receipt_timeout_s=1.0,
        wms_return_receipt_delay_s=120.0,
    ) as p:
        await shipped_order(p, 3004, [("TEE-BLK-M", 1, "25.00")])
        r = await request_return(p, 3004, {"TEE-BLK-M": 1}, "rma-3004")
        assert r.status_code == 202, r.text
        st = await wait_status(p, "shopify-rma-3004", "Expired")
        assert st.rma_id is not None
        rma = get_rma(p.store, st.rma_id)
        assert rma is not None and rma.status == "closed"
        assert st.refunded is not None and st.refunded.is_zero and st.credit_memo_id is None
        assert [n.status for n in await _notices(p, "3004")] == ["expired"]
        # The unit is returnable again.
        again = await request_return(p, 3004, {"TEE-BLK-M": 1}, "rma-3004-b")
        assert again.status_code == 202, again.text
        await wait_status(p, "shopify-rma-3004-b", "AwaitingReceipt", "Expired")


async def test_a_refund_refused_waits_for_an_operator_and_refunds_once_after_retry(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    faults = Faults(payment=FaultSettings(reject=["operation=refund"]))
    async with platform(client, tmp_path, database_url, seed=seed_catalog, faults=faults) as p:
        order = await shipped_order(p, 3005, [("MUG-01", 2, "12.50")])
        r = await request_return(p, 3005, {"MUG-01": 2}, "rma-3005")
        assert r.status_code == 202, r.text
        st = await wait_status(p, "shopify-rma-3005", "NeedsAttention")
        assert st.attention is not None and st.attention.step.startswith("refund:")
        # Cancelling is refused once the goods are back; the refund must happen.
        try:
            await _handle(p, "shopify-rma-3005").execute_update(ReturnToRefund.cancel, OPS)
            raise AssertionError("cancel after receipt was accepted")
        except WorkflowUpdateFailedError as exc:
            assert "received" in str(exc.cause)
        p.adapters.payment.faults.heal()  # type: ignore[attr-defined]
        await _handle(p, "shopify-rma-3005").execute_update(ReturnToRefund.retry, OPS)
        st = await wait_status(p, "shopify-rma-3005", "Refunded")
        _books_agree(p, st)
        assert order.authorization_id is not None
        caps = list_captures(p.store, order.authorization_id)
        refunds = [x for c in caps for x in list_refunds(p.store, c.capture_id)]
        assert len(refunds) == 1 and refunds[0].amount == st.credited
        # The refused cancel left no trace; the retry is recorded with who and why.
        assert [(a.action, a.operator) for a in st.actions] == [("retry", "ops")]


def _refund_webhook(order_n: int, refund_id: int, line_item_id: int, amount: str) -> dict[str, Any]:
    return {
        "id": refund_id,
        "order_id": order_n,
        "created_at": "2026-11-27T10:00:00Z",
        "processed_at": "2026-11-27T10:00:00Z",
        "note": "refunded in the Shopify admin",
        "refund_line_items": [
            {"id": 1, "line_item_id": line_item_id, "quantity": 1, "restock_type": "return", "location_id": 1}
        ],
        "transactions": [
            {
                "id": refund_id * 10,
                "kind": "refund",
                "status": "success",
                "amount": amount,
                "currency": "USD",
                "gateway": "shopify_payments",
            }
        ],
    }


async def _send_refund(p: Platform, payload: dict[str, Any]) -> httpx.Response:
    raw = json.dumps(payload).encode()
    return await p.http.post(
        "/webhooks/shopify",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": shopify_sign(raw, SHOPIFY_SECRET),
            "X-Shopify-Topic": "refunds/create",
            "X-Shopify-Webhook-Id": uuid.uuid4().hex,
        },
    )


async def test_a_refund_made_at_shopify_is_booked_once_and_never_refunded_again(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        order = await shipped_order(p, 3006, [("MUG-01", 2, "12.50")])
        # One mug refunded at Shopify: 12.50 + 0.90 tax (half the line's 1.81, rounded half even).
        payload = _refund_webhook(3006, 777, 30060, "13.40")
        first, second = await asyncio.gather(_send_refund(p, payload), _send_refund(p, payload))
        assert first.status_code == 200 and second.status_code == 200, (first.text, second.text)
        st = await wait_status(p, "shopify-refund-777", "Refunded")
        assert [r.kind for r in st.refunds] == ["channel_managed"]
        assert st.credited == Money.of("13.40", "USD") == st.refunded
        assert order.authorization_id is not None
        caps = list_captures(p.store, order.authorization_id)
        assert [x for c in caps for x in list_refunds(p.store, c.capture_id)] == []  # nothing refunded twice
        assert st.rma_id is not None
        rma = get_rma(p.store, st.rma_id)
        assert rma is not None and rma.credit_total == st.credited and rma.restocked == 1
        # Shopify made the refund: it is not told about it again.
        assert list_return_notices(p.store, "3006") == []
        # Redelivered later (Shopify retries for 48 hours): still one return.
        again = await _send_refund(p, payload)
        assert again.status_code == 200
        returns = [
            wf
            async for wf in client.list_workflows(
                'WorkflowType = "ReturnToRefund" AND OrderId = "shopify-3006"'
            )
        ]
        assert len({wf.id for wf in returns}) <= 1
        assert len(list_rmas(p.store, order.erp_order_id)) == 1


async def test_returns_that_cannot_be_accepted_are_refused_with_the_reason(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        await shipped_order(p, 3007, [("MUG-01", 1, "12.50")])
        too_many = await request_return(p, 3007, {"MUG-01": 2}, "rma-3007")
        assert too_many.status_code == 422 and "2 to return, 1 shipped" in too_many.text
        unknown = await request_return(p, 9999, {"MUG-01": 1}, "rma-9999")
        assert unknown.status_code == 404
        wrong_sku = await request_return(p, 3007, {"GHOST": 1}, "rma-3007-x")
        assert wrong_sku.status_code == 422 and "GHOST" in wrong_sku.text
        bad = await p.http.post("/v1/returns", json={"channel": "shopify", "lines": []})
        assert bad.status_code == 422

        # With an Idempotency-Key (and no return id): a replay gets the first answer, another
        # body with the same key is refused naming the return it was used for.
        body = {
            "channel": "shopify",
            "order_external_id": "3007",
            "lines": [{"sku": "MUG-01", "quantity": 1}],
            "reason": "too small",
        }
        first = await p.http.post("/v1/returns", json=body, headers={"Idempotency-Key": "ret-3007"})
        assert first.status_code == 202 and first.json()["return_key"] == "shopify-api-ret-3007", first.text
        again = await p.http.post("/v1/returns", json=body, headers={"Idempotency-Key": "ret-3007"})
        assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
        other = await p.http.post(
            "/v1/returns", json={**body, "reason": "changed my mind"}, headers={"Idempotency-Key": "ret-3007"}
        )
        assert other.status_code == 409, other.text
        assert other.json()["detail"]["reason"] == "idempotency_key_reused"
        assert other.json()["detail"]["return_key"] == "shopify-api-ret-3007"


async def test_a_return_outside_the_window_is_refused(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog, returns_window_days=0.00001) as p:
        await shipped_order(p, 3008, [("MUG-01", 1, "12.50")])
        await asyncio.sleep(1.0)
        late = await request_return(p, 3008, {"MUG-01": 1}, "rma-3008")
        assert late.status_code == 422 and "return window" in late.text


async def test_an_operator_cancels_a_return_before_receipt(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, seed=seed_catalog, wms_return_receipt_delay_s=120.0
    ) as p:
        await shipped_order(p, 3009, [("MUG-01", 1, "12.50")])
        r = await request_return(p, 3009, {"MUG-01": 1}, "rma-3009")
        assert r.status_code == 202
        await wait_status(p, "shopify-rma-3009", "AwaitingReceipt")
        # The returns backlog gauge (from visibility, which lags a moment) counts it.
        scope = f'TaskQueue = "{p.settings.task_queue}"'
        deadline = time.monotonic() + 15
        while (g := await visibility_gauges(client, scope))["returns_open_by_status"]["AwaitingReceipt"] != 1:
            assert time.monotonic() < deadline, g
            await asyncio.sleep(0.2)
        assert await _handle(p, "shopify-rma-3009").execute_update(ReturnToRefund.cancel, OPS) == "cancelling"
        st = await wait_status(p, "shopify-rma-3009", "Cancelled")
        assert st.rma_id is not None
        rma = get_rma(p.store, st.rma_id)
        assert rma is not None and rma.status == "closed"
        assert [n.status for n in await _notices(p, "3009")] == ["cancelled"]
        assert st.refunded is not None and st.refunded.is_zero


async def test_refund_on_the_carriers_first_scan_then_restock_on_receipt(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client,
        tmp_path,
        database_url,
        seed=seed_catalog,
        returns_refund_on_first_scan=True,
        wms_return_receipt_delay_s=3.0,
    ) as p:
        await shipped_order(p, 3010, [("TEE-BLK-M", 1, "25.00")])
        r = await request_return(p, 3010, {"TEE-BLK-M": 1}, "rma-3010")
        assert r.status_code == 202
        refunded_first = await wait_return(p, "shopify-rma-3010", lambda s: s.refunded_at is not None)
        assert refunded_first.receipt_id is None  # money back before the warehouse had it
        st = await wait_return(
            p, "shopify-rma-3010", lambda s: s.receipt_id is not None and s.status == "Refunded"
        )
        _books_agree(p, st)
        assert _available(p, "TEE-BLK-M") == (10, 0)


async def test_a_shopify_refund_whose_money_differs_waits_for_an_operator_and_moves_no_money(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        order = await shipped_order(p, 3011, [("MUG-01", 2, "12.50")])
        # The merchant's refund transaction is still pending at Shopify: no money has moved yet.
        payload = _refund_webhook(3011, 778, 30110, "13.40")
        payload["transactions"][0]["status"] = "pending"  # type: ignore[index]
        assert (await _send_refund(p, payload)).status_code == 200
        st = await wait_status(p, "shopify-refund-778", "NeedsAttention")
        assert st.attention is not None and st.attention.reason == "refund_mismatch"
        assert "refunded 0.00 USD" in st.attention.message and "13.40 USD" in st.attention.message
        assert st.credit_memo_id is None  # nothing booked before a person decides
        await _handle(p, "shopify-refund-778").execute_update(
            ReturnToRefund.skip,
            OperatorRequest(operator="ops", reason="refund completed", reference="SHOP-REF-9"),
        )
        st = await wait_status(p, "shopify-refund-778", "Refunded")
        assert st.credit_memo_id and st.credited == Money.of("13.40", "USD")
        assert order.authorization_id is not None
        caps = list_captures(p.store, order.authorization_id)
        assert [x for c in caps for x in list_refunds(p.store, c.capture_id)] == []  # never paid twice
        assert list_return_notices(p.store, "3011") == []
