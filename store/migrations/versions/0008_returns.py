"""returns: RMAs, credit memos and their GL postings, item costs, tax reversals, warehouse return
inbounds and their receipts' outbox, return labels, channel return notices

Revision ID: 0008_returns
Revises: 0001_baseline
Create Date: 2026-11-27

A branch of its own (store.migrate upgrades "heads"): foreign keys only between this branch's
own tables; sales orders, tax documents and labels are named by their public ids. Hand-written
to mirror backoffice/erp.py, backoffice/tax.py, backoffice/wms.py, backoffice/carrier.py and
backoffice/channel.py; the schema tests compare the migrated schema with the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_returns"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(20, 4)


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
    # -- ERP ------------------------------------------------------------------------------------
    op.create_table(
        "erp_item_costs",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("unit_cost", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "erp_rmas",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rma_id", sa.String(20), nullable=True),
        sa.Column("erp_order_id", sa.String(20), nullable=False),
        sa.Column("return_key", sa.String(255), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("returned_before", sa.JSON(), nullable=False),
        sa.Column("receipt_key", sa.String(255), nullable=True),
        sa.Column("restocked", sa.Integer(), nullable=False),
        sa.Column("written_off", MONEY, nullable=False),
        _ts("received_at", nullable=True),
        sa.Column("close_key", sa.String(255), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        _ts("closed_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("rma_id", name="uq_erp_rmas_rma_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_erp_rmas_idempotency_key"),
        sa.CheckConstraint(
            "status IN ('authorized', 'received', 'credited', 'closed')", name="ck_erp_rmas_status"
        ),
    )
    op.create_index("ix_erp_rmas_erp_order_id", "erp_rmas", ["erp_order_id"])
    op.create_index("ix_erp_rmas_return_key", "erp_rmas", ["return_key"])
    op.create_table(
        "erp_rma_lines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "rma_pk", sa.Integer(), sa.ForeignKey("erp_rmas.id", name="fk_erp_rma_lines_rma"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("sku", sa.String(100), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("restocked", sa.Integer(), nullable=False),
        sa.Column("damaged", sa.Integer(), nullable=False),
        sa.UniqueConstraint("rma_pk", "line_id", name="uq_erp_rma_lines_rma_line"),
    )
    op.create_index("ix_erp_rma_lines_rma_pk", "erp_rma_lines", ["rma_pk"])
    op.create_table(
        "erp_credit_memos",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("credit_memo_id", sa.String(20), nullable=True),
        sa.Column(
            "rma_pk",
            sa.Integer(),
            sa.ForeignKey("erp_rmas.id", name="fk_erp_credit_memos_rma"),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("net", MONEY, nullable=False),
        sa.Column("shipping", MONEY, nullable=False),
        sa.Column("tax", MONEY, nullable=False),
        sa.Column("total", MONEY, nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("credit_memo_id", name="uq_erp_credit_memos_credit_memo_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_erp_credit_memos_idempotency_key"),
        sa.UniqueConstraint("rma_pk", name="uq_erp_credit_memos_rma"),
    )
    op.create_table(
        "erp_return_gl_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "rma_pk",
            sa.Integer(),
            sa.ForeignKey("erp_rmas.id", name="fk_erp_return_gl_entries_rma"),
            nullable=False,
        ),
        sa.Column("document", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("debit", MONEY, nullable=False),
        sa.Column("credit", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _ts("posted_at"),
    )
    op.create_index("ix_erp_return_gl_entries_rma_pk", "erp_return_gl_entries", ["rma_pk"])

    # -- tax ------------------------------------------------------------------------------------
    op.create_table(
        "tax_reversals",
        sa.Column("credit_code", sa.String(255), primary_key=True),
        sa.Column("document_code", sa.String(200), nullable=False),
        sa.Column("tax", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_tax_reversals_document_code", "tax_reversals", ["document_code"])

    # -- warehouse ------------------------------------------------------------------------------
    op.create_table(
        "wms_return_inbounds",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("return_key", sa.String(255), nullable=False),
        sa.Column("rma_id", sa.String(64), nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("status_changed_at"),
        _ts("received_at", nullable=True),
        sa.CheckConstraint("status IN ('expected', 'received')", name="ck_wms_return_inbounds_status"),
    )
    op.create_index(
        "ux_wms_return_inbounds_idempotency_key", "wms_return_inbounds", ["idempotency_key"], unique=True
    )
    op.create_index("ix_wms_return_inbounds_return_key", "wms_return_inbounds", ["return_key"])
    op.create_index("ix_wms_return_inbounds_status", "wms_return_inbounds", ["status", "status_changed_at"])
    op.create_table(
        "wms_return_lines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "inbound_id",
            sa.Integer(),
            sa.ForeignKey("wms_return_inbounds.id", ondelete="CASCADE", name="fk_wms_return_lines_inbound"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.String(255), nullable=False),
        sa.Column("sku", sa.String(255), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
    )
    op.create_index("ix_wms_return_lines_inbound_id", "wms_return_lines", ["inbound_id"])
    op.create_table(
        "wms_return_outbox",
        *_outbox_columns(),
        sa.Column(
            "inbound_id",
            sa.Integer(),
            sa.ForeignKey("wms_return_inbounds.id", ondelete="CASCADE", name="fk_wms_return_outbox_inbound"),
            nullable=False,
        ),
    )
    op.create_index("ux_wms_return_outbox_event_id", "wms_return_outbox", ["event_id"], unique=True)
    op.create_index("ix_wms_return_outbox_pending", "wms_return_outbox", ["delivered_at", "next_attempt_at"])
    op.create_index("ix_wms_return_outbox_inbound_id", "wms_return_outbox", ["inbound_id"])

    # -- carrier --------------------------------------------------------------------------------
    op.create_table(
        "carrier_return_labels",
        sa.Column("tracking_number", sa.String(64), primary_key=True),
        sa.Column("return_key", sa.String(255), nullable=False),
        sa.Column("to_location", sa.String(64), nullable=False),
        sa.Column("ship_from", sa.JSON(), nullable=True),
        _ts("created_at"),
    )
    op.create_index("ix_carrier_return_labels_return_key", "carrier_return_labels", ["return_key"])

    # -- channel --------------------------------------------------------------------------------
    op.create_table(
        "channel_return_notices",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("external_order_id", sa.String(200), nullable=False),
        sa.Column("return_key", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("idempotency_key", name="uq_channel_return_notices_idempotency_key"),
    )
    op.create_index(
        "ix_channel_return_notices_external_order_id", "channel_return_notices", ["external_order_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_channel_return_notices_external_order_id", table_name="channel_return_notices")
    op.drop_table("channel_return_notices")
    op.drop_index("ix_carrier_return_labels_return_key", table_name="carrier_return_labels")
    op.drop_table("carrier_return_labels")
    op.drop_table("wms_return_outbox")
    op.drop_table("wms_return_lines")
    op.drop_table("wms_return_inbounds")
    op.drop_index("ix_tax_reversals_document_code", table_name="tax_reversals")
    op.drop_table("tax_reversals")
    op.drop_table("erp_return_gl_entries")
    op.drop_table("erp_credit_memos")
    op.drop_table("erp_rma_lines")
    op.drop_table("erp_rmas")
    op.drop_table("erp_item_costs")
