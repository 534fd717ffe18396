"""`retail poll run CHANNEL`: poll a polled channel now, beside its schedule (a worker must run)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import fail, run, settings, temporal_client
from cli.output import print_json, print_table
from cli.webhooks import parse_since
from orchestration.poll_models import PollResult
from workflows import schedules as sch

app = typer.Typer(help="Polled channels (Amazon, Adobe Commerce): import orders now.", no_args_is_help=True)


@app.command("run")
def run_now(
    channel: Annotated[str, typer.Argument(help="a channel of RETAIL_POLL_CHANNELS, e.g. amazon")],
    since: Annotated[
        str | None,
        typer.Option(help="import from here (ISO 8601 or an age: 2h, 7d); the watermark is left alone"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Import the channel's orders updated in the window now and wait for the run."""
    if channel not in settings().poll_channels:
        raise fail(f"{channel!r} is not polled: RETAIL_POLL_CHANNELS={settings().poll_channels}", code=2)
    start = parse_since(since)

    async def go() -> PollResult:
        handle = await sch.start_poll(await temporal_client(), settings(), channel, start)
        if not as_json:
            typer.echo(f"started {handle.id}")
        return await handle.result()

    result = run(go())
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    print_table(
        f"{channel}: orders updated {result.since:%Y-%m-%d %H:%M:%S} to {result.until:%Y-%m-%d %H:%M:%S}",
        ["outcome", "orders"],
        [[k, v] for k, v in sorted(result.counts.items())] or [["(none)", 0]],
    )
    if result.count("unmappable"):
        typer.echo("unmappable orders: retail reconcile findings --open --kind order_unmappable")
