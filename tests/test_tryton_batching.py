"""Invoices posted in batches (adapters/erp/tryton/batching.py): the posts that arrive while a
batch is in Tryton go together in the next; a refused batch is posted again one by one."""

from __future__ import annotations

import asyncio

import pytest

from adapters.erp.tryton.batching import Batcher
from adapters.errors import PermanentError, TransientError


class FakePost:
    """Tryton's ``account.invoice.post`` as the batcher sees it: slow, all or nothing."""

    def __init__(self, refuse: set[int] | None = None, transient: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.posted: set[int] = set()
        self.refuse = refuse or set()
        self.transient = transient

    async def __call__(self, ids: list[int]) -> None:
        self.calls.append(list(ids))
        await asyncio.sleep(0.05)
        if self.transient:
            raise TransientError("Tryton answered HTTP 503", system="erp")
        bad = self.refuse.intersection(ids)
        if bad:
            message = f"Tryton: invoice {min(bad)} has no lines"
            raise PermanentError(message, system="erp", reason="erp_rejected")
        self.posted.update(ids)


async def test_posts_arriving_during_a_batch_go_together_in_the_next() -> None:
    post = FakePost()
    batcher = Batcher(post)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.01)  # 1 is in Tryton now
    await asyncio.gather(first, *(batcher.submit(i) for i in (2, 3, 4)))
    assert post.calls == [[1], [2, 3, 4]]
    assert post.posted == {1, 2, 3, 4}
    assert list(batcher.batches) == [1, 3]


async def test_the_same_invoice_twice_in_a_batch_is_posted_once() -> None:
    post = FakePost()
    batcher = Batcher(post)
    await asyncio.gather(batcher.submit(7), batcher.submit(7))
    assert post.calls == [[7]]


async def test_a_refused_batch_is_posted_one_by_one_so_each_gets_its_own_answer() -> None:
    post = FakePost(refuse={3})
    batcher = Batcher(post)
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3)), return_exceptions=True)
    assert results[:2] == [None, None]
    assert isinstance(results[2], PermanentError) and "invoice 3" in str(results[2])
    assert post.calls == [[1, 2, 3], [1], [2], [3]]
    assert post.posted == {1, 2}


async def test_a_transient_answer_reaches_every_caller_of_the_batch() -> None:
    batcher = Batcher(FakePost(transient=True))
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2)), return_exceptions=True)
    assert all(isinstance(r, TransientError) for r in results)


async def test_a_caller_that_gives_up_leaves_its_batch_to_finish() -> None:
    post = FakePost()
    batcher = Batcher(post)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(batcher.submit(5), timeout=0.01)
    await batcher.submit(6)  # queued behind 5's batch, which still completes
    assert post.posted == {5, 6}


async def test_batches_are_capped() -> None:
    post = FakePost()
    batcher = Batcher(post, max_batch=2)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.01)
    await asyncio.gather(first, *(batcher.submit(i) for i in range(1, 6)))
    assert [len(c) for c in post.calls] == [1, 2, 2, 1]


async def test_callers_of_a_batch_cut_short_get_a_transient_answer() -> None:
    """The worker shutting down cancels the batch in flight: its callers and those queued
    behind it hear so (and their activities retry), none waits for ever."""

    async def hangs(ids: list[int]) -> None:
        await asyncio.Event().wait()

    batcher = Batcher(hangs)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0.01)
    assert batcher._drainer is not None
    batcher._drainer.cancel()
    for caller in (first, second):
        with pytest.raises(TransientError, match="interrupted"):
            await caller
