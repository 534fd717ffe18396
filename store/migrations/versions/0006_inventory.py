"""inventory: the append-only stock journal and per-channel selling policy

Revision ID: 0006_inventory
Revises: 0001_baseline
Create Date: 2026-11-27

A branch of its own (store.migrate upgrades "heads"): no foreign keys to other branches'
tables. Hand-written to mirror store/inventory.py; a test compares the migrated schema with
the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_inventory"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (
    "receipt",
    "adjustment",
    "transfer",
    "cycle_count",
    "reservation",
    "release",
    "shipment",
    "return_restock",
    "channel_sale",
)


def upgrade() -> None:
    op.create_table(
        "inventory_movements",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("leg", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("sku", sa.String(100), nullable=False),
        sa.Column("location", sa.String(100), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("on_hand_delta", sa.Integer(), nullable=False),
        sa.Column("reserved_delta", sa.Integer(), nullable=False),
        sa.Column("on_hand_after", sa.Integer(), nullable=False),
        sa.Column("reserved_after", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("event_id", "leg", name="uq_inventory_movements_event_leg"),
        sa.CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in KINDS) + ")", name="ck_inventory_movements_kind"
        ),
    )
    op.create_index("ix_inventory_movements_sku_id", "inventory_movements", ["sku", "id"])
    op.create_table(
        "inventory_channel_policies",
        sa.Column("channel", sa.String(64), primary_key=True),
        sa.Column("locations", sa.JSON(), nullable=True),
        sa.Column("safety_buffer", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("safety_buffer >= 0", name="ck_inventory_channel_policies_buffer"),
    )


def downgrade() -> None:
    op.drop_table("inventory_channel_policies")
    op.drop_index("ix_inventory_movements_sku_id", table_name="inventory_movements")
    op.drop_table("inventory_movements")
