"""The builtin ERP on a real store (SQLite, or PostgreSQL when DATABASE_URL is set): catalog
import, customer matching, idempotent sales orders, allocation across locations, backorders,
invoicing with balanced GL postings, cancellation, concurrency and fault injection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from adapters.erp.builtin import (
    BuiltinErp,
    get_sales_order,
    gl_entries,
    gl_postings,
    list_customers,
    list_invoices,
    plan_allocation,
    stock_levels,
)
from adapters.erp.catalog import import_products, import_stock
from adapters.errors import PermanentError, TransientError
from adapters.faults import FaultInjector
from backoffice.models import Base
from canonical import (
    Customer,
    InvoiceAmounts,
    Money,
    Order,
    OrderLine,
    OrderTotals,
    Shipment,
    ShipmentLine,
    ShippingLine,
    TaxLine,
    invoice_for_shipment,
)
from settings import FaultSettings
from store.db import Store

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LEDGER_PREFIXES = ("erp_", "tax_", "payment_")


# -- builders ---------------------------------------------------------------------------------


def line(line_id: str, sku: str | None, qty: int, price: str, **kw: Any) -> OrderLine:
    return OrderLine(
        line_id=line_id, sku=sku, title=sku or "custom", quantity=qty, unit_price=Money.of(price, "USD"), **kw
    )


def make_order(
    external_id: str,
    lines: Sequence[OrderLine],
    *,
    rate: str | None = None,
    taxes_included: bool = False,
    shipping: str | None = None,
    customer: Customer | None = None,
) -> Order:
    """A valid USD order; ``rate`` adds per-line tax (extracted from the gross when inclusive)."""
    cur = "USD"

    def tax(base: Money) -> list[TaxLine]:
        if rate is None:
            return []
        r = Decimal(rate)
        exact = base.amount - base.amount / (1 + r) if taxes_included else base.amount * r
        return [TaxLine(title="Sales tax", rate=r, amount=Money.round(exact, cur))]

    taxed = [ln.model_copy(update={"tax_lines": tax(ln.net)}) for ln in lines]
    ships = []
    if shipping is not None:
        price = Money.of(shipping, cur)
        ships = [ShippingLine(code="std", title="Standard", price=price, tax_lines=tax(price))]
    subtotal = Money.sum((ln.subtotal for ln in taxed), cur)
    ship_total = Money.sum((s.price for s in ships), cur)
    tax_total = Money.sum((ln.tax for ln in taxed), cur) + Money.sum((s.tax for s in ships), cur)
    total = subtotal + ship_total + (Money.zero(cur) if taxes_included else tax_total)
    return Order(
        channel="shop",
        external_id=external_id,
        placed_at=NOW,
        currency=cur,
        taxes_included=taxes_included,
        customer=customer or Customer(email="ann@example.com"),
        lines=taxed,
        shipping_lines=ships,
        totals=OrderTotals(
            subtotal=subtotal,
            discount_total=Money.zero(cur),
            shipping_total=ship_total,
            tax_total=tax_total,
            total=total,
        ),
    )


def shipment(order: Order, shipment_id: str, location: str, lines: dict[str, int]) -> Shipment:
    return Shipment(
        shipment_id=shipment_id,
        order_key=order.key,
        location=location,
        lines=[
            ShipmentLine(line_id=lid, sku=order.line(lid).sku or "", quantity=q) for lid, q in lines.items()
        ],
        shipped_at=NOW,
    )


def seed(store: Store, stock: dict[tuple[str, str], int]) -> None:
    skus = sorted({sku for sku, _ in stock})
    import_products(
        store, [{"sku": s, "title": s.title(), "price": "10.00", "currency": "USD"} for s in skus]
    )
    import_stock(store, [{"sku": s, "location": loc, "on_hand": n} for (s, loc), n in stock.items()])


def levels(store: Store, sku: str) -> dict[str, tuple[int, int]]:
    return {lv.location: (lv.on_hand, lv.reserved) for lv in stock_levels(store, sku)}


async def new_customer(erp: BuiltinErp, email: str = "ann@example.com") -> str:
    return (await erp.resolve_customer(Customer(email=email), None)).customer_id


# -- catalog import ---------------------------------------------------------------------------


def test_catalog_import_from_csv_and_json_is_an_idempotent_upsert(store: Store, tmp_path: Path) -> None:
    csv_file = tmp_path / "products.csv"
    csv_file.write_text("sku,title,price,currency,weight_grams\nTEE,Tee,25.00,USD,200\nMUG,Mug,12.5,USD,\n")
    first = import_products(store, csv_file)
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    again = import_products(store, csv_file)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)

    json_file = tmp_path / "products.json"
    json_file.write_text(
        '[{"sku": "TEE", "title": "Tee", "price": 27.50, "currency": "USD", "weight_grams": 200},'
        ' {"sku": "YEN", "title": "Yen thing", "price": "1980", "currency": "JPY"}]'
    )
    changed = import_products(store, json_file)
    assert (changed.created, changed.updated, changed.unchanged) == (1, 1, 0)

    stock_file = tmp_path / "stock.json"
    stock_file.write_text(
        '{"stock": [{"sku": "TEE", "location": "WH-EAST", "on_hand": 7},'
        ' {"sku": "TEE", "location": "WH-WEST", "on_hand": "3"}]}'
    )
    assert import_stock(store, stock_file).created == 2
    assert import_stock(store, stock_file).unchanged == 2
    import_stock(store, [{"sku": "TEE", "location": "WH-EAST", "on_hand": 9}])
    assert levels(store, "TEE") == {"WH-EAST": (9, 0), "WH-WEST": (3, 0)}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [
                {"sku": "A", "title": "A", "price": "1.00", "currency": "USD"},
                {"sku": "B", "title": "B", "currency": "USD"},
            ],
            "row 2: missing price",
        ),
        ([{"sku": "A", "title": "A", "price": "1.005", "currency": "USD"}], "row 1: price"),
        ([{"sku": "A", "title": "A", "price": 1.5, "currency": "USD"}], "row 1: price must be"),
        ([{"sku": "A", "title": "A", "price": "1", "currency": "XXX"}], "row 1:"),
        ([{"sku": "A", "title": "A", "price": "1", "currency": "USD"}] * 2, "row 2: sku 'A' repeats row 1"),
    ],
)
def test_bad_product_rows_name_their_row_and_write_nothing(
    store: Store, rows: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        import_products(store, rows)
    assert import_products(store, []).total == 0
    assert stock_levels(store) == []


def test_stock_import_refuses_unknown_skus_and_bad_counts(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 1})
    with pytest.raises(ValueError, match=r"row 2: unknown sku 'NOPE'"):
        import_stock(
            store,
            [{"sku": "TEE", "location": "X", "on_hand": 1}, {"sku": "NOPE", "location": "X", "on_hand": 1}],
        )
    with pytest.raises(ValueError, match="row 1: on_hand must be a whole number"):
        import_stock(store, [{"sku": "TEE", "location": "X", "on_hand": "2.5"}])
    with pytest.raises(ValueError, match="row 1: on_hand must not be negative"):
        import_stock(store, [{"sku": "TEE", "location": "X", "on_hand": -1}])
    assert levels(store, "TEE") == {"WH-EAST": (1, 0)}


# -- customers --------------------------------------------------------------------------------


async def test_customers_match_on_external_id_then_email_then_phone_and_never_duplicate(store: Store) -> None:
    erp = BuiltinErp(store)
    first = await erp.resolve_customer(Customer(external_id="c-1", email="Ann@Example.com"), None)
    assert first.created and first.matched_on == "new" and first.customer_id.startswith("CUST-")

    by_id = await erp.resolve_customer(Customer(external_id="c-1", email="other@example.com"), None)
    by_email = await erp.resolve_customer(
        Customer(email="  ANN@example.COM ", phone="+1 (555) 010-0000"), None
    )
    by_phone = await erp.resolve_customer(Customer(phone="+1 555 010 0000"), None)
    assert (by_id.matched_on, by_email.matched_on, by_phone.matched_on) == ("external_id", "email", "phone")
    assert {by_id.customer_id, by_email.customer_id, by_phone.customer_id} == {first.customer_id}
    assert not (by_id.created or by_email.created or by_phone.created)

    someone_else = await erp.resolve_customer(Customer(email="bob@example.com"), None)
    assert someone_else.created and someone_else.customer_id != first.customer_id
    customers = list_customers(store)
    assert len(customers) == 2
    ann = next(c for c in customers if c.customer_id == first.customer_id)
    # It learned the identifiers it was matched with (the other email stays unclaimed: bob is not ann).
    assert ("phone", "+15550100000") in ann.keys and ("email", "other@example.com") in ann.keys


async def test_customers_without_any_identifier_share_one_guest_account(store: Store) -> None:
    erp = BuiltinErp(store)
    first = await erp.resolve_customer(Customer(guest=True), None)
    again = await erp.resolve_customer(Customer(first_name="Walk", last_name="In"), None)
    assert first.created and not again.created and again.customer_id == first.customer_id
    assert len(list_customers(store)) == 1


def test_concurrent_first_orders_of_one_customer_create_one_customer(store: Store) -> None:
    other = Store(store.url)  # a second process's engine
    try:
        erps = [BuiltinErp(store), BuiltinErp(other)]
        barrier = threading.Barrier(10)
        refs: list[Any] = []

        def resolve(i: int) -> None:
            barrier.wait()
            refs.append(asyncio.run(erps[i % 2].resolve_customer(Customer(email="race@example.com"), None)))

        threads = [threading.Thread(target=resolve, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.dispose()
    assert len(refs) == 10
    assert len({r.customer_id for r in refs}) == 1
    assert sum(r.created for r in refs) == 1
    assert len(list_customers(store)) == 1


# -- sales orders and allocation ----------------------------------------------------------------


async def test_create_sales_order_replay_returns_the_same_order_and_allocations(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 10})
    erp = BuiltinErp(store)
    cid = await new_customer(erp)
    order = make_order("1001", [line("L1", "TEE", 2, "25.00")])
    first = await erp.create_sales_order(order, cid, "key-1")
    assert first.created and first.erp_order_id.startswith("SO-") and len(first.erp_order_id) == 9
    replay = await erp.create_sales_order(order, cid, "key-1-retry")
    assert not replay.created
    assert replay.model_dump(exclude={"created"}) == first.model_dump(exclude={"created"})
    assert levels(store, "TEE") == {"WH-EAST": (10, 2)}  # reserved once, not twice
    so = get_sales_order(store, first.erp_order_id)
    assert so is not None and so.status == "open" and so.lines[0].allocated == 2


async def test_unknown_skus_are_refused_by_name_and_non_stock_lines_are_not_allocated(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 10})
    erp = BuiltinErp(store)
    cid = await new_customer(erp)
    bad = make_order(
        "1002",
        [line("L1", "TEE", 1, "25.00"), line("L2", "NOPE-1", 1, "5.00"), line("L3", "NOPE-2", 1, "5.00")],
    )
    with pytest.raises(PermanentError) as exc:
        await erp.create_sales_order(bad, cid, "k")
    assert (
        exc.value.reason == "unknown_sku" and "NOPE-1" in exc.value.message and "NOPE-2" in exc.value.message
    )
    assert levels(store, "TEE") == {"WH-EAST": (10, 0)}

    mixed = make_order(
        "1003",
        [
            line("L1", "TEE", 1, "25.00"),
            line("GC", "GIFT-50", 1, "50.00", gift_card=True, requires_shipping=False),
            line("DL", "EBOOK", 1, "9.00", requires_shipping=False),
            line("CU", None, 1, "3.00"),
        ],
    )
    ack = await erp.create_sales_order(mixed, cid, "k2")
    assert [(a.line_id, a.quantity) for a in ack.allocations] == [("L1", 1)] and ack.backordered == []


def test_plan_prefers_one_location_with_most_availability_then_name() -> None:
    avail = {
        ("A", "WH-1"): 5,
        ("B", "WH-1"): 5,
        ("A", "WH-2"): 9,
        ("B", "WH-2"): 2,
        ("A", "WH-3"): 9,
        ("B", "WH-3"): 2,
    }
    allocs, back = plan_allocation([("L1", "A", 2), ("L2", "B", 2)], avail)
    assert {a.location for a in allocs} == {"WH-2"} and back == []  # 11 > 10; WH-2 before WH-3 on the tie
    allocs, back = plan_allocation([("L1", "A", 2), ("L2", "B", 3)], avail)
    assert {a.location for a in allocs} == {"WH-1"}  # the only one that can fill everything


async def test_split_allocation_across_two_locations_largest_first(store: Store) -> None:
    seed(store, {("HAT", "WH-EAST"): 3, ("HAT", "WH-WEST"): 4})
    erp = BuiltinErp(store)
    ack = await erp.create_sales_order(
        make_order("2001", [line("L1", "HAT", 5, "18.00")]), await new_customer(erp), "k"
    )
    assert [(a.location, a.quantity) for a in ack.allocations] == [("WH-WEST", 4), ("WH-EAST", 1)]
    assert ack.backordered == []
    assert levels(store, "HAT") == {"WH-EAST": (3, 1), "WH-WEST": (4, 4)}


async def test_backorder_then_allocate_when_stock_arrives(store: Store) -> None:
    seed(store, {("HAT", "WH-EAST"): 2, ("CAP", "WH-EAST"): 1})
    erp = BuiltinErp(store)
    order = make_order("3001", [line("L1", "HAT", 5, "18.00"), line("L2", "CAP", 1, "9.00")])
    ack = await erp.create_sales_order(order, await new_customer(erp), "k")
    assert [(a.line_id, a.location, a.quantity) for a in ack.allocations] == [
        ("L1", "WH-EAST", 2),
        ("L2", "WH-EAST", 1),
    ]
    assert [(b.line_id, b.quantity) for b in ack.backordered] == [("L1", 3)]
    assert get_sales_order(store, ack.erp_order_id).status == "backordered"  # type: ignore[union-attr]

    nothing_new = await erp.allocate_backorders(ack.erp_order_id)
    assert nothing_new.allocations == ack.allocations and nothing_new.backordered == ack.backordered

    import_stock(
        store,
        [
            {"sku": "HAT", "location": "WH-EAST", "on_hand": 4},
            {"sku": "HAT", "location": "WH-WEST", "on_hand": 5},
        ],
    )
    again = await erp.allocate_backorders(ack.erp_order_id)
    # Earlier allocations keep their exact shape; this run's are new entries.
    assert again.allocations[: len(ack.allocations) - 1] == ack.allocations[:1]
    assert [(a.line_id, a.location, a.quantity) for a in again.allocations] == [
        ("L1", "WH-EAST", 2),
        ("L1", "WH-WEST", 3),
        ("L2", "WH-EAST", 1),
    ]
    assert again.backordered == [] and not again.created
    assert levels(store, "HAT") == {"WH-EAST": (4, 2), "WH-WEST": (5, 3)}
    assert get_sales_order(store, ack.erp_order_id).status == "open"  # type: ignore[union-attr]


def test_twenty_concurrent_orders_never_oversell_five_units(store: Store) -> None:
    seed(store, {("HOT", "WH-EAST"): 3, ("HOT", "WH-WEST"): 2})
    other = Store(store.url)  # a second process's engine
    try:
        erps = [BuiltinErp(store), BuiltinErp(other)]
        cid = asyncio.run(new_customer(erps[0]))
        barrier = threading.Barrier(20)
        acks: list[Any] = []
        errors: list[BaseException] = []

        def place(i: int) -> None:
            order = make_order(f"hot-{i}", [line("L1", "HOT", 1, "10.00")])
            barrier.wait()
            try:
                acks.append(asyncio.run(erps[i % 2].create_sales_order(order, cid, f"k-{i}")))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=place, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.dispose()
    assert errors == []
    assert len(acks) == 20 and len({a.erp_order_id for a in acks}) == 20
    assert sum(a.quantity for ack in acks for a in ack.allocations) == 5
    assert sum(b.quantity for ack in acks for b in ack.backordered) == 15
    assert levels(store, "HOT") == {"WH-EAST": (3, 3), "WH-WEST": (2, 2)}


# -- invoicing and the GL ----------------------------------------------------------------------


def _balanced(store: Store, erp_order_id: str) -> tuple[Money, Money]:
    entries = gl_entries(store, erp_order_id=erp_order_id)
    return Money.sum((e.debit for e in entries), "USD"), Money.sum((e.credit for e in entries), "USD")


async def test_invoice_shipment_moves_stock_posts_balanced_gl_and_is_idempotent(store: Store) -> None:
    seed(store, {("HAT", "WH-EAST"): 3, ("HAT", "WH-WEST"): 4})
    erp = BuiltinErp(store)
    order = make_order("4001", [line("L1", "HAT", 5, "18.00")], rate="0.0725", shipping="5.00")
    ack = await erp.create_sales_order(order, await new_customer(erp), "k")
    so_id = ack.erp_order_id

    first = invoice_for_shipment(order, {}, {"L1": 4}, first=True)
    inv = await erp.invoice_shipment(so_id, shipment(order, "S1", "WH-WEST", {"L1": 4}), first, "inv-1")
    assert inv.invoice_id.startswith("INV-") and inv.total == first.total
    replay = await erp.invoice_shipment(so_id, shipment(order, "S1", "WH-WEST", {"L1": 4}), first, "inv-1")
    assert replay == inv
    assert levels(store, "HAT") == {"WH-EAST": (3, 1), "WH-WEST": (0, 0)}
    assert get_sales_order(store, so_id).status == "partially_shipped"  # type: ignore[union-attr]

    # Shipping more than is allocated at a location is refused without side effects.
    with pytest.raises(PermanentError) as exc:
        await erp.invoice_shipment(
            so_id,
            shipment(order, "S2", "WH-EAST", {"L1": 2}),
            invoice_for_shipment(order, {"L1": 4}, {"L1": 1}, first=False),
            "inv-x",
        )
    assert exc.value.reason == "not_allocated"

    second = invoice_for_shipment(order, {"L1": 4}, {"L1": 1}, first=False)
    await erp.invoice_shipment(so_id, shipment(order, "S2", "WH-EAST", {"L1": 1}), second, "inv-2")
    assert levels(store, "HAT") == {"WH-EAST": (2, 0), "WH-WEST": (0, 0)}
    assert get_sales_order(store, so_id).status == "shipped"  # type: ignore[union-attr]

    invoices = list_invoices(store, so_id)
    assert len(invoices) == 2 and Money.sum((i.total for i in invoices), "USD") == order.totals.total
    debit, credit = _balanced(store, so_id)
    assert debit == credit == order.totals.total
    by_account: dict[str, Money] = {}
    for e in gl_entries(store, erp_order_id=so_id):
        by_account[e.account] = by_account.get(e.account, Money.zero("USD")) + e.credit - e.debit
    assert by_account == {
        "Accounts Receivable": -order.totals.total,
        "Revenue": Money.of("90.00", "USD"),
        "Shipping Revenue": Money.of("5.00", "USD"),
        "Sales Tax Payable": order.totals.tax_total,
    }


def test_gl_postings_for_tax_inclusive_amounts_balance_exactly() -> None:
    order = make_order(
        "5001",
        [line("L1", "TEE", 3, "33.33"), line("L2", "MUG", 1, "19.99")],
        rate="0.19",
        taxes_included=True,
        shipping="4.99",
    )
    amounts = invoice_for_shipment(order, {}, {"L1": 3, "L2": 1}, first=True)
    postings = gl_postings(amounts, taxes_included=True)
    debit = Money.sum((d for _, d, _ in postings), "USD")
    credit = Money.sum((c for _, _, c in postings), "USD")
    assert debit == credit == amounts.total == order.totals.total
    credits = {acct: c for acct, _, c in postings}
    # Revenue is the gross lines minus the tax inside them; shipping likewise.
    assert credits["Revenue"] == Money.of("119.98", "USD") - Money.sum(
        (ln.tax for ln in amounts.lines), "USD"
    )
    assert credits["Shipping Revenue"] == Money.of("4.99", "USD") - amounts.shipping_tax
    assert credits["Sales Tax Payable"] == amounts.tax

    broken = InvoiceAmounts.model_validate(amounts.model_dump() | {"total": Money.of("1.00", "USD")})
    with pytest.raises(ValueError, match="do not balance"):
        gl_postings(broken, taxes_included=True)


async def test_tax_inclusive_order_invoices_with_balanced_books(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 5})
    erp = BuiltinErp(store)
    order = make_order(
        "5002", [line("L1", "TEE", 3, "33.33")], rate="0.20", taxes_included=True, shipping="4.99"
    )
    ack = await erp.create_sales_order(order, await new_customer(erp), "k")
    amounts = invoice_for_shipment(order, {}, {"L1": 3}, first=True)
    await erp.invoice_shipment(ack.erp_order_id, shipment(order, "S1", "WH-EAST", {"L1": 3}), amounts, "i")
    debit, credit = _balanced(store, ack.erp_order_id)
    assert debit == credit == order.totals.total


# -- cancellation -------------------------------------------------------------------------------


async def test_cancel_before_shipment_releases_reservations_once(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 2, ("TEE", "WH-WEST"): 2})
    erp = BuiltinErp(store)
    order = make_order("6001", [line("L1", "TEE", 5, "25.00")])
    ack = await erp.create_sales_order(order, await new_customer(erp), "k")
    assert sum(b.quantity for b in ack.backordered) == 1

    cancel = await erp.cancel_sales_order(ack.erp_order_id, "customer asked", "cancel-1")
    assert cancel.status == "cancelled"
    assert sorted((a.location, a.quantity) for a in cancel.released) == [("WH-EAST", 2), ("WH-WEST", 2)]
    assert levels(store, "TEE") == {"WH-EAST": (2, 0), "WH-WEST": (2, 0)}
    assert await erp.cancel_sales_order(ack.erp_order_id, "customer asked", "cancel-1") == cancel
    again = await erp.cancel_sales_order(ack.erp_order_id, "twice", "cancel-2")
    assert again.status == "already_cancelled" and again.released == []
    so = get_sales_order(store, ack.erp_order_id)
    assert so is not None and so.status == "cancelled" and so.lines[0].cancelled == 5
    # A cancelled order allocates nothing more.
    assert (await erp.allocate_backorders(ack.erp_order_id)).backordered == []
    assert levels(store, "TEE") == {"WH-EAST": (2, 0), "WH-WEST": (2, 0)}


async def test_cancel_after_partial_shipment_cancels_the_rest(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 2, ("TEE", "WH-WEST"): 3})
    erp = BuiltinErp(store)
    order = make_order("6002", [line("L1", "TEE", 5, "25.00")])
    ack = await erp.create_sales_order(order, await new_customer(erp), "k")
    amounts = invoice_for_shipment(order, {}, {"L1": 3}, first=True)
    await erp.invoice_shipment(ack.erp_order_id, shipment(order, "S1", "WH-WEST", {"L1": 3}), amounts, "i1")
    cancel = await erp.cancel_sales_order(ack.erp_order_id, "rest out of date", "c1")
    assert cancel.status == "partially_cancelled"
    assert [(a.location, a.quantity) for a in cancel.released] == [("WH-EAST", 2)]
    assert levels(store, "TEE") == {"WH-EAST": (2, 0), "WH-WEST": (0, 0)}
    with pytest.raises(PermanentError) as exc:
        await erp.cancel_sales_order("SO-999999", "x", "c2")
    assert exc.value.reason == "not_found"


async def test_a_fully_shipped_order_cannot_be_cancelled(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 2})
    erp = BuiltinErp(store)
    order = make_order("6003", [line("L1", "TEE", 2, "25.00")])
    ack = await erp.create_sales_order(order, await new_customer(erp), "k")
    amounts = invoice_for_shipment(order, {}, {"L1": 2}, first=True)
    await erp.invoice_shipment(ack.erp_order_id, shipment(order, "S1", "WH-EAST", {"L1": 2}), amounts, "i1")
    with pytest.raises(PermanentError) as exc:
        await erp.cancel_sales_order(ack.erp_order_id, "too late", "c1")
    assert exc.value.reason == "already_shipped"
    assert get_sales_order(store, ack.erp_order_id).status == "shipped"  # type: ignore[union-attr]


# -- faults and schema --------------------------------------------------------------------------


async def test_configured_faults_reject_permanently_or_fail_transiently(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 2, ("BAD-1", "WH-EAST"): 2})
    good = BuiltinErp(store)
    cid = await new_customer(good)
    rejecting = BuiltinErp(store, FaultInjector("erp", FaultSettings(reject=["sku=BAD-1"])))
    with pytest.raises(PermanentError) as exc:
        await rejecting.create_sales_order(make_order("7001", [line("L1", "BAD-1", 1, "1.00")]), cid, "k")
    assert exc.value.reason == "injected_rejection"
    assert (
        await rejecting.create_sales_order(make_order("7002", [line("L1", "TEE", 1, "1.00")]), cid, "k2")
    ).created

    flaky = BuiltinErp(store, FaultInjector("erp", FaultSettings(transient_rate=1.0)))
    with pytest.raises(TransientError):
        await flaky.resolve_customer(Customer(email="x@example.com"), None)
    assert len(list_customers(store)) == 1


def test_ledger_migration_matches_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, Base.metadata)
    ours = [d for d in diffs if any(p in repr(d) for p in LEDGER_PREFIXES)]
    assert ours == []


async def test_web_orders_are_never_allocated_from_a_store_the_pos_counts(store: Store) -> None:
    # STORE-1 has the most, but its stock is the POS's (RETAIL_SHOPIFY_STORE_LOCATIONS).
    seed(store, {("TEE", "WH-EAST"): 1, ("TEE", "STORE-1"): 10})
    erp = BuiltinErp(store, never_allocate_from=["STORE-1"])
    cid = await new_customer(erp)
    ack = await erp.create_sales_order(make_order("1201", [line("L1", "TEE", 3, "25.00")]), cid, "key-store")
    assert [(a.location, a.quantity) for a in ack.allocations] == [("WH-EAST", 1)]
    assert [(b.line_id, b.quantity) for b in ack.backordered] == [("L1", 2)]
    import_stock(store, [{"sku": "TEE", "location": "WH-EAST", "on_hand": 5}])
    later = await erp.allocate_backorders(ack.erp_order_id)
    assert sorted((a.location, a.quantity) for a in later.allocations) == [("WH-EAST", 1), ("WH-EAST", 2)]
    assert levels(store, "TEE")["STORE-1"] == (10, 0)  # the store's shelf is untouched
