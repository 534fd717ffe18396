"""Persistence: the builtin systems' ledgers (ERP, tax, payment, WMS, carrier), webhook inbox,
cross-system references. SQLAlchemy 2 models, Alembic migrations; SQLite or PostgreSQL."""
