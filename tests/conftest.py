from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store.db import Store
from store.migrate import upgrade
from tests.dbutil import fresh_database_url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store on PostgreSQL (DATABASE_URL) or SQLite."""
    with fresh_database_url(tmp_path) as url:
        upgrade(url)
        s = Store(url)
        try:
            yield s
        finally:
            s.dispose()
