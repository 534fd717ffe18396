"""Webhook plumbing shared by the builtin warehouse and carrier: signing, delivery, errors.

Both builtin systems sign the raw request body with HMAC-SHA256 and send the lowercase hex
digest as ``X-Retail-Signature: sha256=<hex>``. There is no timestamp in the signature (like
Shopify and EasyPost), so replays are handled by deduplicating on the payload's event id.
One implementation serves the simulators (signing) and the API (verification).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping

import httpx
from pydantic import ValidationError

SIGNATURE_HEADER = "X-Retail-Signature"
SIGNATURE_PREFIX = "sha256="

Poster = Callable[[str, bytes, Mapping[str, str]], Awaitable[int]]
"""Delivers one webhook: ``await post(url, raw_body, headers)`` returns the HTTP status code.
Raising (a connection error, a timeout) counts as a failed delivery."""


def sign(raw: bytes, secret: str) -> str:
    """The header value for ``raw``: ``sha256=<lowercase hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_PREFIX}{digest}"


def verify_signature(raw: bytes, header: str | None, secret: str) -> bool:
    """True when ``header`` is the signature of the exact bytes ``raw`` under ``secret``.

    Constant-time comparison, so the check leaks nothing about how much of a forged
    signature was right. A missing header, another scheme or an empty secret never verifies.
    """
    if not header or not secret:
        return False
    expected = sign(raw, secret)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8", "replace"))


def signed_headers(raw: bytes, secret: str) -> dict[str, str]:
    return {"Content-Type": "application/json", SIGNATURE_HEADER: sign(raw, secret)}


def as_poster(post: Poster | httpx.AsyncClient) -> Poster:
    """Accept either an ``httpx.AsyncClient`` (production) or a plain callable (tests)."""
    if isinstance(post, httpx.AsyncClient):
        client = post

        async def _post(url: str, raw: bytes, headers: Mapping[str, str]) -> int:
            response = await client.post(url, content=raw, headers=dict(headers))
            return response.status_code

        return _post
    return post


async def deliver(post: Poster, url: str, raw: bytes, secret: str) -> str | None:
    """POST one signed webhook. Returns None when the receiver acknowledged it (2xx), else why not.

    Never raises for a delivery problem: the caller keeps the webhook pending and retries.
    """
    try:
        status = await post(url, raw, signed_headers(raw, secret))
    except Exception as exc:  # any failure to deliver is retried later, whatever its type
        return f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= status < 300:
        return None
    return f"HTTP {status}"


def describe_errors(exc: ValidationError) -> str:
    """A one-line summary of a payload's validation errors, for 400 answers and logs."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
