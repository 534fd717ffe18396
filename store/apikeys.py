"""API keys for the platform's own HTTP APIs (orders, returns, availability, inventory events).

A key is ``rck_<id>_<secret>``: the id is public (listed, used to revoke), the secret is 256
random bits shown once at creation. Only the SHA-256 of the whole key is stored: a fast hash is
enough for a random 256-bit secret (nothing to brute-force), and a database dump holds no
usable key. Vendor webhooks do not use keys; they keep their signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from store.columns import UtcDateTime, utcnow
from store.db import Base, Store

KEY_PREFIX = "rck_"
NAME_MAX = 100
# Every scope there is; each endpoint needs one (api/auth.py maps them).
SCOPES: tuple[str, ...] = (
    "orders:write",
    "orders:read",
    "returns:write",
    "returns:read",
    "inventory:write",
    "availability:read",
)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_name", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(200))
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def summary(self) -> dict[str, Any]:
        """What `retail apikeys list` shows: never the secret, never its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=tuple(row.scopes),
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def digest(presented: str) -> str:
    return hashlib.sha256(presented.encode("utf-8", "replace")).hexdigest()


def parse_id(presented: str) -> str | None:
    """The public id inside a presented key, or None when it is not shaped like one of ours."""
    if not presented.startswith(KEY_PREFIX):
        return None
    parts = presented[len(KEY_PREFIX) :].split("_", 1)
    if len(parts) != 2 or not parts[0].isalnum() or len(parts[0]) > 32 or not parts[1]:
        return None
    return parts[0]


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, deduplicated in a stable order; ValueError naming an unknown one."""
    wanted = list(dict.fromkeys(s.strip() for s in scopes))
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}")
    if not wanted:
        raise ValueError("a key needs at least one scope")
    return tuple(wanted)


def create_key(
    store: Store,
    name: str,
    scopes: Iterable[str],
    *,
    created_by: str | None = None,
    now: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret (the only time the secret exists outside the caller's hands)."""
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise ValueError(f"a key's name is 1 to {NAME_MAX} characters")
    checked = check_scopes(scopes)
    key_id = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiKeyRow(
        id=key_id,
        name=name,
        secret_sha256=digest(secret),
        scopes=list(checked),
        created_at=now or utcnow(),
        created_by=created_by[:200] if created_by else None,
        last_used_at=None,
        revoked_at=None,
    )
    with store.session() as s:
        s.add(row)
        s.flush()
        return _key(row), secret


def authenticate(store: Store, presented: str) -> ApiKey | None:
    """The active key ``presented`` is, or None (malformed, unknown or revoked: not told apart)."""
    key_id = parse_id(presented)
    if key_id is None:
        return None
    with store.reading() as s:
        row = s.get(ApiKeyRow, key_id)
        if row is None or not hmac.compare_digest(row.secret_sha256, digest(presented)):
            return None
        return _key(row) if row.revoked_at is None else None


def touch(store: Store, key_id: str, *, now: datetime | None = None) -> None:
    """Record that the key was used (callers throttle this: one write a minute, not per request)."""
    with store.session() as s:
        s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=now or utcnow()))


def list_keys(store: Store, *, include_revoked: bool = True) -> list[ApiKey]:
    query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
    if not include_revoked:
        query = query.where(ApiKeyRow.revoked_at.is_(None))
    with store.reading() as s:
        return [_key(r) for r in s.scalars(query)]


def revoke_key(store: Store, key_id: str, *, now: datetime | None = None) -> ApiKey:
    """Revoke a key (again is harmless: the first time is kept). ValueError when there is none."""
    with store.session() as s:
        row = s.get(ApiKeyRow, key_id)
        if row is None:
            raise ValueError(f"no API key {key_id!r}")
        if row.revoked_at is None:
            row.revoked_at = now or utcnow()
        s.flush()
        return _key(row)


def rotate_named_key(
    store: Store, name: str, scopes: Iterable[str], *, created_by: str | None = None
) -> tuple[ApiKey, str]:
    """Revoke every active key called ``name`` and create a new one: `retail dev` and `retail
    demo` mint a fresh key at each start, so only the one last printed works."""
    now = utcnow()
    with store.session() as s:
        s.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return create_key(store, name, scopes, created_by=created_by, now=now)
