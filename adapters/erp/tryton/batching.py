"""Posting invoices in batches (group commit): Tryton numbers invoices from a strict sequence
that stays locked until the posting transaction commits, so posts serialise inside Tryton
whatever the client does, and posts sent together collide (PostgreSQL refuses the second
lock, Tryton retries, then answers 503) and redo their work. Tryton's ORM works on lists, and
one ``post`` of several invoices costs far less than as many posts of one. So this worker
posts one batch at a time: the invoices that arrive while a batch is in Tryton go together in
the next.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from adapters.errors import PermanentError, TransientError

Post = Callable[[list[int]], Awaitable[None]]


class Batcher:
    """``await submit(id)`` returns when ``id`` was posted with the batch it joined, or raises
    what posting it raised. A batch Tryton refuses (one invoice's UserError fails the whole
    transaction) is posted again one by one, so each invoice gets its own answer."""

    def __init__(self, post: Post, *, max_batch: int = 25) -> None:
        self._post = post
        self._max = max_batch
        self._pending: list[tuple[int, asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches: deque[int] = deque(maxlen=1000)  # sizes of the latest batches (bench, tests)

    async def submit(self, record_id: int) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)
        self._pending.append((record_id, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        # A caller that gives up (its activity timed out) leaves the batch to finish.
        await asyncio.shield(future)

    async def _drain(self) -> None:
        batch: list[tuple[int, asyncio.Future[None]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
                ids = sorted({i for i, _ in batch})
                self.batches.append(len(ids))
                try:
                    await self._post(ids)
                except PermanentError as exc:
                    if len(ids) == 1:
                        _settle(batch, exc)
                    else:
                        await self._one_by_one(batch)
                except Exception as exc:  # transient: every caller retries as its activity would
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
        finally:
            # Cancelled (the worker shutting down): no caller is left waiting for an answer.
            gone = [*batch, *self._pending]
            self._pending = []
            _settle(gone, TransientError("invoice posting was interrupted", system="erp"))

    async def _one_by_one(self, batch: list[tuple[int, asyncio.Future[None]]]) -> None:
        for record_id in sorted({i for i, _ in batch}):
            mine = [(i, f) for i, f in batch if i == record_id]
            try:
                await self._post([record_id])
            except Exception as exc:
                _settle(mine, exc)
            else:
                _settle(mine, None)


def _retrieved(future: asyncio.Future[None]) -> None:
    """The answer is read even when its caller gave up (no "never retrieved" warning)."""
    if not future.cancelled():
        future.exception()


def _settle(batch: list[tuple[int, asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
