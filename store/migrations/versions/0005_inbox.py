"""inbox: the webhook inbox (every accepted delivery, kept before it is acknowledged) and the
rejected deliveries; also merges the table branches into one head

Revision ID: 0005_inbox
Revises: 0002_ledgers, 0003_fulfilment, 0004_channel, 0006_inventory, 0007_channel_stock
Create Date: 2026-11-26

Hand-written to mirror store/inbox.py; tests/test_inbox.py compares the migrated schema with
the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_inbox"
# A merge revision: every table branch that existed when it was written ends here.
down_revision: str | Sequence[str] | None = (
    "0002_ledgers",
    "0003_fulfilment",
    "0004_channel",
    "0006_inventory",
    "0007_channel_stock",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_HOLDING = "status IN ('pending', 'relayed', 'ignored')"


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "webhook_inbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _ts("received_at"),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("delivery_id", sa.String(255), nullable=True),
        sa.Column("event_id", sa.String(255), nullable=True),
        sa.Column("dedupe_key", sa.String(500), nullable=False),
        sa.Column("business_key", sa.String(500), nullable=True),
        sa.Column(
            "duplicate_of",
            sa.Integer(),
            sa.ForeignKey("webhook_inbox.id", ondelete="SET NULL", name="fk_webhook_inbox_duplicate_of"),
            nullable=True,
        ),
        sa.Column("workflow_id", sa.String(1000), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("signal", sa.String(64), nullable=True),
        sa.Column("argument", sa.JSON(), nullable=False),
        sa.Column("correlation_id", sa.String(255), nullable=False),
        sa.Column("relay_id", sa.String(64), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        _ts("lease_until", nullable=True),
        sa.Column("last_error", sa.String(2000), nullable=True),
        sa.Column("outcome", sa.String(2000), nullable=True),
        _ts("settled_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'relayed', 'duplicate', 'ignored', 'rejected')",
            name="ck_webhook_inbox_status",
        ),
        sa.CheckConstraint("action IN ('start', 'signal')", name="ck_webhook_inbox_action"),
    )
    op.create_index(
        "ux_webhook_inbox_dedupe_key",
        "webhook_inbox",
        ["dedupe_key"],
        unique=True,
        sqlite_where=sa.text(KEY_HOLDING),
        postgresql_where=sa.text(KEY_HOLDING),
    )
    op.create_index(
        "ux_webhook_inbox_business_key",
        "webhook_inbox",
        ["business_key"],
        unique=True,
        sqlite_where=sa.text(KEY_HOLDING),
        postgresql_where=sa.text(KEY_HOLDING),
    )
    op.create_index("ix_webhook_inbox_due", "webhook_inbox", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_inbox_workflow_id", "webhook_inbox", ["workflow_id"])
    op.create_index("ix_webhook_inbox_received_at", "webhook_inbox", ["received_at"])

    op.create_table(
        "webhook_rejections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _ts("received_at"),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(64), nullable=True),
        sa.Column("delivery_id", sa.String(255), nullable=True),
        sa.Column("event_id", sa.String(255), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(2000), nullable=False),
        sa.Column("path", sa.String(255), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("body_sha256", sa.String(64), nullable=True),
        sa.Column("body_size", sa.Integer(), nullable=True),
        sa.Column(
            "inbox_id",
            sa.Integer(),
            sa.ForeignKey("webhook_inbox.id", ondelete="SET NULL", name="fk_webhook_rejections_inbox_id"),
            nullable=True,
        ),
    )
    op.create_index("ix_webhook_rejections_received_at", "webhook_rejections", ["received_at"])
    op.create_index("ix_webhook_rejections_inbox_id", "webhook_rejections", ["inbox_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_rejections_inbox_id", table_name="webhook_rejections")
    op.drop_index("ix_webhook_rejections_received_at", table_name="webhook_rejections")
    op.drop_table("webhook_rejections")
    op.drop_index("ix_webhook_inbox_received_at", table_name="webhook_inbox")
    op.drop_index("ix_webhook_inbox_workflow_id", table_name="webhook_inbox")
    op.drop_index("ix_webhook_inbox_due", table_name="webhook_inbox")
    op.drop_index("ux_webhook_inbox_business_key", table_name="webhook_inbox")
    op.drop_index("ux_webhook_inbox_dedupe_key", table_name="webhook_inbox")
    op.drop_table("webhook_inbox")
