"""The inventory ledger on a real store (SQLite, or PostgreSQL when DATABASE_URL is set): every
movement kind, idempotency on the event id (also under concurrency), transfer atomicity, the
ERP's own stock changes in the same journal, channel availability, the change feed, and the
one that matters most: concurrent orders never oversell."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from adapters.erp import inventory as inventory_module
from adapters.erp.builtin import BuiltinErp
from adapters.erp.catalog import import_products, import_stock
from adapters.erp.inventory import InventoryLedger, apply_in
from adapters.errors import PermanentError
from backoffice.models import Base
from canonical import (
    Customer,
    InventoryEvent,
    Money,
    Order,
    OrderLine,
    OrderTotals,
    Shipment,
    ShipmentLine,
    invoice_for_shipment,
)
from canonical.inventory import MovementKind, StockPosition
from store.db import Store
from store.inventory import Movement
from store.migrate import upgrade
from tests.dbutil import fresh_database_url, postgres_url

# A day ahead of the wall clock: the seed's import counts every position at the time it runs, and
# a count older than a position's newest count changes nothing (the stale-count guard).
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


@pytest.fixture(autouse=True)
def _counts_may_be_dated_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """NOW is a day ahead: let counts be dated up to three days ahead in these tests (the guard
    against future counts has its own test)."""
    monkeypatch.setattr(inventory_module, "COUNT_CLOCK_SKEW", timedelta(days=3))


def test_a_count_dated_in_the_future_is_refused(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory_module, "COUNT_CLOCK_SKEW", timedelta(minutes=5))
    seed(store, {("TEE", "WH-EAST"): 5})
    ledger = InventoryLedger(store)
    ahead = datetime.now(UTC) + timedelta(hours=5)  # local time labelled UTC, say
    with pytest.raises(PermanentError) as exc:
        ledger.apply(ev("future", "cycle_count", 1, occurred_at=ahead))
    assert exc.value.reason == "count_in_future" and pos(ledger) == {"WH-EAST": (5, 0)}
    # A clock a minute fast is fine, and later counts are not taken for stale.
    ledger.apply(ev("fast", "cycle_count", 4, occurred_at=datetime.now(UTC) + timedelta(minutes=1)))
    assert pos(ledger) == {"WH-EAST": (4, 0)}


# -- builders ---------------------------------------------------------------------------------


def ev(event_id: str, kind: MovementKind, qty: int, location: str = "WH-EAST", **kw: Any) -> InventoryEvent:
    kw.setdefault("sku", "TEE")
    kw.setdefault("source", "wms")
    kw.setdefault("occurred_at", NOW)
    return InventoryEvent(event_id=event_id, kind=kind, location=location, quantity=qty, **kw)


def seed(store: Store, stock: dict[tuple[str, str], int], extra_skus: Sequence[str] = ()) -> None:
    skus = sorted({sku for sku, _ in stock} | set(extra_skus))
    import_products(store, [{"sku": s, "title": s, "price": "10.00", "currency": "USD"} for s in skus])
    import_stock(store, [{"sku": s, "location": loc, "on_hand": n} for (s, loc), n in stock.items()])


def pos(ledger: InventoryLedger, sku: str = "TEE") -> dict[str, tuple[int, int]]:
    return {p.location: (p.on_hand, p.reserved) for p in ledger.positions(sku)}


def journal(ledger: InventoryLedger, sku: str = "TEE") -> list[Movement]:
    """The SKU's whole journal, oldest first."""
    return list(reversed(ledger.movements(sku, limit=100_000)))


def assert_reconciles(ledger: InventoryLedger, sku: str) -> None:
    """The journal explains every position: deltas add up to it, the last row's balances are it."""
    rows = journal(ledger, sku)
    for p in ledger.positions(sku):
        mine = [m for m in rows if m.location == p.location]
        assert sum(m.on_hand_delta for m in mine) == p.on_hand, p
        assert sum(m.reserved_delta for m in mine) == p.reserved, p
        assert (mine[-1].on_hand_after, mine[-1].reserved_after) == (p.on_hand, p.reserved), p


def order(external_id: str, sku: str, qty: int) -> Order:
    ln = OrderLine(line_id="L1", sku=sku, title=sku, quantity=qty, unit_price=Money.of("10.00", "USD"))
    total = Money.of(Decimal("10.00") * qty, "USD")
    return Order(
        channel="shop",
        external_id=external_id,
        placed_at=NOW,
        currency="USD",
        customer=Customer(email="ann@example.com"),
        lines=[ln],
        totals=OrderTotals(
            subtotal=total,
            discount_total=Money.zero("USD"),
            shipping_total=Money.zero("USD"),
            tax_total=Money.zero("USD"),
            total=total,
        ),
    )


def run_threads(n: int, work: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """``work(i)`` in ``n`` threads released together; results and errors."""
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            r = work(i)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(r)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


# -- movement kinds ---------------------------------------------------------------------------


def test_each_movement_kind_moves_on_hand_and_reserved_and_journals_balances(store: Store) -> None:
    seed(store, {}, extra_skus=["TEE"])
    ledger = InventoryLedger(store)
    steps: list[tuple[InventoryEvent, tuple[int, int], tuple[int, int]]] = [
        # event, (on hand delta, reserved delta), (on hand, reserved) after
        (ev("e1", "receipt", 10, reference="PO-1"), (10, 0), (10, 0)),
        (ev("e2", "reservation", 4, source="order"), (0, 4), (10, 4)),
        (ev("e3", "release", 1, source="order"), (0, -1), (10, 3)),
        (ev("e4", "shipment", 2), (-2, -2), (8, 1)),
        (ev("e5", "return_restock", 1, source="return"), (1, 0), (9, 1)),
        (ev("e6", "adjustment", -2, source="operator", reference="damaged"), (-2, 0), (7, 1)),
        (ev("e7", "adjustment", 1, source="operator"), (1, 0), (8, 1)),
        (ev("e8", "channel_sale", 3, source="channel:pos"), (-3, 0), (5, 1)),
        (ev("e9", "cycle_count", 6, source="operator"), (1, 0), (6, 1)),
    ]
    for event, _, (on_hand, reserved) in steps:
        [p] = ledger.apply(event)
        assert (p.sku, p.location, p.on_hand, p.reserved) == ("TEE", "WH-EAST", on_hand, reserved), event
        assert p.available == on_hand - reserved

    rows = journal(ledger)
    assert [m.event_id for m in rows] == [e.event_id for e, _, _ in steps]
    assert [m.seq for m in rows] == sorted(m.seq for m in rows)
    for m, (event, deltas, after) in zip(rows, steps, strict=True):
        assert (m.kind, m.quantity, m.leg) == (event.kind, event.quantity, 0)
        assert (m.on_hand_delta, m.reserved_delta) == deltas
        assert (m.on_hand_after, m.reserved_after) == after
        assert (m.source, m.reference, m.occurred_at) == (event.source, event.reference, NOW)
    assert [m.event_id for m in ledger.movements("TEE", limit=2)] == ["e9", "e8"]  # newest first
    assert_reconciles(ledger, "TEE")


def test_cycle_count_journals_the_delta_and_the_counted_figure(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 10})
    ledger = InventoryLedger(store)
    ledger.apply(ev("r", "reservation", 4, source="order"))
    [p] = ledger.apply(ev("count-1", "cycle_count", 3, source="operator"))
    # Counted under the reservations: on hand is the count, available clamps at zero.
    assert (p.on_hand, p.reserved, p.available) == (3, 4, 0)
    m = ledger.movements("TEE", limit=1)[0]
    assert (m.kind, m.quantity, m.on_hand_delta, m.reserved_delta, m.on_hand_after) == (
        "cycle_count",
        3,
        -7,
        0,
        3,
    )
    [p] = ledger.apply(ev("count-2", "cycle_count", 3, source="operator"))  # recount, same figure
    assert ledger.movements("TEE", limit=1)[0].on_hand_delta == 0 and p.on_hand == 3
    [p] = ledger.apply(ev("count-3", "cycle_count", 5, location="WH-NEW", source="operator"))
    assert (p.location, p.on_hand, p.reserved) == ("WH-NEW", 5, 0)
    assert_reconciles(ledger, "TEE")


def test_channel_sale_is_recorded_even_past_zero_and_available_clamps(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 2})
    ledger = InventoryLedger(store)
    ledger.apply(ev("r", "reservation", 1, source="order"))
    [p] = ledger.apply(ev("pos-1", "channel_sale", 3, source="channel:pos", reference="till 4"))
    assert (p.on_hand, p.reserved, p.available) == (-1, 1, 0)
    assert ledger.channel_availability("web", ["TEE"])[0].available == 0
    # The next count puts the ledger right, with the full correction in the journal.
    ledger.apply(ev("count", "cycle_count", 4, source="operator"))
    assert ledger.movements("TEE", limit=1)[0].on_hand_delta == 5
    assert pos(ledger) == {"WH-EAST": (4, 1)}
    assert_reconciles(ledger, "TEE")


def test_a_count_older_than_the_newest_count_changes_nothing_and_is_journalled_stale(
    store: Store,
) -> None:
    seed(store, {}, extra_skus=["TEE"])
    ledger = InventoryLedger(store)
    t = NOW
    [p] = ledger.apply(ev("count-10:00", "cycle_count", 7, occurred_at=t))
    assert p.on_hand == 7
    ledger.apply(ev("sale", "channel_sale", 2, source="channel:pos"))  # deltas are not counts
    _, seq = ledger.changes_since(0)
    n = len(journal(ledger))

    # Delivered late: taken before the count applied above. Position, change feed: untouched.
    [p] = ledger.apply(ev("count-09:59", "cycle_count", 9, occurred_at=t - timedelta(minutes=1)))
    assert (p.on_hand, p.reserved) == (5, 0)
    assert pos(ledger) == {"WH-EAST": (5, 0)} and ledger.changes_since(seq)[0] == []
    stale = journal(ledger)[-1]
    assert (stale.event_id, stale.kind, stale.quantity, stale.stale) == (
        "count-09:59",
        "cycle_count",
        9,
        True,
    )
    assert (stale.on_hand_delta, stale.reserved_delta, stale.on_hand_after) == (0, 0, 5)
    assert len(journal(ledger)) == n + 1
    # Idempotent as ever: a replay answers the same and writes nothing; the id is taken.
    assert ledger.apply(ev("count-09:59", "cycle_count", 9, occurred_at=t - timedelta(minutes=1))) == [p]
    assert len(journal(ledger)) == n + 1
    with pytest.raises(PermanentError) as exc:
        ledger.apply(ev("count-09:59", "cycle_count", 8, occurred_at=t - timedelta(minutes=1)))
    assert exc.value.reason == "event_id_reuse"

    # A tie is applied (whole-second sources cannot order two counts within a second); so is a
    # newer count, which becomes the one older counts are judged by. Other locations are apart.
    [p] = ledger.apply(ev("count-10:00-again", "cycle_count", 6, occurred_at=t))
    assert p.on_hand == 6
    [p] = ledger.apply(ev("count-10:05", "cycle_count", 4, occurred_at=t + timedelta(minutes=5)))
    assert p.on_hand == 4
    [p] = ledger.apply(ev("count-10:01", "cycle_count", 8, occurred_at=t + timedelta(minutes=1)))
    assert p.on_hand == 4 and journal(ledger)[-1].stale
    [p] = ledger.apply(ev("west", "cycle_count", 3, location="WH-WEST", occurred_at=t - timedelta(hours=1)))
    assert p.on_hand == 3
    assert [m.event_id for m in journal(ledger) if m.stale] == ["count-09:59", "count-10:01"]
    assert_reconciles(ledger, "TEE")


def test_an_import_counts_too_and_an_offset_timestamp_is_compared_as_the_instant_it_is(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 5})  # imported now: the position's newest count
    ledger = InventoryLedger(store)
    before_import = datetime.now(UTC) - timedelta(minutes=10)
    [p] = ledger.apply(ev("late", "cycle_count", 9, occurred_at=before_import))
    assert p.on_hand == 5 and journal(ledger)[-1].stale
    # 05:00 at UTC-05:00 is 10:00 UTC: newer than an (UTC) count at 09:30, whatever the zone.
    utc_minus_5 = timezone(timedelta(hours=-5))
    at_0930 = (NOW + timedelta(days=1)).replace(hour=9, minute=30)
    ledger.apply(ev("utc", "cycle_count", 6, occurred_at=at_0930))
    [p] = ledger.apply(
        ev("offset", "cycle_count", 7, occurred_at=at_0930.replace(hour=5, tzinfo=utc_minus_5))
    )
    assert p.on_hand == 7
    assert journal(ledger)[-1].occurred_at == at_0930.replace(hour=10)
    [p] = ledger.apply(ev("older", "cycle_count", 1, occurred_at=at_0930.replace(hour=9, minute=59)))
    assert p.on_hand == 7 and journal(ledger)[-1].stale


REFUSED: list[tuple[InventoryEvent, str]] = [
    (ev("x1", "adjustment", -6), "insufficient_stock"),
    (ev("x2", "reservation", 3), "insufficient_stock"),  # 5 on hand, 3 reserved: 2 available
    (ev("x3", "release", 4), "insufficient_reserved"),
    (ev("x4", "shipment", 4), "not_reserved"),
    (ev("x5", "shipment", 1, location="WH-WEST"), "insufficient_stock"),  # nothing there
    (ev("x6", "transfer", 3, to_location="WH-WEST"), "insufficient_stock"),  # reserved units stay
    (ev("x7", "transfer", 1, to_location="WH-EAST"), "invalid_event"),
    (ev("x8", "release", 1, location="WH-WEST"), "insufficient_reserved"),
    (ev("x9", "receipt", 1, sku="NOPE"), "unknown_sku"),
    (ev("erp:SO-000001:create", "receipt", 1), "reserved_event_id"),
    (ev("import:abc:1", "receipt", 1), "reserved_event_id"),
    (ev("x10", "receipt", 1, source="w" * 101), "invalid_event"),  # refused alike on both databases
]


def test_refused_movements_write_nothing_and_leave_their_id_free(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 5})
    ledger = InventoryLedger(store)
    ledger.apply(ev("r", "reservation", 3, source="order"))
    before = (pos(ledger), journal(ledger), ledger.changes_since(0))
    for event, reason in REFUSED:
        with pytest.raises(PermanentError) as exc:
            ledger.apply(event)
        assert exc.value.reason == reason, event
        assert (pos(ledger), journal(ledger), ledger.changes_since(0)) == before, event
    # A refused id stays free: the corrected event goes through under it.
    free = [e.event_id for e, reason in REFUSED if reason not in ("unknown_sku", "reserved_event_id")]
    for event_id in free:
        ledger.apply(ev(event_id, "receipt", 1))
    assert pos(ledger) == {"WH-EAST": (5 + len(free), 3)}
    assert_reconciles(ledger, "TEE")


# -- idempotency ------------------------------------------------------------------------------


def test_a_replayed_event_returns_its_first_positions_and_writes_nothing(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 5})
    ledger = InventoryLedger(store)
    first = ledger.apply(ev("asn-77", "receipt", 4))
    assert [(p.on_hand, p.reserved) for p in first] == [(9, 0)]
    ledger.apply(ev("adj-1", "adjustment", -2))
    _, seq = ledger.changes_since(0)
    n = len(journal(ledger))

    replay = ledger.apply(ev("asn-77", "receipt", 4))
    assert replay == first  # as the event left it, not the current (7, 0)
    assert pos(ledger) == {"WH-EAST": (7, 0)}
    assert len(journal(ledger)) == n and ledger.changes_since(seq) == ([], seq)

    with pytest.raises(PermanentError) as exc:
        ledger.apply(ev("asn-77", "receipt", 5))  # the same id for another change
    assert exc.value.reason == "event_id_reuse"
    with pytest.raises(PermanentError) as exc:
        ledger.apply(ev("asn-77", "adjustment", 4))
    assert exc.value.reason == "event_id_reuse"


def test_concurrent_copies_of_one_event_apply_once(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 5})
    other = Store(store.url)  # a second process's engine
    try:
        ledgers = [InventoryLedger(store), InventoryLedger(other)]
        # An existing position (row locks) and a new one (a race to insert it).
        for event in (ev("dup-1", "receipt", 3), ev("dup-2", "receipt", 2, location="WH-NEW")):

            def apply(i: int, event: InventoryEvent = event) -> list[StockPosition]:
                return ledgers[i % 2].apply(event)

            results, errors = run_threads(16, apply)
            assert errors == []
            assert len(results) == 16 and all(r == results[0] for r in results)
    finally:
        other.dispose()
    ledger = InventoryLedger(store)
    assert pos(ledger) == {"WH-EAST": (8, 0), "WH-NEW": (2, 0)}
    assert [m.event_id for m in journal(ledger)].count("dup-1") == 1
    assert [m.event_id for m in journal(ledger)].count("dup-2") == 1
    assert_reconciles(ledger, "TEE")


# -- transfers --------------------------------------------------------------------------------


def test_transfer_moves_both_legs_in_one_event(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 5})
    ledger = InventoryLedger(store)
    out, into = ledger.apply(ev("t-1", "transfer", 2, to_location="WH-WEST", reference="TO-9"))
    assert (out.location, out.on_hand, into.location, into.on_hand) == ("WH-EAST", 3, "WH-WEST", 2)
    legs = [m for m in journal(ledger) if m.event_id == "t-1"]
    assert [(m.leg, m.kind, m.location, m.on_hand_delta, m.on_hand_after) for m in legs] == [
        (0, "transfer", "WH-EAST", -2, 3),
        (1, "transfer", "WH-WEST", 2, 2),
    ]
    assert ledger.apply(ev("t-1", "transfer", 2, to_location="WH-WEST", reference="TO-9")) == [out, into]
    with pytest.raises(PermanentError) as exc:
        ledger.apply(ev("t-1", "transfer", 2, to_location="STORE-1"))  # the id, another route
    assert exc.value.reason == "event_id_reuse"
    assert pos(ledger) == {"WH-EAST": (3, 0), "WH-WEST": (2, 0)}


def test_transfer_is_all_or_nothing(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 2, ("TEE", "WH-WEST"): 1})
    ledger = InventoryLedger(store)
    with pytest.raises(PermanentError):
        ledger.apply(ev("t-big", "transfer", 3, to_location="WH-WEST"))
    assert pos(ledger) == {"WH-EAST": (2, 0), "WH-WEST": (1, 0)}
    assert all(m.event_id != "t-big" for m in journal(ledger))


def test_opposite_concurrent_transfers_conserve_stock_and_never_deadlock(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 40, ("TEE", "WH-WEST"): 40})
    other = Store(store.url)
    try:
        ledgers = [InventoryLedger(store), InventoryLedger(other)]

        def transfer(i: int) -> None:
            src, dst = ("WH-EAST", "WH-WEST") if i % 2 else ("WH-WEST", "WH-EAST")
            ledgers[i % 2].apply(ev(f"t-{i}", "transfer", 1 + i % 3, location=src, to_location=dst))

        _, errors = run_threads(40, transfer)
    finally:
        other.dispose()
    assert errors == []
    ledger = InventoryLedger(store)
    assert sum(p.on_hand for p in ledger.positions("TEE")) == 80
    assert len([m for m in journal(ledger) if m.kind == "transfer"]) == 80
    assert_reconciles(ledger, "TEE")


# -- the ERP's own movements --------------------------------------------------------------------


async def test_erp_reservations_shipments_and_releases_are_journalled_once(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 3, ("TEE", "WH-WEST"): 1})
    erp, ledger = BuiltinErp(store), InventoryLedger(store)
    cid = (await erp.resolve_customer(Customer(email="ann@example.com"), None)).customer_id
    o = order("9001", "TEE", 6)
    ack = await erp.create_sales_order(o, cid, "k-create")
    so = ack.erp_order_id
    await erp.create_sales_order(o, cid, "k-create-retry")  # replay: nothing new
    assert sum(b.quantity for b in ack.backordered) == 2

    ledger.apply(ev("asn-1", "receipt", 5, location="WH-WEST"))
    await erp.allocate_backorders(so)
    await erp.allocate_backorders(so)  # nothing left to allocate: nothing journalled

    shipment = Shipment(
        shipment_id="S1",
        order_key=o.key,
        location="WH-EAST",
        lines=[ShipmentLine(line_id="L1", sku="TEE", quantity=3)],
        shipped_at=NOW,
    )
    amounts = invoice_for_shipment(o, {}, {"L1": 3}, first=True)
    inv = await erp.invoice_shipment(so, shipment, amounts, "k-inv")
    await erp.invoice_shipment(so, shipment, amounts, "k-inv")  # replay
    await erp.cancel_sales_order(so, "changed mind", "k-cancel")
    await erp.cancel_sales_order(so, "changed mind", "k-cancel")  # replay
    await erp.cancel_sales_order(so, "again", "k-cancel-2")  # already cancelled: releases nothing

    erp_rows = [
        (m.event_id, m.kind, m.location, m.on_hand_delta, m.reserved_delta)
        for m in journal(ledger)
        if m.source == "erp"
    ]
    allocate = next(e for e, *_ in erp_rows if ":allocate:" in e)
    assert erp_rows == [
        (f"erp:{so}:create", "reservation", "WH-EAST", 0, 3),
        (f"erp:{so}:create", "reservation", "WH-WEST", 0, 1),
        (allocate, "reservation", "WH-WEST", 0, 2),
        (f"erp:{so}:ship:{inv.invoice_id}", "shipment", "WH-EAST", -3, -3),
        (f"erp:{so}:cancel", "release", "WH-WEST", 0, -1),  # one leg per open allocation
        (f"erp:{so}:cancel", "release", "WH-WEST", 0, -2),
    ]
    assert pos(ledger) == {"WH-EAST": (0, 0), "WH-WEST": (6, 0)}
    ship_row = next(m for m in journal(ledger) if m.kind == "shipment")
    assert ship_row.reference == "S1"
    assert_reconciles(ledger, "TEE")


def test_stock_import_journals_cycle_counts_and_an_unchanged_reimport_writes_nothing(
    store: Store, tmp_path: Path
) -> None:
    import_products(store, [{"sku": "TEE", "title": "Tee", "price": "1.00", "currency": "USD"}])
    ledger = InventoryLedger(store)
    f = tmp_path / "stock.csv"
    f.write_text("sku,location,on_hand\nTEE,WH-EAST,7\nTEE,WH-WEST,0\n")
    import_stock(store, f)
    rows = journal(ledger)
    assert [(m.kind, m.location, m.quantity, m.on_hand_delta, m.source, m.reference) for m in rows] == [
        ("cycle_count", "WH-EAST", 7, 7, "import", "stock.csv"),
        ("cycle_count", "WH-WEST", 0, 0, "import", "stock.csv"),
    ]
    assert rows[0].event_id.startswith("import:") and rows[0].event_id.endswith(":1")
    assert rows[1].event_id.rsplit(":", 1)[0] == rows[0].event_id.rsplit(":", 1)[0]  # one run
    _, seq = ledger.changes_since(0)
    assert import_stock(store, f).unchanged == 2
    assert len(journal(ledger)) == 2 and ledger.changes_since(seq) == ([], seq)

    # 7 -> 9 -> 7: each real change is journalled, also a return to an earlier figure.
    import_stock(store, [{"sku": "TEE", "location": "WH-EAST", "on_hand": 9}])
    import_stock(store, f)
    assert [m.on_hand_delta for m in journal(ledger)][2:] == [2, -2]
    assert pos(ledger) == {"WH-EAST": (7, 0), "WH-WEST": (0, 0)}
    assert_reconciles(ledger, "TEE")


# -- no oversell --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stock",
    [{("HOT", "WH-EAST"): 50}, {("HOT", "WH-EAST"): 30, ("HOT", "WH-WEST"): 20}],
    ids=["one-location", "two-locations"],
)
def test_two_hundred_concurrent_orders_allocate_exactly_fifty(
    store: Store, stock: dict[tuple[str, str], int]
) -> None:
    seed(store, stock)
    other = Store(store.url)  # a second process's engine
    try:
        erps = [BuiltinErp(store), BuiltinErp(other)]
        cid = asyncio.run(erps[0].resolve_customer(Customer(email="rush@example.com"), None)).customer_id
        orders = [order(f"rush-{i}", "HOT", 1) for i in range(200)]
        acks, errors = run_threads(
            200, lambda i: asyncio.run(erps[i % 2].create_sales_order(orders[i], cid, f"k-{i}"))
        )
    finally:
        other.dispose()
    assert errors == []
    assert len(acks) == 200 and len({a.erp_order_id for a in acks}) == 200
    assert sum(a.quantity for ack in acks for a in ack.allocations) == 50
    assert sum(b.quantity for ack in acks for b in ack.backordered) == 150

    ledger = InventoryLedger(store)
    positions = {p.location: p for p in ledger.positions("HOT")}
    assert {loc: (p.on_hand, p.reserved) for loc, p in positions.items()} == {
        loc: (n, n) for (_, loc), n in stock.items()
    }
    reservations = [m for m in journal(ledger, "HOT") if m.kind == "reservation"]
    assert len(reservations) == 50 and all(m.reserved_delta == 1 for m in reservations)
    assert len({m.event_id for m in reservations}) == 50
    # Serialised per position: in journal order the balances count up one by one.
    for loc, n in stock.items():
        assert [m.reserved_after for m in reservations if m.location == loc[1]] == list(range(1, n + 1))
    assert ledger.channel_availability("web", ["HOT"])[0].available == 0
    assert_reconciles(ledger, "HOT")


# -- channels -----------------------------------------------------------------------------------


def test_channel_availability_follows_location_mapping_and_safety_buffer(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 10, ("TEE", "WH-WEST"): 4, ("TEE", "STORE-1"): 3, ("MUG", "WH-EAST"): 2})
    ledger = InventoryLedger(store)
    ledger.apply(ev("r", "reservation", 1, location="WH-WEST", source="order"))

    [tee, mug, nope] = ledger.channel_availability("shopify", ["TEE", "MUG", "NOPE", "TEE"])
    assert (tee.available, tee.locations, tee.safety_buffer) == (16, ["STORE-1", "WH-EAST", "WH-WEST"], 0)
    assert (mug.available, mug.locations) == (2, ["WH-EAST"])
    assert (nope.sku, nope.available, nope.locations) == ("NOPE", 0, [])
    assert ledger.channel_policy("shopify").locations is None

    policy = ledger.set_channel_policy("shopify", ["WH-WEST", "WH-EAST", "WH-EAST"], safety_buffer=3)
    assert (policy.locations, policy.safety_buffer) == (["WH-EAST", "WH-WEST"], 3)
    assert ledger.channel_policy("shopify") == policy
    [tee, mug] = ledger.channel_availability("shopify", ["TEE", "MUG"])
    assert (tee.available, tee.locations, tee.safety_buffer) == (10 + 3 - 3, ["WH-EAST", "WH-WEST"], 3)
    assert mug.available == 0  # 2 available, buffer 3: never below zero
    assert ledger.channel_availability("pos", ["TEE"])[0].available == 16  # other channels: default

    ledger.set_channel_policy("shopify", None, 0)  # back to everything
    assert ledger.channel_availability("shopify", ["TEE"])[0].available == 16
    bad_policies: list[dict[str, Any]] = [
        {"locations": []},
        {"safety_buffer": -1},
        {"locations": "WH-EAST"},
        {"locations": [" "]},
    ]
    for bad in bad_policies:
        with pytest.raises(ValueError):
            ledger.set_channel_policy("shopify", **bad)


# -- change feed --------------------------------------------------------------------------------


def test_changes_since_lists_changed_skus_once_and_advances(store: Store) -> None:
    seed(store, {("TEE", "WH-EAST"): 5, ("MUG", "WH-EAST"): 5})
    ledger = InventoryLedger(store)
    skus, seq = ledger.changes_since(0)
    assert skus == ["MUG", "TEE"] and seq > 0
    assert ledger.changes_since(seq) == ([], seq)

    ledger.apply(ev("a", "receipt", 1))
    ledger.apply(ev("b", "receipt", 1))
    ledger.apply(ev("c", "cycle_count", 5, sku="MUG"))  # counted as it was: no change to push
    skus, seq2 = ledger.changes_since(seq)
    assert skus == ["TEE"] and seq2 == journal(ledger, "MUG")[-1].seq
    ledger.apply(ev("d", "reservation", 1, sku="MUG", source="order"))
    # Paging: one row at a time still reaches the end.
    first, s1 = ledger.changes_since(seq, limit=1)
    assert first == ["TEE"] and seq < s1 < seq2
    assert ledger.changes_since(seq2) == (["MUG"], journal(ledger, "MUG")[-1].seq)


@pytest.mark.skipif(
    postgres_url() is None, reason="SQLite serialises writers: ids always commit in order there"
)
def test_changes_since_never_skips_a_lower_id_that_commits_late(store: Store) -> None:
    """PostgreSQL hands out ids before commit: a slow writer's row can commit after a higher
    id. The feed must wait for it, not step over it."""
    seed(store, {("SLOW", "WH-EAST"): 1, ("FAST", "WH-EAST"): 1})
    ledger = InventoryLedger(store)
    _, seq = ledger.changes_since(0)
    holding, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with store.session() as s:
            apply_in(s, ev("slow", "receipt", 1, sku="SLOW"))  # has its id, not committed
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    fast = Store(store.url)
    try:
        assert holding.wait(10)
        fast_ledger = InventoryLedger(fast)
        fast_ledger.apply(ev("fast", "receipt", 1, sku="FAST"))  # a higher id, committed first
        feed: list[tuple[list[str], int]] = []
        reader = threading.Thread(target=lambda: feed.append(fast_ledger.changes_since(seq)))
        reader.start()
        reader.join(0.5)
        assert reader.is_alive() and feed == []  # waits for the writer holding the lower id
        release.set()
        writer.join(10)
        reader.join(10)
    finally:
        release.set()
        fast.dispose()
    slow_seq, fast_seq = journal(ledger, "SLOW")[-1].seq, journal(ledger, "FAST")[-1].seq
    assert slow_seq < fast_seq  # the order that would lose SLOW to a naive max(id) cursor
    assert feed == [(["FAST", "SLOW"], fast_seq)]
    assert ledger.changes_since(fast_seq) == ([], fast_seq)


# -- schema -------------------------------------------------------------------------------------


def test_inventory_migration_matches_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, Base.metadata)
    assert [d for d in diffs if "inventory_" in repr(d)] == []


def test_the_count_guard_migration_takes_each_positions_newest_count_from_the_journal(
    tmp_path: Path,
) -> None:
    """Positions counted before 0011 are guarded from the start: counted_at comes from the journal."""
    with fresh_database_url(tmp_path) as url:
        upgrade(url, "0005_inbox")  # the schema before the guard, with a journal in it
        engine = create_engine(url)
        try:
            with engine.begin() as c:
                c.execute(
                    text("INSERT INTO erp_items VALUES ('TEE', 'Tee', 1, 'USD', NULL, true, :t)"), {"t": NOW}
                )
                for loc in ("WH-EAST", "WH-WEST"):
                    c.execute(text(f"INSERT INTO erp_stock VALUES ('TEE', '{loc}', 5, 0, :t)"), {"t": NOW})
                rows = [
                    ("import:a:1", "cycle_count", "WH-EAST", NOW - timedelta(hours=2)),
                    ("wms:1", "cycle_count", "WH-EAST", NOW - timedelta(hours=1)),
                    ("wms:2", "receipt", "WH-EAST", NOW),  # not a count
                    ("wms:3", "receipt", "WH-WEST", NOW),
                ]
                for event_id, kind, loc, at in rows:
                    c.execute(
                        text(
                            "INSERT INTO inventory_movements (event_id, leg, kind, sku, location,"
                            " quantity, on_hand_delta, reserved_delta, on_hand_after, reserved_after,"
                            " source, reference, occurred_at, recorded_at)"
                            " VALUES (:e, 0, :k, 'TEE', :l, 5, 0, 0, 5, 0, 'wms', NULL, :at, :at)"
                        ),
                        {"e": event_id, "k": kind, "l": loc, "at": at},
                    )
        finally:
            engine.dispose()
        upgrade(url)
        migrated = Store(url)
        try:
            ledger = InventoryLedger(migrated)
            assert [m.stale for m in journal(ledger)] == [False] * 4
            late = ev("late", "cycle_count", 9, occurred_at=NOW - timedelta(hours=1, minutes=1))
            assert [p.on_hand for p in ledger.apply(late)] == [5]  # older than wms:1
            assert journal(ledger)[-1].stale
            never_counted = ev(
                "west", "cycle_count", 9, location="WH-WEST", occurred_at=NOW - timedelta(days=9)
            )
            assert [p.on_hand for p in ledger.apply(never_counted)] == [9]
        finally:
            migrated.dispose()
