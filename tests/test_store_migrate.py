from sqlalchemy import inspect

from store.db import Store


def test_migrations_reach_head_and_record_version(store: Store) -> None:
    names = inspect(store.engine).get_table_names()
    assert "alembic_version" in names
