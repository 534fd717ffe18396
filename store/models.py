"""Imports every table module so Base.metadata (and Alembic) sees all tables."""

from store import apikeys as apikeys
from store import carrier, channel, channel_stock, erp, inventory, payment, tax, wms
from store import findings as findings
from store import idempotency as idempotency
from store import inbox as inbox
from store import reconcile as reconcile
from store.db import Base

__all__ = ["Base", "carrier", "channel", "channel_stock", "erp", "inventory", "payment", "tax", "wms"]
