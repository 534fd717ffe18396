"""The `retail` command line."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer

from cli import apikeys, catalog, demo, orders, poll, reconcile, returns, status, webhooks, workflows_cmd
from cli.common import fail, settings
from cli.logs import configure_logging

app = typer.Typer(
    help="Retail Connect: storefronts <-> ERP, tax, payment, WMS and carrier, on Temporal.",
    no_args_is_help=True,
)
app.add_typer(orders.app, name="orders")
app.add_typer(returns.app, name="returns")
app.add_typer(workflows_cmd.app, name="workflows")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(reconcile.app, name="reconcile")
app.add_typer(reconcile.schedules_app, name="schedules")
app.add_typer(apikeys.app, name="apikeys")
app.add_typer(poll.app, name="poll")


@app.callback()
def _main(
    log_level: Annotated[
        str, typer.Option(envvar="RETAIL_LOG_LEVEL", help="DEBUG, INFO, WARNING, ERROR")
    ] = "INFO",
) -> None:
    configure_logging(log_level)


app.add_typer(catalog.catalog_app, name="catalog")
app.add_typer(catalog.inventory_app, name="inventory")
app.command("demo")(demo.demo)
app.command("status")(status.status)


@app.command()
def dev(
    data_dir: Annotated[
        Path | None, typer.Option(help="where state persists (default RETAIL_DATA_DIR or .data)")
    ] = None,
    api_port: Annotated[int | None, typer.Option(help="API port (default 8000)")] = None,
    temporal_port: Annotated[int | None, typer.Option(help="Temporal frontend port (default 7233)")] = None,
    ui_port: Annotated[int | None, typer.Option(help="Temporal Web UI port (default 8233)")] = None,
) -> None:
    """Run everything on this machine: Temporal dev server + UI, worker, API, WMS/carrier simulators."""
    from cli.stack import running_stack

    s = settings()
    if data_dir:
        s.data_dir = data_dir
    if api_port:
        s.api_port = api_port
    if temporal_port:
        s.temporal_address = f"{s.temporal_address.rsplit(':', 1)[0]}:{temporal_port}"
    if ui_port:
        s.temporal_ui_port = ui_port

    async def go() -> None:
        async with running_stack(s, persist=True) as stack:
            typer.echo(f"Temporal UI: {stack.ui_url}")
            typer.echo(f"API:         {s.api_url}  (docs at {s.api_url}/docs)")
            if stack.api_key:
                typer.echo(f"API key:     {stack.api_key}  (every scope; replaced at the next start)")
            else:
                typer.echo("API key:     none needed (RETAIL_API_AUTH=off, loopback only)")
            typer.echo(f"Data:        {s.data_dir.resolve()}")
            typer.echo("Running; Ctrl-C stops.")
            await asyncio.Event().wait()

    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command()
def worker() -> None:
    """Run a Temporal worker (order workflows and their activities)."""
    from worker import run_worker

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(settings()))


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """Serve the HTTP API (orders, webhooks, health, metrics)."""
    import uvicorn

    from api.app import create_app
    from api.auth import check_auth_setting

    s = settings()
    try:
        check_auth_setting(s, host)
    except RuntimeError as exc:
        raise fail(str(exc)) from exc
    uvicorn.run(create_app(s), host=host or s.api_host, port=port or s.api_port, log_level="info")


@app.command()
def simulators() -> None:
    """Run the builtin warehouse and carrier simulators against the API's webhook endpoints."""
    from cli.stack import run_simulators
    from store.db import Store
    from store.migrate import upgrade

    s = settings()
    upgrade(s.store_url)

    async def go() -> None:
        await run_simulators(s, Store(s.store_url), asyncio.Event())

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())


if __name__ == "__main__":
    app()
