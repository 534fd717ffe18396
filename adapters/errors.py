"""The error taxonomy every adapter raises; activities turn it into Temporal retry decisions.

Adapters never loop on their own: retries belong to Temporal.
"""

from __future__ import annotations


class AdapterError(Exception):
    """Base class. ``system`` names the external system (erp, tax, payment, ...)."""

    def __init__(self, message: str, *, system: str = "unknown") -> None:
        super().__init__(message)
        self.message = message
        self.system = system


class TransientError(AdapterError):
    """Worth retrying with backoff: timeouts, 5xx, connection resets, lock contention."""


class RateLimitedError(TransientError):
    """The vendor asked us to slow down; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float, system: str = "unknown") -> None:
        super().__init__(message, system=system)
        self.retry_after = retry_after


class PermanentError(AdapterError):
    """Retrying cannot help until something changes (data, configuration): goes to an operator.

    ``reason`` is a short machine-readable code (``unknown_sku``, ``card_declined``) used as the
    ``AttentionReason`` search attribute.
    """

    def __init__(self, message: str, *, reason: str, system: str = "unknown") -> None:
        super().__init__(message, system=system)
        self.reason = reason


class CompareMismatchError(TransientError):
    """A compare-and-set write found the vendor's number moved since we last set it, and wrote nothing.

    ``mismatched`` maps each SKU whose compare value was stale to the value we compared with.
    Transient on purpose: a caller that does not handle it retries, and a retry re-reads what to
    compare with; the inventory sync handles it (re-reads the channel, journals the difference).
    """

    def __init__(self, message: str, *, mismatched: dict[str, int], system: str = "unknown") -> None:
        super().__init__(message, system=system)
        self.mismatched = mismatched
