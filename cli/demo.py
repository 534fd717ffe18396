"""`retail demo`: the platform's main job on embedded defaults, end to end, with faults.

Starts the stack with the sandbox Shopify storefront as the shopify channel, imports a demo
catalog and stock, places about 50 orders in the storefront, which delivers them as signed
webhooks (with transient ERP errors, a slow warehouse, an unknown SKU and a duplicate delivery;
the first few webhooks are lost on the way, and reconciliation finds and ingests those orders),
waits for them, and prints what happened.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import SecretStr

from adapters.channels.shopify.signature import sign
from adapters.erp.catalog import import_products, import_stock
from canonical import OrderState
from cli.common import settings
from cli.demo_returns import returns_summary, run_returns
from cli.demo_tryton import check_books, on_tryton, prepare
from cli.logs import configure_logging
from cli.output import print_table
from sandboxes.shopify import (
    DEFAULT_ACCESS_TOKEN,
    FailureModes,
    SandboxServer,
    SandboxShop,
    WebhookDeliverer,
)
from sandboxes.shopify.demo_orders import demo_catalog, demo_stock, generate_orders
from settings import FaultSettings
from store.db import Store
from workflows.order_to_cash import OrderToCash

SETTLED = {"Completed", "Cancelled", "NeedsAttention"}
UNKNOWN_SKU = "GHOST-404"
# Returns of this SKU come back broken from the demo's warehouse: written off, not restocked.
DAMAGED_SKU = demo_catalog()[0]["sku"]
LOST_WEBHOOKS = 3


def _demo_settings(data_dir: Path, seed: int) -> Any:
    s = settings().model_copy(deep=True)
    s.data_dir = data_dir
    s.database_url = None
    # Quick warehouse and carrier so the demo ends in about a minute; realistic retries.
    s.wms_pick_delay_s = 1.0
    s.wms_ship_delay_s = 1.0
    s.carrier_transit_delay_s = 1.0
    s.carrier_delivery_delay_s = 1.0
    s.simulator_poll_s = 0.25
    s.retry_initial_s = 0.5
    s.retry_max_s = 2.0
    s.activity_timeout_s = 10.0
    s.faults.erp = FaultSettings(transient_rate=0.2, seed=seed)  # the builtin ERP's only
    if s.erp == "tryton":
        # 50 orders at once queue behind RETAIL_TRYTON_MAX_CONCURRENCY calls: an ERP step takes
        # seconds, not the builtin ERP's milliseconds.
        s.activity_timeout_s = 60.0
    s.wms_return_receipt_delay_s = 1.0
    s.wms_damaged_return_skus = [DAMAGED_SKU]
    # The storefront is the sandbox (started by the demo); orders the webhooks lost are left to
    # reconciliation, run by the demo at once rather than waiting for the 15-minute schedule.
    s.shopify_access_token = SecretStr(DEFAULT_ACCESS_TOKEN)
    s.shopify_inventory_location = "WH-EAST"
    s.reconcile_settle_s = 0.0
    return s


def _poison(order: dict[str, Any]) -> dict[str, Any]:
    """An order for a product the ERP has never heard of: it must wait for an operator."""
    o: dict[str, Any] = json.loads(json.dumps(order))
    o["line_items"][0]["sku"] = UNKNOWN_SKU
    return o


async def _send(http: httpx.AsyncClient, secret: str, payload: dict[str, Any], webhook_id: str) -> int:
    raw = json.dumps(payload).encode()
    r = await http.post(
        "/webhooks/shopify",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": sign(raw, secret),
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Shop-Domain": "retail-connect-demo.myshopify.com",
            "X-Shopify-API-Version": "2025-07",
        },
    )
    return r.status_code


def demo(
    orders: Annotated[int, typer.Option(help="how many orders to send")] = 50,
    keep: Annotated[bool, typer.Option("--keep", help="leave the stack running to browse the UI")] = False,
    seed: Annotated[int, typer.Option(help="random seed for orders and faults")] = 7,
    timeout: Annotated[float, typer.Option(help="seconds to wait for orders to settle")] = 240.0,
    data_dir: Annotated[Path, typer.Option(help="fresh data directory for the demo")] = Path(".data/demo"),
) -> None:
    """Run the platform's main job on embedded defaults and print a summary."""
    from cli.stack import running_stack

    # The demo injects failures on purpose: show the summary, not a traceback per attempt.
    configure_logging("WARNING", quiet_activity_failures=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    s = _demo_settings(data_dir, seed)

    async def go() -> int:
        shop = SandboxShop(bucket_size=400, leak_per_s=50)  # a generous (Plus-sized) API bucket
        shop.seed_catalog(demo_catalog())
        async with (
            SandboxServer(shop) as storefront,
            running_stack(
                s.model_copy(update={"shopify_admin_url": storefront.url}),
                persist=True,
                wms_extra_delay={"WH-WEST": 3.0},
            ) as stack,
        ):
            typer.echo(f"Temporal UI: {stack.ui_url}   API: {s.api_url}   storefront: {storefront.url}")
            if stack.api_key:
                typer.echo(f"API key (every scope, this run only): {stack.api_key}")
            _import_demo_data(stack.store)
            erp = stack.adapters.erp
            if on_tryton(erp):
                await prepare(erp)
            payloads = generate_orders(
                orders - 1, seed, [(p["sku"], Decimal(p["price"])) for p in demo_catalog()]
            )
            payloads.append(
                _poison(
                    generate_orders(
                        1,
                        seed + 1,
                        [(p["sku"], Decimal(p["price"])) for p in demo_catalog()],
                        start_number=9001,
                    )[0]
                )
            )
            secret = s.shopify_webhook_secret.get_secret_value()
            keys = [f"shopify-{p['id']}" for p in payloads]
            async with httpx.AsyncClient(base_url=s.api_url, timeout=30) as http:
                url = f"{s.api_url}/webhooks/shopify"
                # The first few webhooks never arrive (Shopify does not guarantee delivery).
                lossy = WebhookDeliverer(
                    shop, http, secret, FailureModes(drop_rate=1.0), url=url, topics=("orders/create",)
                )
                for p in payloads[:LOST_WEBHOOKS]:
                    shop.create_order(p)
                lossy.close()
                deliverer = WebhookDeliverer(shop, http, secret, url=url, topics=("orders/create",))
                for p in payloads[LOST_WEBHOOKS:]:
                    shop.create_order(p)
                await deliverer.drain(timeout_s=60)
                # Shopify delivers at least once: a redelivery must not start a second workflow.
                dup = await _send(http, secret, payloads[LOST_WEBHOOKS], uuid.uuid4().hex)
            sent = deliverer.summary()
            typer.echo(
                f"placed {len(payloads)} orders in the sandbox storefront: {sent['delivered']} webhooks"
                f" delivered, {lossy.summary()['dropped']} lost; duplicate delivery answered {dup}"
            )
            await _reconcile(stack.client, s)
            states = await _wait(stack.client, keys, timeout)
            returns = await run_returns(
                stack.client, s.api_url, secret, states, DAMAGED_SKU, api_key=stack.api_key
            )
            await _inventory_summary(stack.store, s.inventory_channels)
            _summary(states, stack.ui_url)
            returns_summary(returns)
            books = await check_books(erp, stack.store, states, returns) if on_tryton(erp) else True
            if keep:
                typer.echo("--keep: the stack stays up; Ctrl-C stops it.")
                await asyncio.Event().wait()
            settled = all(st.status in SETTLED for st in states.values())
            return 0 if settled and books and all(r.status == "Refunded" for r in returns) else 1

    try:
        code = asyncio.run(go())
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


async def _reconcile(client: Any, s: Any) -> None:
    """Run orders reconciliation now (the schedule would within 15 minutes) and show what it did."""
    from workflows.schedules import start_reconcile

    handle = await start_reconcile(client, s, "orders")
    report = await handle.result()
    print_table(
        "orders reconciliation (retail reconcile findings)",
        ["channel", "orders listed", "lost webhooks", "ingested", "new findings"],
        [[o.channel, o.listed, o.missing, o.ingested, o.findings_new] for o in report.orders],
    )


def _import_demo_data(store: Store) -> None:
    products = import_products(store, demo_catalog())
    stock = import_stock(store, demo_stock())
    typer.echo(f"imported products: {products}; stock levels: {stock}")


async def _wait(client: Any, keys: list[str], timeout: float) -> dict[str, OrderState]:
    deadline = time.monotonic() + timeout
    states: dict[str, OrderState] = {}
    last_report = 0.0
    while True:
        for key in keys:
            try:
                states[key] = await client.get_workflow_handle_for(OrderToCash.run, f"order-{key}").query(
                    OrderToCash.state
                )
            except Exception:  # not started yet or briefly unreachable: ask again next round
                continue
        settled = sum(1 for st in states.values() if st.status in SETTLED)
        if settled == len(keys) or time.monotonic() > deadline:
            return states
        if time.monotonic() - last_report > 5:
            by = Counter(st.status for st in states.values())
            typer.echo(
                f"  {settled}/{len(keys)} settled: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
            )
            last_report = time.monotonic()
        await asyncio.sleep(1)


async def _inventory_summary(store: Store, channels: list[str], timeout: float = 15.0) -> None:
    """Stock moved by the orders, as the ledger has it and as each channel was told."""
    from adapters.erp.inventory import InventoryLedger
    from store.channel_stock import told

    ledger = InventoryLedger(store)
    deadline = time.monotonic() + timeout
    while True:  # the syncs debounce: give them a moment to catch up with the last shipments
        rows = []
        in_step = True
        for channel in channels:
            sold = {
                a.sku: a.available
                for a in ledger.channel_availability(channel, [p["sku"] for p in demo_catalog()])
            }
            said = {t.sku: t.quantity for t in told(store, channel)}
            in_step = in_step and all(said.get(sku) == n for sku, n in sold.items())
            rows += [[channel, sku, n, said.get(sku)] for sku, n in sorted(sold.items())]
        if in_step or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    print_table(
        "inventory (ledger vs what each channel was told)", ["channel", "sku", "sellable", "told"], rows
    )


def _summary(states: dict[str, OrderState], ui_url: str) -> None:
    by = Counter(st.status for st in states.values())
    print_table("orders by status", ["status", "orders"], sorted(by.items()))
    totals: dict[str, dict[str, Decimal]] = {}
    for st in states.values():
        t = totals.setdefault(
            st.total.currency, dict.fromkeys(("total", "channel", "captured", "invoiced"), Decimal(0))
        )
        t["total"] += st.total.amount
        t["channel"] += st.channel_paid.amount if st.channel_paid else Decimal(0)
        t["captured"] += st.captured.amount
        t["invoiced"] += st.invoiced.amount
    print_table(
        "money",
        ["currency", "order total", "paid at channel", "captured", "invoiced"],
        [[c, v["total"], v["channel"], v["captured"], v["invoiced"]] for c, v in sorted(totals.items())],
    )
    stuck = [st for st in states.values() if st.attention is not None]
    if stuck:
        print_table(
            "stuck orders (retail orders list --stuck; retail orders show shopify-<id>)",
            ["order", "reason", "step", "message"],
            [[st.name or st.order_key, a.reason, a.step, a.message] for st in stuck if (a := st.attention)],
        )
    typer.echo(f'Temporal UI: {ui_url}  (filter: OrderStatus="NeedsAttention")')
