"""Open the store the way every process does: migrate, then seed defaults once."""

from __future__ import annotations

from backoffice.tax import list_rates, seed_default_rates
from store.db import Store
from store.migrate import upgrade


def open_store(url: str) -> Store:
    """Migrate to the latest schema and, on a new store, install the default tax rate table.

    Rates are seeded only when none exist, so rates an operator changed are never reset."""
    upgrade(url)
    store = Store(url)
    if not list_rates(store):
        seed_default_rates(store)
    return store
