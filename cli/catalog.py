"""`retail catalog import` and `retail inventory import`: master data into the builtin ERP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adapters.erp.catalog import import_products, import_stock
from cli.common import fail, settings
from store.db import Store
from store.migrate import upgrade

catalog_app = typer.Typer(help="The ERP's product master.", no_args_is_help=True)
inventory_app = typer.Typer(help="Stock per location in the ERP.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a .csv or .json file")]


def _store() -> Store:
    s = settings()
    upgrade(s.store_url)
    return Store(s.store_url)


@catalog_app.command("import")
def catalog_import(file: FileArg) -> None:
    """Upsert products (sku, title, price, currency[, weight_grams][, active]); all or nothing."""
    store = _store()
    try:
        counts = import_products(store, file)
    except ValueError as exc:
        raise fail(f"{file}: {exc}") from exc
    finally:
        store.dispose()  # close the pool: a PostgreSQL connection must not outlive the command
    typer.echo(f"products: {counts}")


@inventory_app.command("import")
def inventory_import(file: FileArg) -> None:
    """Set on-hand stock per location (sku, location, on_hand); all or nothing."""
    store = _store()
    try:
        counts = import_stock(store, file)
    except ValueError as exc:
        raise fail(f"{file}: {exc}") from exc
    finally:
        store.dispose()
    typer.echo(f"stock levels: {counts}")


@inventory_app.command("show")
def inventory_show(
    sku: Annotated[str, typer.Argument(help="the SKU")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """On hand, reserved and available per location, and what each channel was last told."""
    from adapters.erp.inventory import InventoryLedger
    from cli.output import print_json, print_table
    from store.channel_stock import told

    store = _store()
    try:
        positions = InventoryLedger(store).positions(sku)
        channels = told(store, skus=[sku])
    finally:
        store.dispose()
    if not positions:
        raise fail(f"no stock recorded for {sku}")
    if as_json:
        print_json(
            {
                "sku": sku,
                "locations": [
                    {
                        "location": p.location,
                        "on_hand": p.on_hand,
                        "reserved": p.reserved,
                        "available": p.available,
                    }
                    for p in positions
                ],
                "available": sum(p.available for p in positions),
                "channels": [
                    {
                        "channel": t.channel,
                        "told": t.quantity,
                        "told_at": t.told_at.isoformat(),
                        "lag_s": t.lag_s,
                    }
                    for t in channels
                ],
            }
        )
        return
    print_table(
        f"{sku}: {sum(p.available for p in positions)} available",
        ["location", "on hand", "reserved", "available"],
        [[p.location, p.on_hand, p.reserved, p.available] for p in positions],
    )
    print_table(
        "channels (what each was last told)",
        ["channel", "told", "at", "lag (s)"],
        [
            [t.channel, t.quantity, t.told_at.isoformat(timespec="seconds"), f"{t.lag_s:.2f}"]
            for t in channels
        ],
    )


@catalog_app.command("sync")
def catalog_sync() -> None:
    """Read the item master from the ERP when it keeps one (RETAIL_ERP=tryton): its goods
    products, names, prices and active flags replace the platform's copy."""
    import asyncio

    from adapters import registry
    from adapters.registry import AdapterContext

    s = settings()
    store = _store()
    try:
        erp = registry.create("erp", s.erp, AdapterContext(s, store))
        sync = getattr(erp, "sync_catalog", None)
        if sync is None:
            raise fail(f"the {s.erp} ERP is the platform's own item master: use `retail catalog import`")

        async def go() -> object:
            await erp.start()
            try:
                return await sync()
            finally:
                await erp.rpc.aclose()

        counts = asyncio.run(go())
    finally:
        store.dispose()
    typer.echo(f"products from {s.erp}: {counts}")
