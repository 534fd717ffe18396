"""Adapter errors -> Temporal retry decisions.

Transient: retry with the activity's backoff. Rate limited: retry after the vendor's delay.
Permanent: non-retryable; the workflow hands it to an operator. The ApplicationError type is
the attention reason the operator sees (``unknown_sku``, ``erp_unavailable``...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from temporalio.exceptions import ApplicationError

from adapters.errors import PermanentError, RateLimitedError, TransientError


def to_application_error(exc: Exception) -> ApplicationError:
    if isinstance(exc, RateLimitedError):
        return ApplicationError(
            exc.message,
            type=f"{exc.system}_rate_limited",
            next_retry_delay=timedelta(seconds=exc.retry_after),
        )
    if isinstance(exc, TransientError):
        return ApplicationError(exc.message, type=f"{exc.system}_unavailable")
    if isinstance(exc, PermanentError):
        return ApplicationError(exc.message, type=exc.reason, non_retryable=True)
    return ApplicationError(f"{type(exc).__name__}: {exc}", type="internal_error")


@contextmanager
def adapter_errors() -> Iterator[None]:
    """Translate the adapter taxonomy; anything else is an unexpected (retryable) error."""
    try:
        yield
    except (TransientError, PermanentError) as exc:
        raise to_application_error(exc) from exc
