"""fulfilment: the builtin warehouse (fulfillment orders, lines, webhook outbox) and the
builtin carrier (labels, tracking webhook outbox)

Revision ID: 0003_fulfilment
Revises: 0001_baseline
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_fulfilment"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _outbox_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        _ts("delivered_at", nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "wms_fulfillment_orders",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("order_key", sa.String(255), nullable=False),
        sa.Column("order_name", sa.String(255), nullable=True),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("ship_to", sa.JSON(), nullable=True),
        sa.Column("shipping_method", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("status_changed_at"),
        _ts("created_at"),
        sa.Column("cancel_reason", sa.String(500), nullable=True),
        sa.Column("carrier", sa.String(64), nullable=True),
        sa.Column("service", sa.String(64), nullable=True),
        sa.Column("tracking_number", sa.String(64), nullable=True),
        _ts("shipped_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('released', 'picking', 'packed', 'shipped', 'cancelled')",
            name="ck_wms_fulfillment_orders_status",
        ),
    )
    op.create_index(
        "ux_wms_fulfillment_orders_idempotency_key",
        "wms_fulfillment_orders",
        ["idempotency_key"],
        unique=True,
    )
    op.create_index("ix_wms_fulfillment_orders_order_key", "wms_fulfillment_orders", ["order_key"])
    op.create_index(
        "ix_wms_fulfillment_orders_status", "wms_fulfillment_orders", ["status", "status_changed_at"]
    )

    op.create_table(
        "wms_fulfillment_lines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "fulfillment_order_id",
            sa.Integer(),
            sa.ForeignKey(
                "wms_fulfillment_orders.id", ondelete="CASCADE", name="fk_wms_fulfillment_lines_order"
            ),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.String(255), nullable=False),
        sa.Column("sku", sa.String(255), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_wms_fulfillment_lines_fulfillment_order_id", "wms_fulfillment_lines", ["fulfillment_order_id"]
    )

    op.create_table(
        "wms_webhook_outbox",
        *_outbox_columns(),
        sa.Column(
            "fulfillment_order_id",
            sa.Integer(),
            sa.ForeignKey(
                "wms_fulfillment_orders.id", ondelete="CASCADE", name="fk_wms_webhook_outbox_order"
            ),
            nullable=False,
        ),
    )
    op.create_index("ux_wms_webhook_outbox_event_id", "wms_webhook_outbox", ["event_id"], unique=True)
    op.create_index(
        "ix_wms_webhook_outbox_pending", "wms_webhook_outbox", ["delivered_at", "next_attempt_at"]
    )
    op.create_index(
        "ix_wms_webhook_outbox_fulfillment_order_id", "wms_webhook_outbox", ["fulfillment_order_id"]
    )

    op.create_table(
        "carrier_labels",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tracking_number", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("order_key", sa.String(255), nullable=False),
        sa.Column("carrier", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("ship_from", sa.String(64), nullable=False),
        sa.Column("ship_to", sa.JSON(), nullable=True),
        sa.Column("label_url", sa.String(500), nullable=False),
        _ts("created_at"),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("status_changed_at"),
        _ts("handed_over_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('label_created', 'in_transit', 'delivered')",
            name="ck_carrier_labels_status",
        ),
    )
    op.create_index("ux_carrier_labels_tracking_number", "carrier_labels", ["tracking_number"], unique=True)
    op.create_index("ux_carrier_labels_idempotency_key", "carrier_labels", ["idempotency_key"], unique=True)
    op.create_index("ix_carrier_labels_order_key", "carrier_labels", ["order_key"])
    op.create_index("ix_carrier_labels_status", "carrier_labels", ["status", "status_changed_at"])

    op.create_table(
        "carrier_webhook_outbox",
        *_outbox_columns(),
        sa.Column(
            "label_id",
            sa.Integer(),
            sa.ForeignKey("carrier_labels.id", ondelete="CASCADE", name="fk_carrier_webhook_outbox_label"),
            nullable=False,
        ),
    )
    op.create_index("ux_carrier_webhook_outbox_event_id", "carrier_webhook_outbox", ["event_id"], unique=True)
    op.create_index(
        "ix_carrier_webhook_outbox_pending", "carrier_webhook_outbox", ["delivered_at", "next_attempt_at"]
    )
    op.create_index("ix_carrier_webhook_outbox_label_id", "carrier_webhook_outbox", ["label_id"])


def downgrade() -> None:
    op.drop_table("carrier_webhook_outbox")
    op.drop_table("carrier_labels")
    op.drop_table("wms_webhook_outbox")
    op.drop_table("wms_fulfillment_lines")
    op.drop_table("wms_fulfillment_orders")
