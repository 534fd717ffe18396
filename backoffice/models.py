"""Every table of the one database: the platform's state (``store.models``) and the builtin
back office's books, so Base.metadata (and Alembic) sees them all."""

import store.models
from backoffice import carrier, channel, erp, payment, tax, wms
from store.db import Base

__all__ = ["Base", "carrier", "channel", "erp", "payment", "store", "tax", "wms"]
