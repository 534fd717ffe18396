"""ledgers: the builtin ERP (items, stock, customers, sales orders, invoices, GL), tax engine
and payment provider

Revision ID: 0002_ledgers
Revises: 0001_baseline
Create Date: 2026-11-26

Hand-written to mirror backoffice/erp.py, backoffice/tax.py and backoffice/payment.py; a test compares the
migrated schema with the models.
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002_ledgers"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(20, 4)
RATE = sa.Numeric(10, 6)


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # -- ERP ------------------------------------------------------------------------------
    op.create_table(
        "erp_items",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("weight_grams", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "erp_stock",
        sa.Column(
            "sku", sa.String(100), sa.ForeignKey("erp_items.sku", name="fk_erp_stock_sku"), primary_key=True
        ),
        sa.Column("location", sa.String(100), primary_key=True),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "erp_customers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(20), nullable=True),
        sa.Column("first_name", sa.String(200), nullable=True),
        sa.Column("last_name", sa.String(200), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("phone", sa.String(50), nullable=True),
        sa.Column("address_json", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("customer_id", name="uq_erp_customers_customer_id"),
    )
    op.create_table(
        "erp_customer_keys",
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("value", sa.String(320), primary_key=True),
        sa.Column(
            "customer_pk",
            sa.Integer(),
            sa.ForeignKey("erp_customers.id", name="fk_erp_customer_keys_customer"),
            nullable=False,
        ),
    )
    op.create_index("ix_erp_customer_keys_customer_pk", "erp_customer_keys", ["customer_pk"])
    op.create_table(
        "erp_sales_orders",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("erp_order_id", sa.String(20), nullable=True),
        sa.Column("channel", sa.String(50), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("order_name", sa.String(200), nullable=True),
        sa.Column("customer_id", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("taxes_included", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        _ts("cancelled_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("channel", "external_id", name="uq_erp_sales_orders_channel_external_id"),
        sa.UniqueConstraint("erp_order_id", name="uq_erp_sales_orders_erp_order_id"),
    )
    op.create_table(
        "erp_sales_order_lines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "order_pk",
            sa.Integer(),
            sa.ForeignKey("erp_sales_orders.id", name="fk_erp_sales_order_lines_order"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("sku", sa.String(100), nullable=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("net", MONEY, nullable=False),
        sa.Column("tax", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("stocked", sa.Boolean(), nullable=False),
        sa.Column("backordered", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.UniqueConstraint("order_pk", "line_id", name="uq_erp_sales_order_lines_order_line"),
    )
    op.create_index("ix_erp_sales_order_lines_order_pk", "erp_sales_order_lines", ["order_pk"])
    op.create_table(
        "erp_allocations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "line_pk",
            sa.Integer(),
            sa.ForeignKey("erp_sales_order_lines.id", name="fk_erp_allocations_line"),
            nullable=False,
        ),
        sa.Column("location", sa.String(100), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("shipped", sa.Integer(), nullable=False),
        sa.Column("released", sa.Integer(), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_erp_allocations_line_pk", "erp_allocations", ["line_pk"])
    op.create_table(
        "erp_invoices",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("invoice_id", sa.String(20), nullable=True),
        sa.Column(
            "order_pk",
            sa.Integer(),
            sa.ForeignKey("erp_sales_orders.id", name="fk_erp_invoices_order"),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("shipment_id", sa.String(200), nullable=False),
        sa.Column("location", sa.String(100), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("net", MONEY, nullable=False),
        sa.Column("shipping", MONEY, nullable=False),
        sa.Column("tax", MONEY, nullable=False),
        sa.Column("total", MONEY, nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("invoice_id", name="uq_erp_invoices_invoice_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_erp_invoices_idempotency_key"),
    )
    op.create_index("ix_erp_invoices_order_pk", "erp_invoices", ["order_pk"])
    op.create_table(
        "erp_invoice_lines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "invoice_pk",
            sa.Integer(),
            sa.ForeignKey("erp_invoices.id", name="fk_erp_invoice_lines_invoice"),
            nullable=False,
        ),
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("sku", sa.String(100), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("net", MONEY, nullable=False),
        sa.Column("tax", MONEY, nullable=False),
    )
    op.create_index("ix_erp_invoice_lines_invoice_pk", "erp_invoice_lines", ["invoice_pk"])
    op.create_table(
        "erp_gl_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "invoice_pk",
            sa.Integer(),
            sa.ForeignKey("erp_invoices.id", name="fk_erp_gl_entries_invoice"),
            nullable=False,
        ),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("debit", MONEY, nullable=False),
        sa.Column("credit", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _ts("posted_at"),
    )
    op.create_index("ix_erp_gl_entries_invoice_pk", "erp_gl_entries", ["invoice_pk"])
    op.create_table(
        "erp_idempotency",
        sa.Column("idempotency_key", sa.String(255), primary_key=True),
        sa.Column("operation", sa.String(50), nullable=False),
        sa.Column("erp_order_id", sa.String(20), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        _ts("created_at"),
    )

    # -- tax --------------------------------------------------------------------------------
    op.create_table(
        "tax_rates",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("region", sa.String(10), nullable=True),
        sa.Column("postal_prefix", sa.String(20), nullable=True),
        sa.Column("rate", RATE, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("taxes_shipping", sa.Boolean(), nullable=False),
        _ts("updated_at"),
    )
    op.create_index("ix_tax_rates_country", "tax_rates", ["country"])
    op.create_table(
        "tax_documents",
        sa.Column("document_code", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("jurisdiction", sa.String(50), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total_tax", MONEY, nullable=False),
        sa.Column("shipping_tax", MONEY, nullable=False),
        sa.Column("committed", MONEY, nullable=False),
        sa.Column("quote_json", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("voided_at", nullable=True),
    )
    op.create_table(
        "tax_commits",
        sa.Column("invoice_code", sa.String(255), primary_key=True),
        sa.Column(
            "document_code",
            sa.String(200),
            sa.ForeignKey("tax_documents.document_code", name="fk_tax_commits_document"),
            nullable=False,
        ),
        sa.Column("tax", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_tax_commits_document_code", "tax_commits", ["document_code"])

    # -- payment ----------------------------------------------------------------------------
    op.create_table(
        "payment_authorizations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("captured", MONEY, nullable=False),
        sa.Column("voided", MONEY, nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("reference", sa.String(255), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "payment_captures",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "authorization_id",
            sa.String(40),
            sa.ForeignKey("payment_authorizations.id", name="fk_payment_captures_authorization"),
            nullable=False,
        ),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("refunded", MONEY, nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_payment_captures_authorization_id", "payment_captures", ["authorization_id"])
    op.create_table(
        "payment_refunds",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "capture_id",
            sa.String(40),
            sa.ForeignKey("payment_captures.id", name="fk_payment_refunds_capture"),
            nullable=False,
        ),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_payment_refunds_capture_id", "payment_refunds", ["capture_id"])
    op.create_table(
        "payment_idempotency",
        sa.Column("idempotency_key", sa.String(255), primary_key=True),
        sa.Column("operation", sa.String(20), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        _ts("created_at"),
    )


def downgrade() -> None:
    for table in (
        "payment_idempotency",
        "payment_refunds",
        "payment_captures",
        "payment_authorizations",
        "tax_commits",
        "tax_documents",
        "tax_rates",
        "erp_idempotency",
        "erp_gl_entries",
        "erp_invoice_lines",
        "erp_invoices",
        "erp_allocations",
        "erp_sales_order_lines",
        "erp_sales_orders",
        "erp_customer_keys",
        "erp_customers",
        "erp_stock",
        "erp_items",
    ):
        op.drop_table(table)
