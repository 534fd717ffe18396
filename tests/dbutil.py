"""A fresh, isolated database for a test: a PostgreSQL schema when DATABASE_URL is set,
else a SQLite file. Tables are created by the real migrations."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text


def postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL")
    return url if url and url.startswith("postgresql") else None


@contextmanager
def fresh_database_url(tmp: Path) -> Iterator[str]:
    pg = postgres_url()
    if pg is None:
        yield f"sqlite:///{tmp / f'store-{uuid.uuid4().hex[:8]}.db'}"
        return
    schema = f"rc_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg else "?"
    try:
        yield f"{pg}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
