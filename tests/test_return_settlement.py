"""Settlement reconciliation of returns: provider refunds against the ERP's credit memos."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from adapters.payment.builtin import BuiltinPayment, list_captures
from canonical import Money
from store import findings as fs
from tests.platform import platform
from tests.seed import seed_catalog
from tests.test_returns import request_return, shipped_order, wait_status
from workflows.schedules import start_reconcile


async def test_return_refunds_match_credit_memos_and_strays_are_findings(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog, reconcile_settle_s=0.0) as p:
        order = await shipped_order(p, 7151, [("MUG-01", 2, "12.50")])
        r = await request_return(p, 7151, {"MUG-01": 1}, "rma-7151")
        assert r.status_code == 202, r.text
        st = await wait_status(p, "shopify-rma-7151", "Refunded")
        assert [x.kind for x in st.refunds] == ["capture"]

        # A refunded return whose credit memo matches: settled, no finding.
        report = await (await start_reconcile(p.client, p.settings, "settlement")).result()
        assert report.settlement is not None and report.settlement.returns == 1
        assert report.settlement.differences == {}

        # Money given back by hand in the provider, twice: once against the same return (more
        # than its credit memo), once for a return the ERP never heard of.
        assert order.authorization_id is not None
        payment = BuiltinPayment(p.store)

        [cap] = list_captures(p.store, order.authorization_id)
        await payment.refund(
            cap.capture_id, Money.of("1.00", "USD"), "return-shopify-rma-7151:refund:9:manual"
        )
        await payment.refund(
            cap.capture_id, Money.of("2.00", "USD"), "return-shopify-rma-ghost:refund:1:manual"
        )
        report = await (await start_reconcile(p.client, p.settings, "settlement")).result()
        assert report.settlement is not None
        assert report.settlement.differences == {
            fs.REFUND_EXCEEDS_CREDIT_MEMO: 1,
            fs.REFUND_WITHOUT_CREDIT_MEMO: 1,
        }
        by_kind = {f.kind: f for f in fs.list_findings(p.store)}
        exceeds = by_kind[fs.REFUND_EXCEEDS_CREDIT_MEMO]
        assert exceeds.actual is not None and exceeds.expected is not None
        assert exceeds.actual - exceeds.expected == Money.of("1.00", "USD").amount
        assert st.credited is not None and exceeds.expected == st.credited.amount
        assert by_kind[fs.REFUND_WITHOUT_CREDIT_MEMO].keys["return"] == "shopify-rma-ghost"
