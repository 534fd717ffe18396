"""A real trytond for tests (services/tryton.py): a database copied from the cached template,
a server on a free port, stopped after the test."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.tryton import TrytonServer

ROOT = Path(__file__).resolve().parent.parent
# Kept between runs: building the template (module activation) is the slow part.
TEMPLATES = ROOT / ".data" / "test-tryton-templates"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_tryton(tmp: Path) -> Iterator[TrytonServer]:
    server = TrytonServer(
        root=tmp / "tryton", database=f"t{uuid.uuid4().hex[:8]}", port=free_port(), templates=TEMPLATES
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
