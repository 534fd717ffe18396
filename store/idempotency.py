"""Idempotency records of the order and returns APIs (``Idempotency-Key``).

One row per caller (the API key's id), endpoint and key: the SHA-256 of the request body (its
canonical JSON), what it was about (order or return key) and, once answered, the answer. A
replay of the same body gets the stored answer; the same key with another body is refused. A
claim without an answer yet is locked for a while: a concurrent replay is told to retry, a
crashed one is taken over once the lock ends. Records expire after a retention and are purged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from store.columns import UtcDateTime, rowcount, utcnow
from store.db import Base, Store

KEY_MAX = 255


class IdempotencyRow(Base):
    __tablename__ = "api_idempotency"
    __table_args__ = (
        UniqueConstraint("principal", "endpoint", "idempotency_key", name="uq_api_idempotency_key"),
        Index("ix_api_idempotency_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    principal: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(KEY_MAX))
    request_sha256: Mapped[str] = mapped_column(String(64))
    resource_key: Mapped[str] = mapped_column(String(1000))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class Claimed:
    """This request owns the key: process it, then ``complete`` or ``abandon``."""

    record_id: int


@dataclass(frozen=True)
class Replay:
    status_code: int
    response: dict[str, Any]


@dataclass(frozen=True)
class Reused:
    """The key was used for a different request, about ``resource_key``."""

    resource_key: str


@dataclass(frozen=True)
class InProgress:
    """The same request is being processed right now."""


Begun = Claimed | Replay | Reused | InProgress


def begin(
    store: Store,
    *,
    principal: str,
    endpoint: str,
    key: str,
    request_sha256: str,
    resource_key: str,
    retention: timedelta,
    lock: timedelta,
    now: datetime | None = None,
) -> Begun:
    """Claim ``key`` for this request, or say what an earlier request with it became."""
    now = now or utcnow()
    for _ in range(3):
        try:
            with store.session() as s:
                row = s.scalars(
                    select(IdempotencyRow).where(
                        IdempotencyRow.principal == principal,
                        IdempotencyRow.endpoint == endpoint,
                        IdempotencyRow.idempotency_key == key,
                    )
                ).first()
                if row is not None and row.expires_at <= now:
                    s.delete(row)
                    s.flush()
                    row = None
                if row is None:
                    row = IdempotencyRow(
                        principal=principal,
                        endpoint=endpoint,
                        idempotency_key=key,
                        request_sha256=request_sha256,
                        resource_key=resource_key[:1000],
                        status_code=None,
                        response=None,
                        created_at=now,
                        expires_at=now + retention,
                        locked_until=now + lock,
                    )
                    s.add(row)
                    s.flush()
                    return Claimed(row.id)
                if row.request_sha256 != request_sha256:
                    return Reused(row.resource_key)
                if row.response is not None and row.status_code is not None:
                    return Replay(row.status_code, dict(row.response))
                if row.locked_until is not None and row.locked_until > now:
                    return InProgress()
                row.locked_until = now + lock  # the earlier attempt died: take it over
                return Claimed(row.id)
        except IntegrityError:
            continue  # a concurrent request inserted the key first: look again
    return InProgress()


def complete(store: Store, record_id: int, status_code: int, response: dict[str, Any]) -> None:
    with store.session() as s:
        row = s.get(IdempotencyRow, record_id)
        if row is not None:
            row.status_code = status_code
            row.response = response
            row.locked_until = None


def abandon(store: Store, record_id: int) -> None:
    """The request failed (nothing was accepted): the key is free for a corrected request."""
    with store.session() as s:
        s.execute(
            delete(IdempotencyRow).where(IdempotencyRow.id == record_id, IdempotencyRow.status_code.is_(None))
        )


def purge_expired(store: Store, *, now: datetime | None = None) -> int:
    with store.session() as s:
        result = s.execute(delete(IdempotencyRow).where(IdempotencyRow.expires_at <= (now or utcnow())))
        return rowcount(result)
