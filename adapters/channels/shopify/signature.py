"""Shopify webhook signatures: base64(HMAC-SHA256(app client secret, raw body)).

Shopify signs only the raw body, with no timestamp, so verification must run on the bytes
as received (never re-serialised JSON) and staleness is judged elsewhere. During a secret
rotation Shopify may keep signing with the old secret for up to an hour, so ``verify``
accepts any of several secrets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

HEADER = "X-Shopify-Hmac-Sha256"


def sign(body: bytes, secret: str) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value Shopify sends for ``body`` (what fakes send too)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True when ``header`` is the signature of ``body`` under any of ``secrets``.

    Compared in constant time on the base64 text. A missing or empty header, or no usable
    secret, is never valid. Empty secrets are skipped: a blank key is a misconfiguration,
    not a secret. A single ``str`` is taken as one secret, not as a sequence of characters.
    """
    if not header:
        return False
    given = header.strip().encode("utf-8")
    if isinstance(secrets, str):
        secrets = [secrets]
    valid = False
    for secret in secrets:
        if secret:
            # No early exit: time does not reveal which of the secrets matched.
            valid |= hmac.compare_digest(sign(body, secret).encode("ascii"), given)
    return valid
