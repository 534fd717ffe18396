"""How tests run the `retail` CLI in-process, whatever the terminal's width.

Rich draws errors in a box and wraps them at the terminal's width (``COLUMNS``, else the
terminal's own, else 80), so a message can be cut over two box lines. Tests look for
messages in :func:`plain` output, which removes the box and joins the wrapped lines."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import structlog
from typer.testing import CliRunner, Result

from cli.main import app

runner = CliRunner()

_BOX = re.compile(r"[\u2500-\u257f]")  # rich's box-drawing characters


def invoke(args: list[str]) -> Result:
    """One CLI run. The CLI configures logging for its process (root handlers on the stderr of
    the moment, which CliRunner closes afterwards): put the test process's logging back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = structlog.get_config()
    try:
        return runner.invoke(app, args)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**saved)


async def cli(*args: str) -> Result:
    """Run ``retail ARGS`` in a worker thread (the CLI runs its own event loop)."""
    return await asyncio.to_thread(invoke, list(args))


def cli_json(result: Result) -> Any:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}"
    return json.loads(result.stdout)


def plain(text: str) -> str:
    """``text`` without rich's boxes, its wrapped lines joined by single spaces."""
    return " ".join(_BOX.sub(" ", text).split())
