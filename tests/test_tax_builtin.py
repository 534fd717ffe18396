"""The builtin tax engine on a real store: jurisdiction matching, per-line half-even rounding,
tax-inclusive extraction, stored quotes, idempotent commits, voids and fault injection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from adapters.errors import PermanentError, TransientError
from adapters.faults import FaultInjector
from adapters.tax.builtin import (
    BuiltinTax,
    add_rate,
    get_tax_document,
    list_rates,
    seed_default_rates,
    tax_on,
)
from canonical import (
    Address,
    Customer,
    InvoiceAmounts,
    Money,
    Order,
    OrderLine,
    OrderTotals,
    ShippingLine,
    invoice_for_shipment,
)
from settings import FaultSettings
from store.db import Store

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def addr(country: str, region: str | None = None, postal: str | None = None) -> Address:
    return Address(line1="1 Main St", city="Town", country=country, region=region, postal_code=postal)


def make_order(
    lines: Sequence[tuple[str, int, str] | OrderLine],
    *,
    currency: str = "USD",
    ship_to: Address | None = None,
    bill_to: Address | None = None,
    shipping: str | None = None,
    taxes_included: bool = False,
) -> Order:
    """An order without tax lines of its own (the engine is what computes them)."""
    built = [
        ln
        if isinstance(ln, OrderLine)
        else OrderLine(
            line_id=ln[0], sku=ln[0], title=ln[0], quantity=ln[1], unit_price=Money.of(ln[2], currency)
        )
        for ln in lines
    ]
    ships = [ShippingLine(code="std", title="Std", price=Money.of(shipping, currency))] if shipping else []
    subtotal = Money.sum((ln.subtotal for ln in built), currency)
    ship_total = Money.sum((s.price for s in ships), currency)
    zero = Money.zero(currency)
    return Order(
        channel="shop",
        external_id="1",
        placed_at=NOW,
        currency=currency,
        taxes_included=taxes_included,
        customer=Customer(email="ann@example.com"),
        shipping_address=ship_to,
        billing_address=bill_to,
        lines=built,
        shipping_lines=ships,
        totals=OrderTotals(
            subtotal=subtotal,
            discount_total=zero,
            shipping_total=ship_total,
            tax_total=zero,
            total=subtotal + ship_total,
        ),
    )


def amounts_with_tax(tax: str, currency: str = "USD") -> InvoiceAmounts:
    m = Money.of(tax, currency)
    zero = Money.zero(currency)
    return InvoiceAmounts(lines=[], shipping=zero, shipping_tax=zero, tax=m, total=m)


@pytest.fixture
def tax(store: Store) -> BuiltinTax:
    seed_default_rates(store)
    return BuiltinTax(store)


def test_default_rates_seed_idempotently_and_rates_can_be_added(store: Store) -> None:
    first = seed_default_rates(store)
    assert first == 8 and seed_default_rates(store) == 0
    by = {r.jurisdiction: r for r in list_rates(store)}
    assert by["US-CA"].rate == Decimal("0.0725") and by["US-NY"].rate == Decimal("0.08875")
    assert by["GB"].rate == Decimal("0.2") and by["JP"].rate == Decimal("0.1") and by["KW"].rate == 0
    assert add_rate(store, "us", "0.08625", "San Francisco", region="ca", postal_prefix="941")
    assert not add_rate(store, "US", Decimal("0.08625"), "San Francisco", region="CA", postal_prefix="941")
    assert add_rate(store, "US", "0.0863", "San Francisco", region="CA", postal_prefix="941")  # replaced
    assert len(list_rates(store, "US")) == 5
    with pytest.raises(ValueError, match="fraction"):
        add_rate(store, "US", "7.25", "percent by mistake")


@pytest.mark.parametrize(
    ("address", "rate", "jurisdiction"),
    [
        (addr("US", "CA", "94105"), "0.08625", "US-CA-941"),  # postal prefix beats region
        (addr("US", "CA", "90001"), "0.0725", "US-CA"),  # region beats country
        (addr("US", "NY", "10001-1234"), "0.045", "US-100"),  # a prefix without a region still wins
        (addr("US", "OR", "97201"), "0", "US"),  # the country default
        (addr("FR", None, "75001"), "0", "FR"),  # no row: no tax
    ],
)
async def test_the_most_specific_rate_wins(
    store: Store, tax: BuiltinTax, address: Address, rate: str, jurisdiction: str
) -> None:
    add_rate(store, "US", "0.08625", "San Francisco", region="CA", postal_prefix="941")
    add_rate(store, "US", "0.045", "Prefix 100 (test)", postal_prefix="100")
    q = await tax.quote(make_order([("A", 1, "100.00")], ship_to=address), "doc-1")
    assert q.lines[0].rate == Decimal(rate) and q.lines[0].jurisdiction == jurisdiction
    assert q.total_tax == Money.round(Decimal("100.00") * Decimal(rate), "USD")


async def test_tax_is_rounded_per_line_half_even_and_shipping_only_where_taxed(tax: BuiltinTax) -> None:
    order = make_order([("TEE", 2, "25.00"), ("MUG", 1, "12.50")], ship_to=addr("US", "CA"), shipping="5.00")
    q = await tax.quote(order, "ca")
    # 50.00 x 7.25% = 3.625 -> 3.62 (half-even); 12.50 x 7.25% = 0.90625 -> 0.91; CA does not tax shipping.
    assert [ln.tax for ln in q.lines] == [Money.of("3.62", "USD"), Money.of("0.91", "USD")]
    assert q.shipping_tax.is_zero and q.total_tax == Money.of("4.53", "USD")

    ny = await tax.quote(make_order([("TEE", 1, "10.00")], ship_to=addr("US", "NY"), shipping="5.00"), "ny")
    assert ny.lines[0].tax == Money.of("0.89", "USD")  # 0.8875 -> 0.89
    assert ny.shipping_tax == Money.of("0.44", "USD")  # 0.44375 -> 0.44
    assert ny.total_tax == Money.of("1.33", "USD")


async def test_tax_inclusive_orders_extract_tax_from_the_gross(tax: BuiltinTax) -> None:
    order = make_order(
        [("TEE", 3, "33.33")], ship_to=addr("GB"), shipping="4.99", currency="GBP", taxes_included=True
    )
    q = await tax.quote(order, "gb")
    # 99.99 - 99.99/1.2 = 16.665 -> 16.66 (half-even); 4.99 - 4.99/1.2 = 0.8316.. -> 0.83.
    assert q.lines[0].tax == Money.of("16.66", "GBP")
    assert q.shipping_tax == Money.of("0.83", "GBP")
    assert tax_on(Money.of("120.00", "EUR"), Decimal("0.2"), inclusive=True) == Money.of("20.00", "EUR")


async def test_untaxable_lines_gift_cards_and_minor_units(tax: BuiltinTax) -> None:
    lines: list[Any] = [
        ("A", 1, "10.00"),
        OrderLine(
            line_id="B", sku="B", title="B", quantity=1, unit_price=Money.of("10.00", "USD"), taxable=False
        ),
        OrderLine(
            line_id="G",
            sku="G",
            title="G",
            quantity=1,
            unit_price=Money.of("50.00", "USD"),
            gift_card=True,
            requires_shipping=False,
        ),
    ]
    q = await tax.quote(make_order(lines, ship_to=addr("US", "WA")), "wa")
    assert [(ln.line_id, ln.rate, ln.tax.amount) for ln in q.lines] == [
        ("A", Decimal("0.065"), Decimal("0.65")),
        ("B", Decimal(0), Decimal(0)),
        ("G", Decimal(0), Decimal(0)),
    ]
    jp = await tax.quote(
        make_order([("M", 2, "1980")], ship_to=addr("JP"), shipping="500", currency="JPY"), "jp"
    )
    assert jp.total_tax == Money.of("446", "JPY")  # 396 + 50
    kw = await tax.quote(make_order([("M", 1, "4.125")], ship_to=addr("KW"), currency="KWD"), "kw")
    assert kw.total_tax == Money.zero("KWD")


async def test_billing_address_is_used_without_shipping_and_no_address_is_refused(tax: BuiltinTax) -> None:
    q = await tax.quote(make_order([("E", 1, "10.00")], bill_to=addr("DE")), "billing")
    assert q.total_tax == Money.of("1.90", "USD") and q.lines[0].jurisdiction == "DE"
    with pytest.raises(PermanentError) as exc:
        await tax.quote(make_order([("E", 1, "10.00")]), "nowhere")
    assert exc.value.reason == "no_tax_address"


async def test_a_quote_is_stored_until_voided(store: Store, tax: BuiltinTax) -> None:
    order = make_order([("A", 1, "100.00")], ship_to=addr("US", "CA"))
    first = await tax.quote(order, "doc")
    add_rate(store, "US", "0.08", "California (new)", region="CA")
    assert await tax.quote(order, "doc") == first  # the stored quote, not a new computation
    doc = get_tax_document(store, "doc")
    assert doc is not None and doc.status == "quoted" and doc.total_tax == first.total_tax

    assert (await tax.void("doc")).status == "voided"
    assert (await tax.void("doc")).status == "already_voided"
    assert (await tax.void("never-quoted")).status == "not_found"
    requote = await tax.quote(order, "doc")
    assert requote.total_tax == Money.of("8.00", "USD")
    assert get_tax_document(store, "doc").status == "quoted"  # type: ignore[union-attr]


async def test_commit_is_idempotent_per_invoice_code(store: Store, tax: BuiltinTax) -> None:
    order = make_order([("A", 2, "25.00")], ship_to=addr("US", "CA"))
    await tax.quote(order, "doc")
    amounts = invoice_for_shipment(order, {}, {"A": 1}, first=True)
    c1 = await tax.commit("doc", "INV-1", amounts_with_tax("1.81"))
    assert c1.committed == Money.of("1.81", "USD")
    assert await tax.commit("doc", "INV-1", amounts_with_tax("1.81")) == c1
    await tax.commit("doc", "INV-2", amounts_with_tax("1.82"))
    doc = get_tax_document(store, "doc")
    assert doc is not None and doc.status == "committed" and doc.committed == Money.of("3.63", "USD")
    assert amounts.tax.is_zero  # the order carried no tax lines; commits record what the invoice says

    await tax.quote(order, "other")
    with pytest.raises(PermanentError) as reuse:
        await tax.commit("other", "INV-1", amounts_with_tax("1.81"))
    assert reuse.value.reason == "idempotency_key_reuse"
    with pytest.raises(PermanentError) as missing:
        await tax.commit("nope", "INV-9", amounts_with_tax("1.00"))
    assert missing.value.reason == "not_found"
    await tax.void("other")
    with pytest.raises(PermanentError) as voided:
        await tax.commit("other", "INV-3", amounts_with_tax("1.00"))
    assert voided.value.reason == "document_voided"
    with pytest.raises(PermanentError) as cur:
        await tax.commit("doc", "INV-4", amounts_with_tax("1.00", "EUR"))
    assert cur.value.reason == "currency_mismatch"


def test_concurrent_commits_of_one_invoice_record_it_once(store: Store, tax: BuiltinTax) -> None:
    asyncio.run(tax.quote(make_order([("A", 1, "10.00")], ship_to=addr("US", "CA")), "doc"))
    other = Store(store.url)
    try:
        engines = [tax, BuiltinTax(other)]
        barrier = threading.Barrier(8)
        results: list[Any] = []

        def commit(i: int) -> None:
            barrier.wait()
            results.append(asyncio.run(engines[i % 2].commit("doc", "INV-1", amounts_with_tax("0.73"))))

        threads = [threading.Thread(target=commit, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.dispose()
    assert len(results) == 8
    assert get_tax_document(store, "doc").committed == Money.of("0.73", "USD")  # type: ignore[union-attr]


async def test_configured_faults_reject_permanently_or_fail_transiently(store: Store) -> None:
    seed_default_rates(store)
    order = make_order([("A", 1, "10.00")], ship_to=addr("US", "CA"))
    rejecting = BuiltinTax(store, FaultInjector("tax", FaultSettings(reject=["operation=commit"])))
    await rejecting.quote(order, "doc")  # other operations are untouched
    with pytest.raises(PermanentError) as exc:
        await rejecting.commit("doc", "INV-1", amounts_with_tax("0.73"))
    assert exc.value.reason == "injected_rejection"
    flaky = BuiltinTax(store, FaultInjector("tax", FaultSettings(transient_rate=1.0)))
    with pytest.raises(TransientError):
        await flaky.quote(order, "doc-2")
    assert get_tax_document(store, "doc-2") is None
