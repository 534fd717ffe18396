"""The demo's returns: a few customers send goods back once their orders completed.

Through the returns API (the warehouse receives them; one SKU comes back damaged) and as a
refund made in Shopify's admin (``refunds/create`` with the money already refunded there). Each
ends Refunded with credit memo = refund, and restocked units reach the channels.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import typer
from temporalio.client import Client

from adapters.channels.shopify.signature import sign
from canonical import OrderState
from canonical.returns import ReturnState, credit_for_return
from cli.output import print_table
from orchestration.client import order_return_context
from workflows.return_to_refund import ReturnToRefund

CLOSED = {"Refunded", "Rejected", "Expired", "Cancelled"}


async def _api_return(http: httpx.AsyncClient, st: OrderState, n: int, sku: str) -> str | None:
    r = await http.post(
        "/v1/returns",
        json={
            "channel": st.channel,
            "order_external_id": st.external_id,
            "return_id": f"rma-demo-{n}",
            "lines": [{"sku": sku, "quantity": 1}],
            "reason": "does not fit",
        },
    )
    if r.status_code != 202:
        typer.echo(f"  return for {st.order_key} refused: {r.status_code} {r.text}")
        return None
    return str(r.json()["return_key"])


async def _shopify_refund(http: httpx.AsyncClient, client: Client, st: OrderState, secret: str) -> str | None:
    """A refund the merchant made in Shopify's admin for one unit, money included."""
    ctx = await order_return_context(client, st.order_key)
    if ctx is None:
        return None
    line = ctx.order.lines[0]
    credit = credit_for_return(ctx.order, {}, {line.line_id: 1}, "never")
    refund_id = int(st.external_id) * 10 + 7
    payload: dict[str, Any] = {
        "id": refund_id,
        "order_id": int(st.external_id),
        "created_at": datetime.now(UTC).isoformat(),
        "note": "damaged in transit, refunded by the store",
        "refund_line_items": [
            {
                "id": 1,
                "line_item_id": int(line.line_id),
                "quantity": 1,
                "restock_type": "return",
                "location_id": 1,
            }
        ],
        "transactions": [
            {
                "id": refund_id,
                "kind": "refund",
                "status": "success",
                "amount": str(credit.total.amount),
                "currency": credit.total.currency,
                "gateway": "shopify_payments",
            }
        ],
    }
    raw = json.dumps(payload).encode()
    r = await http.post(
        "/webhooks/shopify",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": "refunds/create",
            "X-Shopify-Hmac-Sha256": sign(raw, secret),
            "X-Shopify-Webhook-Id": uuid.uuid4().hex,
        },
    )
    return f"{st.channel}-refund-{refund_id}" if r.status_code == 200 else None


def _shipped_skus(st: OrderState) -> list[str]:
    return [ln.sku for sh in st.shipments for ln in sh.lines]


async def run_returns(
    client: Client,
    api_url: str,
    secret: str,
    states: dict[str, OrderState],
    damaged_sku: str,
    timeout: float = 90.0,
    api_key: str | None = None,
) -> list[ReturnState]:
    """Return goods from a few completed orders (one unit of ``damaged_sku`` comes back broken);
    wait for the returns to close."""
    done = [st for st in states.values() if st.status == "Completed" and st.shipments]
    fragile = next((st for st in done if damaged_sku in _shipped_skus(st)), None)
    picks: list[tuple[OrderState, str]] = [(fragile, damaged_sku)] if fragile else []
    others = [st for st in done if st is not fragile]
    picks += [(st, _shipped_skus(st)[0]) for st in others[:2]]
    keys: list[str] = []
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=headers) as http:
        for n, (st, sku) in enumerate(picks):
            key = await _api_return(http, st, n, sku)
            if key:
                keys.append(key)
        if len(others) > 2:
            key = await _shopify_refund(http, client, others[2], secret)
            if key:
                keys.append(key)
    typer.echo(f"requested {len(keys)} returns through the returns API and Shopify refunds/create")
    deadline = time.monotonic() + timeout
    returns: dict[str, ReturnState] = {}
    while time.monotonic() < deadline:
        for key in keys:
            handle = client.get_workflow_handle_for(ReturnToRefund.run, f"return-{key}")
            try:
                returns[key] = await handle.query(ReturnToRefund.state)
            except Exception:  # not started yet: ask again next round
                continue
        if len(returns) == len(keys) and all(
            r.status in CLOSED | {"NeedsAttention"} for r in returns.values()
        ):
            break
        await asyncio.sleep(1)
    return list(returns.values())


def returns_summary(returns: list[ReturnState]) -> None:
    print_table(
        "returns (retail returns list)",
        ["return", "order", "status", "dispositions", "credit memo", "refunded", "how", "cycle"],
        [
            [
                r.return_key,
                r.order_key,
                r.status,
                ", ".join(f"{d.quantity} x {d.sku} {d.disposition}" for d in r.dispositions),
                r.credited,
                r.refunded,
                ", ".join(sorted({x.kind for x in r.refunds})),
                f"{r.cycle_time_s:.1f} s" if r.cycle_time_s is not None else "",
            ]
            for r in returns
        ],
    )
    credited = sum((r.credited.amount for r in returns if r.credited), Decimal(0))
    refunded = sum((r.refunded.amount for r in returns if r.refunded), Decimal(0))
    typer.echo(
        f"credit memos {credited} = refunds {refunded}: {'agree' if credited == refunded else 'DIFFER'}"
    )
