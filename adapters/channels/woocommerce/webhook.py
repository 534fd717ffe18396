"""WooCommerce webhook deliveries: the headers and body of one POST, made into a :class:`WooEvent`.

Follows ``shared/contracts/woocommerce.md`` section 2. A delivery carries ``X-WC-Webhook-Topic``
(``order.created``, ``order.updated``, ``order.deleted``, ``order.restored``, ...),
``-Resource``, ``-Event``, ``-ID`` (the subscription), ``-Delivery-ID`` (unique per send),
``-Source`` (the store URL) and ``-Signature``. The body is the REST v3 representation of
the resource, except ``*.deleted`` (only ``{"id": <id>}``) and ``action.*``
(``{"action": ..., "arg": ...}``).

When a webhook is created or activated WooCommerce sends a **ping**: a form body
``webhook_id=<n>`` with no ``X-WC-*`` signature headers. It must be answered 200 or the
webhook is not activated; it carries nothing, so it is acknowledged without verification.

The order of checks at the route (see ``docs/adding-a-channel.md``): :func:`is_ping` -> 200;
otherwise :func:`adapters.channels.woocommerce.signature.verify` -> 401 when it fails; then
:func:`parse_webhook`. :func:`parse_webhook` itself never verifies (it has no secret).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

TOPIC_HEADER = "X-WC-Webhook-Topic"
RESOURCE_HEADER = "X-WC-Webhook-Resource"
EVENT_HEADER = "X-WC-Webhook-Event"
WEBHOOK_ID_HEADER = "X-WC-Webhook-ID"
DELIVERY_ID_HEADER = "X-WC-Webhook-Delivery-ID"
SOURCE_HEADER = "X-WC-Webhook-Source"

ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.deleted", "order.restored"})

_PING = re.compile(rb"webhook_id=(\d{1,20})")
_TOPIC = re.compile(r"[a-z_]+\.[A-Za-z0-9_\-]+")


class WebhookError(ValueError):
    """A delivery that is not a well-formed WooCommerce webhook; ``reason`` is a short code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class WooEvent:
    """One WooCommerce webhook delivery (or the activation ping).

    ``resource_id`` is the id in the body (the order id for ``order.*``) as text; ``payload``
    is the parsed body (the full order, or ``{"id": ...}`` for ``order.deleted``).
    """

    kind: Literal["ping", "delivery"]
    webhook_id: str | None
    topic: str | None = None
    resource: str | None = None
    event: str | None = None
    resource_id: str | None = None
    delivery_id: str | None = None
    source: str | None = None
    payload: dict[str, Any] | None = None

    @property
    def is_ping(self) -> bool:
        return self.kind == "ping"

    @property
    def is_order(self) -> bool:
        return self.topic in ORDER_TOPICS

    @property
    def dedupe_key(self) -> str | None:
        """Key for the webhook inbox: the delivery id, unique per send (WooCommerce never retries).

        It is *not* a stable event id: the same change delivered twice by two sends gets two
        ids, so handlers stay idempotent (workflow id per order, status checks) regardless.
        """
        if self.delivery_id is None:
            return None
        return f"woocommerce:{self.source or ''}:{self.delivery_id}"


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v.strip() for k, v in headers.items()}


def _ping_id(raw: bytes) -> str | None:
    match = _PING.fullmatch(raw.strip())
    return match.group(1).decode("ascii") if match else None


def is_ping(headers: Mapping[str, str], raw: bytes) -> bool:
    """The unsigned activation ping: no topic header and a ``webhook_id=<n>`` form body."""
    h = _headers(headers)
    return not h.get(TOPIC_HEADER.lower()) and _ping_id(raw) is not None


def _resource_id(body: dict[str, Any], resource: str) -> str | None:
    if resource == "action":
        return None
    value = body.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise WebhookError("missing_id", f"a {resource} webhook body needs an integer id, got {value!r}")
    return str(value).strip()


def parse_webhook(headers: Mapping[str, str], raw: bytes) -> WooEvent:
    """Read one delivery. Does **not** verify the signature: call ``signature.verify`` first.

    Raises :class:`WebhookError` for a delivery without a topic (that is not a ping), a topic
    that is not ``resource.event``, a body that is not a JSON object, or a resource body
    without its id.
    """
    h = _headers(headers)
    topic = h.get(TOPIC_HEADER.lower()) or None
    webhook_id = h.get(WEBHOOK_ID_HEADER.lower()) or None
    if topic is None:
        ping = _ping_id(raw)
        if ping is not None:
            return WooEvent(kind="ping", webhook_id=ping)
        raise WebhookError("missing_topic", f"no {TOPIC_HEADER} header and not a ping")
    if not _TOPIC.fullmatch(topic):
        raise WebhookError("unsupported_topic", f"{TOPIC_HEADER} {topic!r} is not <resource>.<event>")
    resource, _, event = topic.partition(".")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise WebhookError("malformed_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise WebhookError("malformed_json", f"the body is a JSON {type(body).__name__}, not an object")
    return WooEvent(
        kind="delivery",
        webhook_id=webhook_id,
        topic=topic,
        resource=h.get(RESOURCE_HEADER.lower()) or resource,
        event=h.get(EVENT_HEADER.lower()) or event,
        resource_id=_resource_id(body, resource),
        delivery_id=h.get(DELIVERY_ID_HEADER.lower()) or None,
        source=h.get(SOURCE_HEADER.lower()) or None,
        payload=body,
    )
