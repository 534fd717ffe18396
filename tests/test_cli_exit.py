"""`retail` exits with its command's own status, never with an abort at interpreter teardown.

The Temporal client's Rust threads could outlive Python's finalization and abort a command
that had already answered (SIGABRT, exit 134: temporalio/sdk-python#300). The entry point
leaves without teardown once the command is done; this runs the real console script."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from temporalio.client import Client

RETAIL = str(Path(sys.executable).parent / "retail")
RUNS = 50


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        RETAIL, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _env(client: Client, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["RETAIL_TEMPORAL_ADDRESS"] = client.service_client.config.target_host
    env["RETAIL_DATA_DIR"] = str(tmp_path)
    return env


async def test_a_temporal_command_exits_0_in_every_one_of_50_runs(client: Client, tmp_path: Path) -> None:
    env = _env(client, tmp_path)
    gate = asyncio.Semaphore(os.cpu_count() or 2)

    async def once() -> tuple[int, str, str]:
        async with gate:
            return await _run(env, "orders", "list", "--json")

    results = await asyncio.gather(*(once() for _ in range(RUNS)))
    codes = [code for code, _, _ in results]
    aborted = [err for code, _, err in results if code != 0]
    assert codes == [0] * RUNS, aborted[:1]
    assert all(isinstance(json.loads(out), list) for _, out, _ in results)


async def test_a_failing_command_keeps_its_exit_status_and_message(client: Client, tmp_path: Path) -> None:
    env = _env(client, tmp_path)
    code, out, err = await _run(env, "orders", "show", "no-such-order")
    assert (code, out) == (1, "") and "no order no-such-order" in err

    code, _, err = await _run(env, "orders", "bogus-command")
    assert code == 2 and "No such command" in err
