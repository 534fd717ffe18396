"""Imports every table module of the platform's own state so Base.metadata sees its tables."""

from store import apikeys as apikeys
from store import channel_stock, inventory
from store import findings as findings
from store import idempotency as idempotency
from store import inbox as inbox
from store import reconcile as reconcile
from store.db import Base

__all__ = ["Base", "channel_stock", "inventory"]
