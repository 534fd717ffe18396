"""Returns in the builtin adapters on a real store (SQLite, or PostgreSQL when DATABASE_URL is set):
RMAs against what shipped, receipts (restock through the stock journal, damaged written off at
cost), credit memos with balanced GL, tax reversals, capture balances, warehouse inbounds,
return labels and channel notices, each idempotent on its key."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from adapters.carrier.builtin import BuiltinCarrier
from adapters.carrier.port import CarrierPort
from adapters.channels.builtin import BuiltinChannel, list_return_notices
from adapters.channels.port import ChannelPort
from adapters.erp.builtin import (
    BuiltinErp,
    get_rma,
    gl_entries,
    list_rmas,
    return_gl_entries,
    set_item_cost,
    stock_levels,
)
from adapters.erp.inventory import InventoryLedger
from adapters.erp.port import ErpPort
from adapters.errors import PermanentError
from adapters.faults import FaultInjector
from adapters.payment.builtin import BuiltinPayment
from adapters.payment.port import PaymentPort
from adapters.tax.builtin import BuiltinTax, reversed_tax, seed_default_rates
from adapters.tax.port import TaxPort
from adapters.wms.builtin import BuiltinWms
from adapters.wms.port import WmsPort
from backoffice.carrier import list_labels
from backoffice.wms import list_return_inbounds
from canonical import Address, InvoiceAmounts, Money, Order, invoice_for_shipment
from canonical.documents import RmaLine
from canonical.returns import DispositionLine, ReturnLine, ReturnNotice, credit_for_return
from settings import FaultSettings
from store.db import Store
from tests.test_erp_builtin import line, make_order, new_customer, seed, shipment

WH = "WH-EAST"
CA = Address(line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US")


def levels(store: Store, sku: str) -> dict[str, tuple[int, int]]:
    return {lv.location: (lv.on_hand, lv.reserved) for lv in stock_levels(store, sku)}


def rma_lines(**quantities: int) -> list[RmaLine]:
    skus = {"L1": "TEE", "L2": "MUG"}
    return [RmaLine(line_id=lid, sku=skus[lid], quantity=q) for lid, q in quantities.items()]


async def shipped_order(store: Store, erp: BuiltinErp, external_id: str = "R1") -> tuple[Order, str]:
    """3 TEE + 2 MUG, 10% tax, 5.00 shipping; 2 TEE and both MUGs shipped and invoiced from WH-EAST."""
    seed(store, {("TEE", WH): 10, ("MUG", WH): 10})
    order = make_order(
        external_id,
        [line("L1", "TEE", 3, "20.00"), line("L2", "MUG", 2, "10.00")],
        rate="0.10",
        shipping="5.00",
    )
    so = (await erp.create_sales_order(order, await new_customer(erp), f"order-{external_id}")).erp_order_id
    amounts = invoice_for_shipment(order, {}, {"L1": 2, "L2": 2}, first=True)
    await erp.invoice_shipment(so, shipment(order, "SHP-1", WH, {"L1": 2, "L2": 2}), amounts, "inv-1")
    return order, so


def balanced(entries: list[tuple[Money, Money]]) -> bool:
    return sum((dr.amount for dr, _ in entries), Decimal(0)) == sum(
        (cr.amount for _, cr in entries), Decimal(0)
    )


# -- ERP: authorization ----------------------------------------------------------------------------


async def test_rma_refuses_more_than_shipped_and_names_the_figures(store: Store) -> None:
    erp: ErpPort = BuiltinErp(store)
    _, so = await shipped_order(store, erp)  # type: ignore[arg-type]
    with pytest.raises(PermanentError) as exc:
        await erp.authorize_return(so, "shop-ret-1", rma_lines(L1=3), "rma-1")
    assert exc.value.reason == "not_returnable"
    assert "line L1: returning 3, shipped 2, on other returns 0, returnable 2" in exc.value.message
    assert list_rmas(store, so) == []


async def test_partial_returns_across_two_rmas_share_what_shipped(store: Store) -> None:
    erp = BuiltinErp(store)
    _, so = await shipped_order(store, erp)
    first = await erp.authorize_return(so, "shop-ret-1", rma_lines(L1=1, L2=1), "rma-1")
    assert (first.status, first.created, first.returned_before) == ("authorized", True, {})
    second = await erp.authorize_return(so, "shop-ret-2", rma_lines(L1=1), "rma-2")
    assert second.returned_before == {"L1": 1, "L2": 1}
    with pytest.raises(PermanentError) as exc:
        await erp.authorize_return(so, "shop-ret-3", rma_lines(L1=1, L2=2), "rma-3")
    assert exc.value.reason == "not_returnable"
    assert "line L1: returning 1, shipped 2, on other returns 2, returnable 0" in exc.value.message
    assert "line L2: returning 2, shipped 2, on other returns 1, returnable 1" in exc.value.message


async def test_rma_replay_returns_the_same_rma(store: Store) -> None:
    erp = BuiltinErp(store)
    _, so = await shipped_order(store, erp)
    first = await erp.authorize_return(so, "shop-ret-1", rma_lines(L1=2), "rma-1")
    again = await erp.authorize_return(so, "shop-ret-1", rma_lines(L1=2), "rma-1")
    assert again.rma_id == first.rma_id and not again.created
    assert again.model_dump(exclude={"created"}) == first.model_dump(exclude={"created"})
    assert len(list_rmas(store, so)) == 1


async def test_concurrent_returns_cannot_both_take_the_last_units(store: Store) -> None:
    erp = BuiltinErp(store)
    _, so = await shipped_order(store, erp)
    results = await asyncio.gather(
        *(erp.authorize_return(so, f"shop-ret-{i}", rma_lines(L1=2), f"rma-{i}") for i in range(4)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, PermanentError)]
    assert len(won) == 1 and len(lost) == 3, results
    assert all(e.reason == "not_returnable" for e in lost)


async def test_closing_an_rma_frees_its_quantity_and_is_idempotent(store: Store) -> None:
    erp = BuiltinErp(store)
    _, so = await shipped_order(store, erp)
    rma = await erp.authorize_return(so, "shop-ret-1", rma_lines(L1=2), "rma-1")
    closed = await erp.close_return(rma.rma_id, "expired", "close-1")
    assert closed.status == "closed"
    assert (await erp.close_return(rma.rma_id, "expired", "close-1")).status == "closed"
    again = await erp.authorize_return(so, "shop-ret-2", rma_lines(L1=2), "rma-2")
    assert again.returned_before == {}
    # Received goods keep their RMA: it cannot be closed any more.
    await erp.receive_return(
        again.rma_id, [DispositionLine(line_id="L1", sku="TEE", quantity=2, disposition="restock")], "rcv-2"
    )
    with pytest.raises(PermanentError) as exc:
        await erp.close_return(again.rma_id, "expired", "close-2")
    assert exc.value.reason == "rma_received"


# -- ERP: receipt --------------------------------------------------------------------------------


async def test_restock_raises_available_through_the_journal_once(store: Store) -> None:
    erp = BuiltinErp(store)
    _, so = await shipped_order(store, erp)
    assert levels(store, "TEE")[WH] == (8, 1)  # 10 - 2 shipped; 1 still reserved for L1
    rma = await erp.authorize_return(so, "shop-ret-1", rma_lines(L1=2), "rma-1")
    disposition = [DispositionLine(line_id="L1", sku="TEE", quantity=2, disposition="restock", location=WH)]
    ack = await erp.receive_return(rma.rma_id, disposition, "rcv-1")
    assert (ack.restocked, ack.written_off) == (2, Money.zero("USD"))
    assert levels(store, "TEE")[WH] == (10, 1)
    again = await erp.receive_return(rma.rma_id, disposition, "rcv-1")
    assert again == ack
    assert levels(store, "TEE")[WH] == (10, 1)
    journal = [m for m in InventoryLedger(store).movements("TEE") if m.kind == "return_restock"]
    assert [(m.event_id, m.quantity, m.on_hand_delta, m.reference) for m in journal] == [
        (f"erp:{so}:return:{rma.rma_id}", 2, 2, rma.rma_id)
    ]
    view = get_rma(store, rma.rma_id)
    assert view is not None and view.status == "received" and view.lines[0].restocked == 2


async def test_restock_without_a_location_goes_back_where_it_shipped_from(store: Store) -> None:
    erp = BuiltinErp(store)
    _, so = await shipped_order(store, erp)
    rma = await erp.authorize_return(so, "shop-ret-1", rma_lines(L2=1), "rma-1")
    await erp.receive_return(
        rma.rma_id, [DispositionLine(line_id="L2", sku="MUG", quantity=1, disposition="restock")], "rcv-1"
    )
    assert levels(store, "MUG")[WH] == (9, 0)


async def test_damaged_units_are_written_off_at_cost_not_restocked(store: Store) -> None:
    erp = BuiltinErp(store)
    _, so = await shipped_order(store, erp)
    set_item_cost(store, "TEE", Money.of("7.25", "USD"))
    rma = await erp.authorize_return(so, "shop-ret-1", rma_lines(L1=2, L2=1), "rma-1")
    ack = await erp.receive_return(
        rma.rma_id,
        [
            DispositionLine(line_id="L1", sku="TEE", quantity=2, disposition="damaged"),
            DispositionLine(line_id="L2", sku="MUG", quantity=1, disposition="damaged"),
        ],
        "rcv-1",
    )
    # TEE at its standard cost; MUG has none: its net sale value (10.00) stands in.
    assert ack.restocked == 0 and ack.written_off == Money.of("24.50", "USD")
    assert levels(store, "TEE")[WH] == (8, 1) and levels(store, "MUG")[WH] == (8, 0)
    entries = return_gl_entries(store, so, document=rma.rma_id)
    assert {(e.account, e.debit.amount, e.credit.amount) for e in entries} == {
        ("Inventory Write-off", Decimal("24.50"), Decimal(0)),
        ("Inventory", Decimal(0), Decimal("24.50")),
    }


async def test_receipt_beyond_the_rma_is_refused(store: Store) -> None:
    erp = BuiltinErp(store)
    _, so = await shipped_order(store, erp)
    rma = await erp.authorize_return(so, "shop-ret-1", rma_lines(L1=1), "rma-1")
    with pytest.raises(PermanentError) as exc:
        await erp.receive_return(
            rma.rma_id, [DispositionLine(line_id="L1", sku="TEE", quantity=2, disposition="restock")], "rcv"
        )
    assert exc.value.reason == "receipt_exceeds_rma"


# -- ERP: credit memo ----------------------------------------------------------------------------


async def test_credit_memo_posts_balanced_gl_once_per_rma(store: Store) -> None:
    erp = BuiltinErp(store)
    order, so = await shipped_order(store, erp)
    rma = await erp.authorize_return(so, "shop-ret-1", rma_lines(L1=1, L2=2), "rma-1")
    amounts = credit_for_return(order, rma.returned_before, {"L1": 1, "L2": 2}, "always")
    assert amounts.total == Money.of("49.50", "USD")  # 20 + 20 + 10% tax + 5 shipping
    ack = await erp.post_credit_memo(rma.rma_id, amounts, "cm-1")
    assert (ack.total, ack.rma_id) == (amounts.total, rma.rma_id)
    assert await erp.post_credit_memo(rma.rma_id, amounts, "cm-1") == ack
    assert await erp.post_credit_memo(rma.rma_id, amounts, "cm-other-key") == ack  # one per RMA

    memo = return_gl_entries(store, so, document=ack.credit_memo_id)
    assert balanced([(e.debit, e.credit) for e in memo])
    by_account = {e.account: (e.debit.amount, e.credit.amount) for e in memo}
    assert by_account == {
        "Accounts Receivable": (Decimal(0), Decimal("49.50")),
        "Revenue": (Decimal("40.00"), Decimal(0)),
        "Shipping Revenue": (Decimal("5.00"), Decimal(0)),
        "Sales Tax Payable": (Decimal("4.50"), Decimal(0)),
    }
    everything = [(e.debit, e.credit) for e in gl_entries(store, so)] + [(e.debit, e.credit) for e in memo]
    assert balanced(everything)
    view = get_rma(store, rma.rma_id)
    assert view is not None and (view.status, view.credit_memo_id) == ("credited", ack.credit_memo_id)

    other = InvoiceAmounts(
        lines=[],
        shipping=Money.zero("USD"),
        shipping_tax=Money.zero("USD"),
        tax=Money.zero("USD"),
        total=Money.zero("USD"),
    )
    with pytest.raises(PermanentError) as exc:
        await erp.post_credit_memo(rma.rma_id, other, "cm-1")
    assert exc.value.reason == "credit_memo_exists"
    with pytest.raises(PermanentError) as exc:
        await erp.close_return(rma.rma_id, "cancelled", "close-1")
    assert exc.value.reason == "rma_credited"


async def test_unbalanced_credit_memo_is_refused(store: Store) -> None:
    erp = BuiltinErp(store)
    order, so = await shipped_order(store, erp)
    rma = await erp.authorize_return(so, "shop-ret-1", rma_lines(L1=1), "rma-1")
    amounts = credit_for_return(order, {}, {"L1": 1}, "never")
    wrong = amounts.model_copy(update={"total": amounts.total + Money.of("1.00", "USD")})
    with pytest.raises(PermanentError) as exc:
        await erp.post_credit_memo(rma.rma_id, wrong, "cm-1")
    assert exc.value.reason == "unbalanced_credit_memo"


async def test_injected_faults_name_the_return_operations(store: Store) -> None:
    erp = BuiltinErp(store)
    _, so = await shipped_order(store, erp)
    rejecting = BuiltinErp(store, FaultInjector("erp", FaultSettings(reject=["operation=authorize_return"])))
    with pytest.raises(PermanentError) as exc:
        await rejecting.authorize_return(so, "shop-ret-1", rma_lines(L1=1), "rma-1")
    assert exc.value.reason == "injected_rejection"
    payment = BuiltinPayment(store, FaultInjector("payment", FaultSettings(reject=["operation=refund"])))
    with pytest.raises(PermanentError) as exc:
        await payment.refund("cap_x", Money.of("1.00", "USD"), "re-1")
    assert exc.value.reason == "injected_rejection"


# -- tax -----------------------------------------------------------------------------------------


async def test_tax_reversal_is_idempotent_and_capped_at_what_was_committed(store: Store) -> None:
    seed_default_rates(store)
    tax: TaxPort = BuiltinTax(store)
    order = make_order("T1", [line("L1", "TEE", 2, "100.00")]).model_copy(update={"shipping_address": CA})
    await tax.quote(order, "doc-T1")
    invoice = invoice_for_shipment(order, {}, {"L1": 1}, first=True)
    invoice = invoice.model_copy(
        update={"tax": Money.of("7.25", "USD"), "total": invoice.total + Money.of("7.25", "USD")}
    )
    await tax.commit("doc-T1", "INV-1", invoice)
    credit = invoice.model_copy(update={"tax": Money.of("5.00", "USD")})
    first = await tax.reverse("doc-T1", "CM-1", credit)
    assert first.reversed == Money.of("5.00", "USD")
    assert await tax.reverse("doc-T1", "CM-1", credit) == first
    with pytest.raises(PermanentError) as exc:
        await tax.reverse("doc-T1", "CM-2", credit)
    assert exc.value.reason == "reversal_exceeds_committed"
    rest = invoice.model_copy(update={"tax": Money.of("2.25", "USD")})
    await tax.reverse("doc-T1", "CM-2", rest)
    assert reversed_tax(store, "doc-T1") == Money.of("7.25", "USD")
    with pytest.raises(PermanentError) as exc:
        await tax.reverse("doc-T1", "CM-1", rest)
    assert exc.value.reason == "idempotency_key_reuse"


# -- payment -------------------------------------------------------------------------------------


async def test_capture_balance_follows_refunds_and_replays_never_refund_twice(store: Store) -> None:
    pay: PaymentPort = BuiltinPayment(store)
    usd = "USD"
    auth = await pay.authorize(Money.of("100.00", usd), "order-1", "auth-1")
    cap = await pay.capture(auth.authorization_id, Money.of("80.00", usd), "cap-1")
    first = await pay.refund(cap.capture_id, Money.of("30.00", usd), "return-1:refund:0")
    assert await pay.refund(cap.capture_id, Money.of("30.00", usd), "return-1:refund:0") == first
    balance = await pay.capture_balance(cap.capture_id)
    assert (balance.amount, balance.refunded, balance.refundable) == (
        Money.of("80.00", usd),
        Money.of("30.00", usd),
        Money.of("50.00", usd),
    )
    with pytest.raises(PermanentError) as exc:
        await pay.refund(cap.capture_id, Money.of("50.01", usd), "return-2:refund:0")
    assert exc.value.reason == "refund_exceeds_capture"
    await pay.refund(cap.capture_id, Money.of("50.00", usd), "return-2:refund:0")
    assert (await pay.capture_balance(cap.capture_id)).refundable == Money.zero(usd)
    with pytest.raises(PermanentError) as exc:
        await pay.capture_balance("cap_missing")
    assert exc.value.reason == "not_found"


# -- warehouse, carrier, channel --------------------------------------------------------------------


async def test_expect_return_records_one_inbound_per_key(store: Store) -> None:
    wms: WmsPort = BuiltinWms(store)
    first = await wms.expect_return("shop-ret-1", "RMA-000001", WH, rma_lines(L1=2), "expect-1")
    assert await wms.expect_return("shop-ret-1", "RMA-000001", WH, rma_lines(L1=2), "expect-1") == first
    [inbound] = list_return_inbounds(store)
    assert (inbound.inbound_id, inbound.status, inbound.return_key) == (
        first.inbound_id,
        "expected",
        "shop-ret-1",
    )
    assert [(ln.line_id, ln.sku, ln.quantity) for ln in inbound.lines] == [("L1", "TEE", 2)]
    with pytest.raises(PermanentError) as exc:
        await wms.expect_return("shop-ret-2", "RMA-000002", WH, rma_lines(L1=1), "expect-1")
    assert exc.value.reason == "idempotency_conflict"


async def test_return_label_is_bought_once_and_counts_as_handed_over(store: Store) -> None:
    carrier: CarrierPort = BuiltinCarrier(store)
    label = await carrier.create_return_label("shop-ret-1", CA, WH, "label-1")
    assert await carrier.create_return_label("shop-ret-1", CA, WH, "label-1") == label
    [record] = list_labels(store, "shop-ret-1")
    assert record.tracking_number == label.tracking_number and record.handed_over_at is not None


async def test_builtin_channel_records_a_return_notice_once(store: Store) -> None:
    channel: ChannelPort = BuiltinChannel(store, channel="woocommerce")
    notice = ReturnNotice(
        return_key="woocommerce-ret-1",
        status="refunded",
        lines=[ReturnLine(line_id="L1", sku="TEE", quantity=1)],
        refunded=Money.of("22.00", "USD"),
        restocked=True,
    )
    ack = await channel.notify_return("1001", notice, "notify-1")
    assert await channel.notify_return("1001", notice, "notify-1") == ack
    [row] = list_return_notices(store, "1001")
    assert (row.reference, row.status, row.amount) == (ack.reference, "refunded", Money.of("22.00", "USD"))
    with pytest.raises(PermanentError) as exc:
        await channel.notify_return("1001", notice.model_copy(update={"status": "expired"}), "notify-1")
    assert exc.value.reason == "idempotency_conflict"
