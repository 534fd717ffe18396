"""WooCommerce webhook signatures: base64(HMAC-SHA256(webhook secret, raw body)).

Follows ``shared/contracts/woocommerce.md``: WooCommerce signs the exact JSON body it sends
(``X-WC-Webhook-Signature``) with the webhook's secret after ``wp_specialchars_decode(...,
ENT_QUOTES)``, so a secret stored as ``a&amp;b`` signs with the key ``a&b``. There is no
timestamp, hence no replay window: duplicates are caught by the delivery id and by the
order's deterministic workflow id. The activation ping is sent unsigned (see
:func:`adapters.channels.woocommerce.webhook.is_ping`).

During a secret rotation the store may still sign with the old secret, so :func:`verify`
accepts any of several secrets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

HEADER = "X-WC-Webhook-Signature"

# wp_specialchars_decode($text, ENT_QUOTES): named and numeric forms of & < > " ' only,
# in a single pass (so "&amp;lt;" becomes "&lt;", not "<").
_ENTITY = re.compile(r"&(?:quot|lt|gt|amp|#0*(?:34|39|60|62|38)|#[xX]0*(?:22|27|26));")
_DECODED = {"quot": '"', "lt": "<", "gt": ">", "amp": "&", "34": '"', "39": "'", "60": "<", "62": ">",
            "38": "&", "22": '"', "27": "'", "26": "&"}  # fmt: skip


def _entity(match: re.Match[str]) -> str:
    name = match.group(0)[1:-1].lstrip("#").lstrip("xX").lstrip("0") or "0"
    return _DECODED[name]


def wp_specialchars_decode(text: str) -> str:
    """WordPress' ``wp_specialchars_decode($text, ENT_QUOTES)``: what WooCommerce keys the HMAC with."""
    return _ENTITY.sub(_entity, text) if "&" in text else text


def sign(body: bytes, secret: str) -> str:
    """The ``X-WC-Webhook-Signature`` WooCommerce sends for ``body`` (what fakes send too)."""
    key = wp_specialchars_decode(secret).encode("utf-8")
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


def verify(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True when ``header`` is the signature of the raw ``body`` under any of ``secrets``.

    Constant-time comparison of the base64 text, no early exit across secrets. A missing or
    empty header never verifies, and blank secrets are skipped: WooCommerce's default empty
    secret (the contract's test vector) is a misconfiguration, not a key. A single ``str``
    is one secret, not a sequence of characters.
    """
    if not header:
        return False
    given = header.strip().encode("utf-8")
    if isinstance(secrets, str):
        secrets = [secrets]
    valid = False
    for secret in secrets:
        if secret:
            valid |= hmac.compare_digest(sign(body, secret).encode("ascii"), given)
    return valid
