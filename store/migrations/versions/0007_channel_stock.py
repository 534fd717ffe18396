"""channel_stock: what each channel was last told per SKU

Revision ID: 0007_channel_stock
Revises: 0001_baseline
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_channel_stock"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_stock",
        sa.Column("channel", sa.String(64), primary_key=True),
        sa.Column("sku", sa.String(128), primary_key=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("ledger_seq", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("told_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("channel_stock")
