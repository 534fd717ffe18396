"""`retail workflows replay`: check that the current code can continue recorded workflows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from temporalio.client import WorkflowHistory

from cli.common import fail, run, settings
from orchestration.client import connect
from replay import ReplayOutcome, load_histories, replay

app = typer.Typer(help="Workflow code safety checks.", no_args_is_help=True)


async def _from_server(query: str, limit: int) -> list[WorkflowHistory]:
    client = await connect(settings())
    out: list[WorkflowHistory] = []
    async for wf in client.list_workflows(query, limit=limit):
        out.append(await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history())
    return out


@app.command("replay")
def replay_cmd(
    directory: Annotated[Path | None, typer.Argument(help="folder of history JSON files")] = None,
    query: Annotated[
        str | None, typer.Option(help="replay workflows from the server matching this list filter")
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many from the server")] = 100,
) -> None:
    """Replay histories (a folder of JSON files, or a list query) against the current code."""
    if (directory is None) == (query is None):
        raise fail("give a folder of histories or --query, not both")
    histories = load_histories(directory) if directory else run(_from_server(query or "", limit))
    if not histories:
        raise fail("no histories to replay")
    outcomes: list[ReplayOutcome] = run(replay(histories))
    bad = [o for o in outcomes if o.error]
    for o in outcomes:
        typer.echo(
            f"{'FAIL' if o.error else 'ok  '} {o.workflow_id}" + (f": {o.error[:300]}" if o.error else "")
        )
    typer.echo(f"{len(outcomes) - len(bad)} replayed, {len(bad)} incompatible")
    if bad:
        raise typer.Exit(1)
