"""Orders reconciliation against the builtin ERP's books: what a run staged from the channel
(``store.reconcile``), compared with the builtin ERP's sales orders and the webhook inbox in a
handful of set-based queries instead of one lookup per order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, exists, func, literal, select

from backoffice.erp import ErpSalesOrder, ErpSalesOrderLine
from store.db import Store
from store.inbox import InboxRow
from store.reconcile import TOLERANCE, StagedChannelOrder


@dataclass(frozen=True)
class MissingOrder:
    external_id: str
    workflow_id: str
    name: str | None
    cancelled: bool
    error: str | None


def missing_on_platform(store: Store, run_key: str, channel: str) -> list[MissingOrder]:
    """Channel orders the ERP has no sales order for and no webhook delivery ever brought in.

    What is left may still be in flight (a workflow started, not yet at the ERP) or stuck before
    it; the caller asks Temporal about these few."""
    st = StagedChannelOrder
    in_erp = exists().where(ErpSalesOrder.channel == channel, ErpSalesOrder.external_id == st.external_id)
    delivered = exists().where(
        InboxRow.workflow_id == st.workflow_id,
        InboxRow.action == "start",
        InboxRow.status.in_(("pending", "relayed")),
    )
    q = (
        select(st.external_id, st.workflow_id, st.name, st.cancelled, st.error)
        .where(st.run_key == run_key, ~in_erp, ~delivered)
        .order_by(st.external_id)
    )
    with store.reading() as s:
        return [MissingOrder(*row) for row in s.execute(q)]


@dataclass(frozen=True)
class TotalMismatch:
    external_id: str
    name: str | None
    erp_order_id: str
    currency: str
    channel_total: Decimal
    erp_total: Decimal
    erp_currency: str


def total_mismatches(store: Store, run_key: str, channel: str) -> list[TotalMismatch]:
    """Orders whose lines (after discounts, before tax) add up differently in the channel and in
    the ERP, or in another currency."""
    st, so, ln = StagedChannelOrder, ErpSalesOrder, ErpSalesOrderLine
    erp_total = func.sum(ln.net)
    q = (
        select(st.external_id, st.name, so.erp_order_id, st.currency, st.lines_total, erp_total, so.currency)
        .join(so, and_(so.channel == channel, so.external_id == st.external_id))
        .join(ln, ln.order_pk == so.id)
        .where(st.run_key == run_key, st.lines_total.is_not(None))
        .group_by(st.external_id, st.name, so.erp_order_id, st.currency, st.lines_total, so.currency)
        .having((func.abs(erp_total - st.lines_total) > literal(TOLERANCE)) | (so.currency != st.currency))
    )
    out: list[TotalMismatch] = []
    with store.reading() as s:
        for ext, name, erp_id, cur, ch_total, erp_sum, erp_cur in s.execute(q):
            ch, erp = Decimal(str(ch_total)), Decimal(str(erp_sum)).quantize(Decimal("0.0001"))
            if ch == erp and cur == erp_cur:
                continue
            out.append(TotalMismatch(ext, name, erp_id or "", cur or "", ch, erp, erp_cur))
    return out


@dataclass(frozen=True)
class UnlistedErpOrder:
    external_id: str
    erp_order_id: str
    name: str | None


def erp_orders_not_listed(
    store: Store, run_key: str, channel: str, since: datetime, until: datetime
) -> list[UnlistedErpOrder]:
    """ERP sales orders of the channel created in the window that the channel did not list (it
    lists by update time, so the caller confirms each with the channel before calling it a
    finding)."""
    st, so = StagedChannelOrder, ErpSalesOrder
    listed = exists().where(st.run_key == run_key, st.external_id == so.external_id)
    q = (
        select(so.external_id, so.erp_order_id, so.order_name)
        .where(so.channel == channel, so.created_at >= since, so.created_at < until, ~listed)
        .order_by(so.id)
    )
    with store.reading() as s:
        return [UnlistedErpOrder(ext, erp or "", name) for ext, erp, name in s.execute(q)]
