"""findings: reconciliation findings, watermarks, staged channel orders, inventory accuracy

Revision ID: 0009_findings
Revises: 0001_baseline
Create Date: 2026-12-01

A branch of its own (store.migrate upgrades "heads"): no foreign keys to other branches'
tables. Hand-written to mirror store/findings.py and store/reconcile.py.
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009_findings"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(20, 4)


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "reconcile_findings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("natural_key", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("systems", sa.String(200), nullable=False),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("expected", MONEY, nullable=True),
        sa.Column("actual", MONEY, nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        _ts("decided_at", nullable=True),
        _ts("healed_at", nullable=True),
        _ts("first_seen"),
        _ts("last_seen"),
        sa.Column("sightings", sa.Integer(), nullable=False),
        sa.Column("last_run", sa.String(300), nullable=True),
        sa.UniqueConstraint("natural_key", name="uq_reconcile_findings_natural_key"),
        sa.CheckConstraint(
            "status IN ('open', 'healed', 'resolved', 'ignored')", name="ck_reconcile_findings_status"
        ),
    )
    op.create_index("ix_reconcile_findings_status_kind", "reconcile_findings", ["status", "kind"])
    op.create_index("ix_reconcile_findings_last_seen", "reconcile_findings", ["last_seen"])
    op.create_table(
        "reconcile_watermarks",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("scope", sa.String(64), primary_key=True),
        _ts("until_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "reconcile_channel_orders",
        sa.Column("run_key", sa.String(200), primary_key=True),
        sa.Column("external_id", sa.String(200), primary_key=True),
        sa.Column("workflow_id", sa.String(300), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        _ts("updated_at"),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("lines_total", MONEY, nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        _ts("staged_at"),
    )
    op.create_index("ix_reconcile_channel_orders_staged_at", "reconcile_channel_orders", ["staged_at"])
    op.create_table(
        "inventory_accuracy",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(64), nullable=False),
        _ts("measured_at"),
        sa.Column("skus_compared", sa.Integer(), nullable=False),
        sa.Column("skus_matching", sa.Integer(), nullable=False),
        sa.Column("skus_healed", sa.Integer(), nullable=False),
        sa.Column("run", sa.String(300), nullable=True),
    )
    op.create_index(
        "ix_inventory_accuracy_channel_measured", "inventory_accuracy", ["channel", "measured_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_inventory_accuracy_channel_measured", table_name="inventory_accuracy")
    op.drop_table("inventory_accuracy")
    op.drop_index("ix_reconcile_channel_orders_staged_at", table_name="reconcile_channel_orders")
    op.drop_table("reconcile_channel_orders")
    op.drop_table("reconcile_watermarks")
    op.drop_index("ix_reconcile_findings_last_seen", table_name="reconcile_findings")
    op.drop_index("ix_reconcile_findings_status_kind", table_name="reconcile_findings")
    op.drop_table("reconcile_findings")
