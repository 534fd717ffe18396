"""BigCommerce webhook signatures: the Standard Webhooks scheme.

Follows ``shared/contracts/bigcommerce_adobe_commerce.md``. Each callback carries
``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: a
space-separated list of ``v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{raw body}"))>``.
Any ``v1`` entry matching under any configured secret is valid (rotation), and the timestamp
must be within :data:`TOLERANCE` of now, in either direction (replays and clock skew).

The key: a secret written ``whsec_<base64>`` (the Standard Webhooks form, as in the
contract's test vector) is the base64-decoded part after the prefix; any other secret is a
BigCommerce app client secret, whose UTF-8 bytes are the key (BigCommerce's samples hand the
library ``base64(client_secret)``, which it decodes again).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
TOLERANCE = timedelta(minutes=5)
_PREFIX = "whsec_"


class SignatureError(ValueError):
    """A callback that does not verify. ``reason``: ``missing_signature``, ``invalid_timestamp``,
    ``timestamp_out_of_tolerance`` or ``invalid_signature``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def signing_key(secret: str) -> bytes:
    """The HMAC key for ``secret`` (see the module docstring). Raises ValueError for a bad ``whsec_``."""
    if secret.startswith(_PREFIX):
        try:
            return base64.b64decode(secret[len(_PREFIX) :], validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    return secret.encode("utf-8")


def _digest(msg_id: str, timestamp: str, body: bytes, secret: str) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(signing_key(secret), signed, hashlib.sha256).digest()


def sign(msg_id: str, timestamp: int | str, body: bytes, secret: str) -> str:
    """The ``webhook-signature`` value (one ``v1`` entry) for a callback: what fakes send."""
    return "v1," + base64.b64encode(_digest(msg_id, str(timestamp), body, secret)).decode("ascii")


def check(
    body: bytes,
    *,
    msg_id: str | None,
    timestamp: str | None,
    signature: str | None,
    secrets: Sequence[str],
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> datetime:
    """Verify a callback, returning its timestamp; raise :class:`SignatureError` if it fails.

    ``now`` must be timezone-aware. Signatures are compared in constant time with no early
    exit; blank secrets are skipped (a blank key is a misconfiguration, not a secret).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not msg_id or not timestamp or not signature:
        raise SignatureError(
            "missing_signature", "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    ts = timestamp.strip()
    if not ts.isascii() or not ts.isdigit() or len(ts) > 12:
        raise SignatureError("invalid_timestamp", f"webhook-timestamp {timestamp!r} is not Unix seconds")
    skew = abs(now.timestamp() - int(ts))
    if skew > tolerance.total_seconds():
        raise SignatureError(
            "timestamp_out_of_tolerance",
            f"webhook-timestamp {ts} is {skew:.0f} s from now (tolerance {tolerance.total_seconds():.0f} s)",
        )
    sent = datetime.fromtimestamp(int(ts), tz=now.tzinfo)
    if isinstance(secrets, str):
        secrets = [secrets]
    given: list[bytes] = []
    for entry in signature.split():
        version, _, value = entry.partition(",")
        if version == "v1" and value:
            try:
                given.append(base64.b64decode(value, validate=True))
            except binascii.Error:
                continue
    valid = False
    for secret in secrets:
        if secret:
            expected = _digest(msg_id.strip(), ts, body, secret)
            for candidate in given:
                valid |= hmac.compare_digest(expected, candidate)
    if not valid:
        raise SignatureError("invalid_signature", "no v1 signature matches a configured secret")
    return sent


def verify(
    body: bytes,
    *,
    msg_id: str | None,
    timestamp: str | None,
    signature: str | None,
    secrets: Sequence[str],
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> bool:
    """:func:`check` as a yes/no answer."""
    try:
        check(
            body,
            msg_id=msg_id,
            timestamp=timestamp,
            signature=signature,
            secrets=secrets,
            now=now,
            tolerance=tolerance,
        )
    except SignatureError:
        return False
    return True
