"""`retail tryton serve`: the Tryton ERP server on its own (docker-compose's `tryton` service, or
a host of its own), on a database made from the cached template; `retail dev` starts one by
itself when RETAIL_ERP=tryton."""

from __future__ import annotations

import signal
import time
from typing import Annotated

import typer

from cli.common import settings
from services.tryton import from_settings

app = typer.Typer(help="The Tryton ERP server the project can run for you.", no_args_is_help=True)


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="listen address (default: the URL's host)")] = None,
) -> None:
    """Create the database if it is new (from the template; PostgreSQL with
    RETAIL_TRYTON_DATABASE_URL), then serve JSON-RPC at RETAIL_TRYTON_URL until stopped."""
    s = settings()
    server = from_settings(s)
    if host:
        server.host = host
    server.start(timeout=600)
    typer.echo(f"Tryton: {server.url}/{server.database}/rpc/ (database {server.database})")

    assert server.proc is not None
    proc, stopping = server.proc, False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    try:
        while (code := proc.poll()) is None:
            # A queue worker that died leaves Tryton's tasks waiting: start another.
            if not stopping and server.keep_worker():
                typer.echo("Tryton's queue worker had stopped: started again", err=True)
            time.sleep(2)
    except KeyboardInterrupt:
        server.stop()
        code = 0
    server.stop_worker()
    raise typer.Exit(code)
