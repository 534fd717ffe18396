"""api keys: keys for the platform's own HTTP APIs (hashed) and Idempotency-Key records

Revision ID: 0010_api_keys
Revises: 0001_baseline
Create Date: 2026-12-05

A branch of its own (store.migrate upgrades "heads"): no foreign keys to other branches'
tables. Hand-written to mirror store/apikeys.py and store/idempotency.py; tests/test_apikeys.py
compares the migrated schema with the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_api_keys"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(200), nullable=True),
        _ts("last_used_at", nullable=True),
        _ts("revoked_at", nullable=True),
    )
    op.create_index("ix_api_keys_name", "api_keys", ["name"])
    op.create_table(
        "api_idempotency",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("resource_key", sa.String(1000), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(none_as_null=True), nullable=True),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("locked_until", nullable=True),
        sa.UniqueConstraint("principal", "endpoint", "idempotency_key", name="uq_api_idempotency_key"),
    )
    op.create_index("ix_api_idempotency_expires_at", "api_idempotency", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_api_idempotency_expires_at", table_name="api_idempotency")
    op.drop_table("api_idempotency")
    op.drop_index("ix_api_keys_name", table_name="api_keys")
    op.drop_table("api_keys")
