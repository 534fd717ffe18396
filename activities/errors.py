"""Adapter errors -> Temporal retry decisions.

Transient: retry with the activity's backoff. Rate limited: retry after the vendor's delay.
Permanent: non-retryable; the workflow hands it to an operator. The ApplicationError type is
the attention reason the operator sees (``unknown_sku``, ``erp_unavailable``...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters.errors import PermanentError, RateLimitedError, TransientError
from orchestration.metrics import VENDOR_UNAVAILABLE


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
        if isinstance(exc, TransientError):
            _count_unavailable(exc.system)
        raise to_application_error(exc) from exc


def _count_unavailable(system: str) -> None:
    """``retail_vendor_unavailable_total{system}``: what the ERP-down alert watches."""
    if activity.in_activity():
        counter = activity.metric_meter().create_counter(
            VENDOR_UNAVAILABLE, "Vendor calls that failed transiently (the activity retries)"
        )
        counter.add(1, {"system": system})
