"""channel: the builtin channel's notifications (fulfilments, refunds, cancellations)

Revision ID: 0004_channel
Revises: 0001_baseline
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_channel"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_notifications",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("external_order_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("amount", sa.Numeric(20, 4), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('fulfillment', 'refund', 'cancelled')", name="ck_channel_notifications_kind"
        ),
        sa.UniqueConstraint("idempotency_key", name="uq_channel_notifications_idempotency_key"),
    )
    op.create_index(
        "ix_channel_notifications_external_order_id", "channel_notifications", ["external_order_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_channel_notifications_external_order_id", table_name="channel_notifications")
    op.drop_table("channel_notifications")
