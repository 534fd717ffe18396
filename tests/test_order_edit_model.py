"""What an edit changes (diff_edit) and the reduced order's exact figures (reduce_order)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from canonical import Money
from canonical.edits import EditedLine, OrderEdit, diff_edit, edit_from_order, reduce_order
from tests.factories import make_order

AT = datetime(2026, 11, 21, tzinfo=UTC)


def test_reductions_keep_exact_totals_and_shrink_the_platform_payment() -> None:
    order = make_order(lines=[("A", 3, "10.00"), ("B", 1, "5.55")], discount="1.00")
    reduced = reduce_order(order, {"L1": 1}, order.shipping_address)  # validated: totals add up
    [a, b] = reduced.lines
    assert (a.quantity, a.discount, a.tax) == (1, Money.of("0.33", "USD"), Money.of("0.70", "USD"))
    assert b == order.lines[1]
    assert reduced.payments[0].amount == reduced.totals.total == Money.of("21.32", "USD")
    assert [ln.line_id for ln in reduce_order(order, {"L2": 0}, None).lines] == ["L1"]


def test_the_diff_names_reductions_and_what_only_a_person_can_apply() -> None:
    order = make_order(lines=[("A", 3, "10.00"), ("B", 1, "5.55")])
    edit = edit_from_order(order, AT)
    assert diff_edit(order, order.shipping_address, edit).empty
    lines = [
        EditedLine(line_id="L1", sku="A", quantity=2, unit_price=Money.of("10.00", "USD")),
        EditedLine(line_id="L2", sku="B", quantity=2, unit_price=Money.of("5.55", "USD")),
        EditedLine(line_id="L9", sku="C", quantity=1, unit_price=Money.of("1.00", "USD")),
    ]
    diff = diff_edit(order, order.shipping_address, edit.model_copy(update={"lines": lines}))
    assert diff.quantities == {"L1": (3, 2)}
    assert diff.unsupported == ["line L2: quantity increased 1 -> 2", "new line L9 (1 x C)"]
    removed = edit.model_copy(update={"lines": []})
    assert diff_edit(order, None, removed).unsupported == ["every line removed (cancel the order instead)"]


def test_an_edit_needs_an_aware_updated_at() -> None:
    with pytest.raises(ValidationError, match="UTC offset"):
        OrderEdit(channel="shopify", external_id="1", updated_at=datetime(2026, 11, 21), lines=[])
