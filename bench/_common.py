"""Shared helpers for the benchmarks: a Temporal dev server, a fresh database, statistics and output."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from adapters.erp.catalog import import_products, import_stock
from devserver import temporal_cli
from orchestration import search_attributes as sa
from store.db import Store
from tests.dbutil import fresh_database_url


def bench_skus(n: int) -> list[str]:
    return [f"BENCH-{i:04d}" for i in range(n)]


def seed_skus(store: Store, skus: Sequence[str], stock: dict[str, int]) -> None:
    """Item master for ``skus`` and ``stock[location]`` units of each at every given location."""
    import_products(
        store, [{"sku": s, "title": f"Bench {s}", "price": "10.00", "currency": "USD"} for s in skus]
    )
    import_stock(store, [{"sku": s, "location": loc, "on_hand": q} for s in skus for loc, q in stock.items()])


@contextmanager
def bench_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rc-bench-") as tmp:
        yield Path(tmp)


@contextmanager
def database_url(tmp: Path) -> Iterator[str]:
    """DATABASE_URL (a fresh schema in it) when it is a PostgreSQL URL, else SQLite under ``tmp``."""
    with fresh_database_url(tmp) as url:
        yield url


def backend(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


@asynccontextmanager
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=sa.ALL,
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@dataclass
class Stats:
    """Latencies (ms) of one series and its throughput over its wall time."""

    name: str
    n: int
    concurrency: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    per_s: float
    wall_s: float = 0.0
    samples_s: list[float] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, name: str, latencies_s: Sequence[float], wall_s: float, concurrency: int = 1) -> Stats:
        ms = sorted(x * 1000 for x in latencies_s)
        return cls(
            name=name,
            n=len(ms),
            concurrency=concurrency,
            p50_ms=round(percentile(ms, 50), 3),
            p99_ms=round(percentile(ms, 99), 3),
            mean_ms=round(statistics.fmean(ms), 3),
            max_ms=round(ms[-1], 3),
            per_s=round(len(ms) / wall_s, 2) if wall_s > 0 else 0.0,
            wall_s=round(wall_s, 3),
            samples_s=list(latencies_s),
        )

    def row(self) -> list[str]:
        return [
            self.name,
            str(self.concurrency),
            str(self.n),
            f"{self.p50_ms:.2f}",
            f"{self.p99_ms:.2f}",
            f"{self.mean_ms:.2f}",
            f"{self.per_s:.0f}" if self.per_s >= 10 else f"{self.per_s:.2f}",
        ]

    def asdict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["samples_s"]
        return out


STATS_HEADERS = ["series", "conc", "n", "p50 ms", "p99 ms", "mean ms", "per s"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def ratios(subject: Stats, baseline: Stats) -> dict[str, float]:
    """How many times slower (latency) and how many times fewer per second (throughput)."""
    return {
        "p50": round(subject.p50_ms / baseline.p50_ms, 2),
        "p99": round(subject.p99_ms / baseline.p99_ms, 2),
        "throughput": round(baseline.per_s / subject.per_s, 2) if subject.per_s else float("inf"),
    }


async def run_series(name: str, n: int, concurrency: int, call: Callable[[int], Awaitable[object]]) -> Stats:
    """``call(i)`` for i in range(n) from ``concurrency`` coroutines; each call timed."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def one_worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(one_worker() for _ in range(concurrency)))
    return Stats.of(name, latencies, time.perf_counter() - start, concurrency)


def loadavg() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False))

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def cpu_busy_s() -> float:
    """CPU seconds the whole machine spent busy since boot (every process: the subject's
    servers and databases too), from /proc/stat; 0.0 where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def emit_json(benchmark: str, **results: Any) -> None:
    """The machine-readable result: one JSON line."""
    print(json.dumps({"benchmark": benchmark, "cpus": os.cpu_count(), "loadavg": loadavg(), **results}))
