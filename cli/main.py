"""The `retail` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cli import (
    apikeys,
    catalog,
    demo,
    orders,
    poll,
    reconcile,
    returns,
    status,
    tryton_cmd,
    webhooks,
    workflows_cmd,
)
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
app.add_typer(tryton_cmd.app, name="tryton")


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


def main() -> NoReturn:
    """The `retail` entry point: run the command, flush what it printed, and leave without
    interpreter teardown.

    The Temporal client's Rust threads can outlive Python's finalization and abort the process
    (SIGABRT, exit 134, "PyGILState_Release ... finalizing": temporalio/sdk-python#300) after a
    command has already answered. Once the command is done nothing is left to tear down that
    matters, so the exit status is the command's own.
    """
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:  # typer already printed a usage error; anything else is a bug report
        traceback.print_exc()
        code = 1
    _exit(code)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints its message and exits 1
    return 1


def _exit(code: int) -> NoReturn:
    import tracing

    tracing.reset()  # exports the spans still batched: os._exit runs no atexit hook
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
