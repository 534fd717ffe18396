"""count guard: when each position was last counted, and stale counts marked in the journal

Revision ID: 0011_count_guard
Revises: 0005_inbox
Create Date: 2026-11-27

A cycle count older than the newest count already applied at its (sku, location) changes
nothing (adapters/erp/inventory.py): ``erp_stock.counted_at`` holds that newest count's time,
``inventory_movements.stale`` marks the counts journalled without effect. Follows 0005_inbox,
the revision both tables' branches merge into. Positions counted before this revision get
``counted_at`` from their journal, so the guard holds for them from the start.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_count_guard"
down_revision: str | None = "0005_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("erp_stock", sa.Column("counted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "inventory_movements",
        sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # Portable SQL (SQLite and PostgreSQL): the newest journalled count per position.
    op.execute(
        "UPDATE erp_stock SET counted_at = ("
        " SELECT MAX(m.occurred_at) FROM inventory_movements m"
        " WHERE m.sku = erp_stock.sku AND m.location = erp_stock.location AND m.kind = 'cycle_count')"
    )


def downgrade() -> None:
    with op.batch_alter_table("inventory_movements") as batch:
        batch.drop_column("stale")
    with op.batch_alter_table("erp_stock") as batch:
        batch.drop_column("counted_at")
