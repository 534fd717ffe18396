"""``PollOrders``: one run of a polled channel's schedule (Amazon, Adobe Commerce: no push).

The window is [watermark - overlap, now - settle]; its orders are imported page by page (each
started through ``start_order``, so seeing one twice starts it once); the watermark moves to the
window's end only after the last page, so a run that fails or is cut short is redone by the next
one. Pages are read inside activities, which return counts: the history stays small.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import names
    from orchestration.poll_models import PollChunk, PollInput, PollResult
    from orchestration.reconcile_models import Window

__all__ = ["PollOrders"]

# A vendor's rate limit or outage: keep retrying (a 429 waits the vendor's delay); the next
# scheduled run starts from the same watermark anyway.
_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=120), maximum_attempts=30)


@workflow.defn
class PollOrders:
    @workflow.init
    def __init__(self, inp: PollInput) -> None:
        self._result: PollResult | None = None

    @workflow.query
    def progress(self) -> PollResult | None:
        return self._result

    @workflow.run
    async def run(self, inp: PollInput) -> PollResult:
        p = inp.policy
        window: Window = await workflow.execute_activity(
            names.POLL_WINDOW,
            args=[inp.channel, inp.since, p],
            result_type=Window,
            summary=f"Window to import from {inp.channel}",
            **p.activity_options(_RETRY),
        )
        result = self._result = PollResult(channel=inp.channel, since=window.since, until=window.until)
        cursor: str | None = None
        while True:
            chunk: PollChunk = await workflow.execute_activity(
                names.POLL_IMPORT,
                args=[inp.channel, window, cursor, p],
                result_type=PollChunk,
                summary=f"Import {inp.channel} orders updated since {window.since:%Y-%m-%d %H:%M:%S}",
                **p.activity_options(_RETRY),
            )
            result.pages += chunk.pages
            for outcome, n in chunk.counts.items():
                result.counts[outcome] = result.counts.get(outcome, 0) + n
            cursor = chunk.next_cursor
            if cursor is None:
                break
        if inp.since is None:
            await workflow.execute_activity(
                names.POLL_ADVANCE,
                args=[inp.channel, window.until],
                result_type=datetime,
                summary=f"Move the {inp.channel} watermark to {window.until:%Y-%m-%d %H:%M:%S}",
                **p.activity_options(_RETRY),
            )
            result.watermark_advanced = True
        return result
