"""Tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
_PIPE_WIDTH = 400


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for c in columns:
        # Fold rather than cut: an order id must never be shortened to "shopify-10…".
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*[("" if v is None else str(v)) for v in r])
    # Piped output (grep, less, logs) gets whole rows, not the 80 columns rich assumes.
    (console if console.is_terminal else Console(width=_PIPE_WIDTH)).print(table)
