"""What every operated workflow shares: how it calls an activity and reads a failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from orchestration.models import ProcessingPolicy

T = TypeVar("T")


def describe(err: ActivityError) -> tuple[str, str]:
    """(attention reason, message) from an activity failure."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.type or "error", cause.message
    if isinstance(cause, ActivityTimeoutError):
        return "timeout", f"{err.activity_type} timed out ({cause.type.name if cause.type else 'timeout'})"
    return "error", str(cause or err)


def refused_for_good(err: ActivityError) -> bool:
    """The vendor refused (nothing happened under the key), as opposed to a timeout or exhausted
    transient retries after which it may have acted."""
    return isinstance(err.cause, ApplicationError) and err.cause.non_retryable


async def call(
    policy: ProcessingPolicy, activity: str, args: Sequence[Any], result_type: type[T], summary: str
) -> T:
    """Run an activity with the policy's timeout and retries; the summary labels the UI's timeline."""
    result: T = await workflow.execute_activity(
        activity,
        args=list(args),
        result_type=result_type,
        start_to_close_timeout=timedelta(seconds=policy.activity_timeout_s),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=policy.retry_initial_s),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=policy.retry_max_s),
            maximum_attempts=policy.max_attempts,
        ),
        summary=summary[:200],
    )
    return result
