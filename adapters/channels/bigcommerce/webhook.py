"""BigCommerce webhook callbacks: verified, then made into a :class:`BigCommerceEvent`.

Follows ``shared/contracts/bigcommerce_adobe_commerce.md``. Callbacks are *thin*: the body
names what changed and the adapter fetches the rest (``BigCommerceClient.get_order``)::

    {"scope": "store/order/created", "store_id": "1025646", "producer": "stores/{store_hash}",
     "created_at": 1561479335, "hash": "<40-hex SHA-1 of data>", "data": {"type": "order", "id": 250}}

BigCommerce retries failed callbacks for up to 48 hours, so duplicates are expected. The
contract documents ``hash`` (SHA-1 of ``data``) as the dedupe key; but ``data`` is the same for
two genuine ``store/order/updated`` events on one order, so :attr:`BigCommerceEvent.dedupe_key`
adds ``created_at`` (fixed for retries of one event) to ``scope`` and ``hash``. A duplicate
that slips through is harmless (handlers fetch the current order and start workflows by
deterministic id); a real event taken for a duplicate would be lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.channels.bigcommerce.signature import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOLERANCE,
    check,
)

ORDER_SCOPE_PREFIX = "store/order/"


class WebhookError(ValueError):
    """A verified callback whose body is not a BigCommerce webhook envelope; ``reason`` is a code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class BigCommerceEvent:
    """One verified callback. ``data`` is the envelope's ``data`` object as sent."""

    message_id: str
    sent_at: datetime
    scope: str
    store_id: str | None
    producer: str | None
    created_at: int | None
    hash: str | None
    data: dict[str, Any]

    @property
    def store_hash(self) -> str | None:
        """``{store_hash}`` from ``producer`` (``stores/{store_hash}``): which store's API to call."""
        if self.producer and self.producer.startswith("stores/"):
            return self.producer.removeprefix("stores/") or None
        return None

    @property
    def is_order(self) -> bool:
        return self.scope.startswith(ORDER_SCOPE_PREFIX)

    @property
    def order_id(self) -> str | None:
        """The order the event is about, for ``store/order/*`` scopes.

        ``data.id`` when ``data.type`` is ``order``; ``data.order_id`` for transaction events;
        ``data.resource_id`` for order metafield events.
        """
        if not self.is_order:
            return None
        if self.data.get("type") == "order":
            value = self.data.get("id")
        elif "order_id" in self.data:
            value = self.data.get("order_id")
        else:
            value = self.data.get("resource_id")
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
            return None
        return str(value).strip()

    @property
    def status_change(self) -> tuple[int, int] | None:
        """``(previous_status_id, new_status_id)`` for ``store/order/statusUpdated``."""
        status = self.data.get("status")
        if not isinstance(status, dict):
            return None
        before, after = status.get("previous_status_id"), status.get("new_status_id")
        if isinstance(before, int) and isinstance(after, int):
            return before, after
        return None

    @property
    def dedupe_key(self) -> str:
        """``bigcommerce:{store}:{scope}:{hash}:{created_at}``, or the ``webhook-id`` without a hash."""
        if self.hash is None:
            return f"bigcommerce:{self.store_id or ''}:msg:{self.message_id}"
        return f"bigcommerce:{self.store_id or ''}:{self.scope}:{self.hash}:{self.created_at or ''}"


def parse_webhook(
    headers: Mapping[str, str],
    raw: bytes,
    secrets: Sequence[str],
    now: datetime,
    *,
    tolerance: timedelta = TOLERANCE,
) -> BigCommerceEvent:
    """Verify the Standard Webhooks signature of ``raw``, then read the envelope.

    Raises ``SignatureError`` (answer 401) before looking at the body, then
    :class:`WebhookError` (answer 400) for a body that is not a JSON envelope with a ``scope``
    and a ``data`` object.
    """
    h = {k.lower(): v.strip() for k, v in headers.items()}
    msg_id = h.get(ID_HEADER) or None
    sent_at = check(
        raw,
        msg_id=msg_id,
        timestamp=h.get(TIMESTAMP_HEADER),
        signature=h.get(SIGNATURE_HEADER),
        secrets=secrets,
        now=now,
        tolerance=tolerance,
    )
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise WebhookError("malformed_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise WebhookError("malformed_json", f"the body is a JSON {type(body).__name__}, not an object")
    scope = body.get("scope")
    if not isinstance(scope, str) or not scope.startswith("store/"):
        raise WebhookError("missing_scope", f"scope {scope!r} is not a store/... scope")
    data = body.get("data")
    if not isinstance(data, dict):
        raise WebhookError("missing_data", "the envelope has no data object")
    created_at = body.get("created_at")
    digest = body.get("hash")
    store_id = body.get("store_id")
    producer = body.get("producer")
    return BigCommerceEvent(
        message_id=msg_id or "",  # never empty: check() refuses a callback without one
        sent_at=sent_at.astimezone(UTC),
        scope=scope,
        store_id=str(store_id)
        if isinstance(store_id, str | int) and not isinstance(store_id, bool)
        else None,
        producer=producer if isinstance(producer, str) else None,
        created_at=created_at if isinstance(created_at, int) and not isinstance(created_at, bool) else None,
        hash=digest if isinstance(digest, str) and digest else None,
        data=data,
    )
