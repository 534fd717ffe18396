"""Alembic environment: online migrations against the URL set by store.migrate."""

from __future__ import annotations

from alembic import context

import backoffice.models
from store.db import make_engine

config = context.config
# One database, one migration history: the platform's tables and the builtin back office's.
target_metadata = backoffice.models.Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
