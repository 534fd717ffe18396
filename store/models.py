"""Imports every table module so Base.metadata (and Alembic) sees all tables."""

from store.db import Base

__all__ = ["Base"]
import store.carrier, store.wms  # noqa: E401, F401, I001  (builtin WMS and carrier tables)
from store import erp, payment, tax  # noqa: F401  (builtin ERP, tax and payment ledgers)
from store import channel  # noqa: F401  (builtin channel notifications)
