"""How builtin (store-backed) adapters run their database work and report its failures.

Database work runs in a thread so an activity's event loop never blocks. A database that is
down, locked or deadlocked is worth retrying (TransientError); a value the schema cannot hold
(too long, out of range) is not (PermanentError ``invalid_data``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from adapters.errors import PermanentError, TransientError

T = TypeVar("T")


@contextmanager
def store_errors(system: str) -> Iterator[None]:
    try:
        yield
    except DataError as exc:
        raise PermanentError(
            f"{system} store refused the data: {exc.orig}", reason="invalid_data", system=system
        ) from exc
    except (OperationalError, PoolTimeoutError) as exc:
        raise TransientError(
            f"{system} store unavailable: {getattr(exc, 'orig', None) or exc}", system=system
        ) from exc


async def in_thread(system: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a worker thread, translating store failures into the adapter taxonomy."""

    def run() -> T:
        with store_errors(system):
            return fn()

    return await asyncio.to_thread(run)
