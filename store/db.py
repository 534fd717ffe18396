"""Engine and sessions for SQLite (embedded default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Numeric, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

# Enough for any ISO 4217 minor unit (at most 3) and stock-weighted averages.
MONEY = Numeric(20, 4)


class Base(DeclarativeBase):
    type_annotation_map = {Decimal: MONEY}


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, immediate: bool = True, **kwargs: Any) -> Engine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _rec: Any) -> None:
            # Let SQLAlchemy issue BEGIN itself (below) instead of pysqlite's lazy BEGIN.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the lock up front: read-then-write (allocation) cannot interleave,
            # which is SQLite's equivalent of PostgreSQL's SELECT ... FOR UPDATE. Read-only
            # sessions (Store.reading) start deferred: in WAL mode they read a snapshot and
            # never queue behind writers.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


class Store:
    """An engine plus a session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite: a second engine whose transactions do not take the write lock.
        self._read_engine = make_engine(url, immediate=False) if is_sqlite(url) else self.engine
        self._reads = sessionmaker(self._read_engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commits on success, rolls back on error."""
        with self._sessions.begin() as s:
            yield s

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only transaction (a consistent snapshot); it never waits for writers."""
        with self._reads.begin() as s:
            yield s

    def dispose(self) -> None:
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()
