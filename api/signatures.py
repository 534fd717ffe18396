"""Webhook signature checks with secret rotation.

Each sender has a current secret and, during a rotation, the previous ones: they are accepted
alongside the current one until ``<kind>_webhook_old_secrets_until`` (or until removed, when no
time is set). Every secret is tried, without an early exit, so the time taken does not say
which one matched; comparisons are constant-time over the raw body's signature.

BigCommerce signs more than the body (Standard Webhooks: id, timestamp and body, within a
tolerance), so its check is ``adapters.channels.bigcommerce.parse_webhook`` with
:func:`accepted_secrets`; :func:`verify` covers the senders that sign the body alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import SecretStr

from adapters.channels.shopify import signature as shopify_signature
from adapters.channels.woocommerce import signature as woocommerce_signature
from adapters.signing import verify_signature
from settings import Settings

Sender = Literal["shopify", "wms", "carrier", "woocommerce", "bigcommerce"]


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def accepted_secrets(settings: Settings, sender: Sender, now: datetime) -> list[str]:
    """The current secret, then the old ones while their rotation window is open."""
    current: SecretStr = getattr(settings, f"{sender}_webhook_secret")
    old: list[SecretStr] = getattr(settings, f"{sender}_webhook_secrets_old")
    until: datetime | None = getattr(settings, f"{sender}_webhook_old_secrets_until")
    secrets = [current.get_secret_value()]
    if until is None or _aware(now) < _aware(until):
        secrets += [s.get_secret_value() for s in old]
    return [s for s in secrets if s]


def verify(sender: Sender, settings: Settings, raw: bytes, header: str | None, now: datetime) -> bool:
    """Whether ``header`` signs the raw body under an accepted secret of ``sender``."""
    if sender == "bigcommerce":
        raise ValueError("BigCommerce callbacks are verified by bigcommerce.parse_webhook (several headers)")
    secrets = accepted_secrets(settings, sender, now)
    if sender == "shopify":
        return shopify_signature.verify(raw, header, secrets)
    if sender == "woocommerce":
        return woocommerce_signature.verify(raw, header, secrets)
    valid = False
    for secret in secrets:
        valid |= verify_signature(raw, header, secret)
    return valid
