"""The findings table: one row per natural key, the status rules for a finding seen again, and
reading order keys back from payment idempotency keys."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backoffice.settlement import OrderRef, parse_step, split_workflow_id
from store import findings as fs
from store.db import Store


def _drift(sku: str, healed: bool = False) -> fs.NewFinding:
    return fs.NewFinding(
        fs.INVENTORY_DRIFT, ["shopify", "ledger"], {"channel": "shopify", "sku": sku}, sku, "drift",
        Decimal(3), Decimal(5), healed=healed,
    )  # fmt: skip


def test_a_finding_seen_again_is_updated_never_duplicated(store: Store) -> None:
    first = fs.record_findings(store, [_drift("A"), _drift("B"), _drift("A")], run="r1")
    assert (first.new, first.seen_again) == (2, 0)
    again = fs.record_findings(store, [_drift("A")], run="r2")
    assert (again.new, again.seen_again) == (0, 1)
    rows = {f.subject: f for f in fs.list_findings(store)}
    assert set(rows) == {"A", "B"}
    assert (rows["A"].sightings, rows["A"].last_run, rows["B"].sightings) == (2, "r2", 1)
    assert rows["A"].last_seen >= rows["A"].first_seen


def test_status_rules_when_a_finding_comes_back(store: Store) -> None:
    fs.record_findings(store, [_drift("A"), _drift("B"), _drift("C", healed=True)])
    a, b, c = sorted(fs.list_findings(store), key=lambda f: f.subject)
    assert (a.status, c.status) == ("open", "healed")
    fs.decide(store, a.id, "resolved", "fixed in Shopify by hand", "ops")
    fs.decide(store, b.id, "ignored", "discontinued SKU", "ops")
    with pytest.raises(ValueError):
        fs.decide(store, a.id, "resolved", "  ", "ops")
    with pytest.raises(LookupError):
        fs.decide(store, 10_000, "ignored", "why", "ops")

    result = fs.record_findings(store, [_drift("A"), _drift("B"), _drift("C")])
    assert result.reopened == 2  # the resolved one came back, the healed one recurred unhealed
    after = {f.subject: f for f in fs.list_findings(store)}
    assert after["A"].status == "open" and after["A"].reason is None
    assert (after["B"].status, after["B"].reason) == ("ignored", "discontinued SKU")
    assert after["C"].status == "open"
    fs.record_findings(store, [_drift("A", healed=True)])
    assert fs.get_finding(store, a.id).status == "healed"  # type: ignore[union-attr]
    assert fs.counts_by_kind(store) == {(fs.INVENTORY_DRIFT, "healed"): 1, (fs.INVENTORY_DRIFT, "ignored"): 1,
                                        (fs.INVENTORY_DRIFT, "open"): 1}  # fmt: skip


def test_order_steps_are_read_back_from_idempotency_keys() -> None:
    assert parse_step("order-shopify-1001:capture:SHP-1") == ("order-shopify-1001", "capture", "SHP-1")
    assert parse_step("order-shopify-1001:capture:SHP-1:r2") == ("order-shopify-1001", "capture", "SHP-1")
    assert parse_step("order-shopify-1001:authorize") == ("order-shopify-1001", "authorize", None)
    assert parse_step("order-shopify-1001:invoice:SHP-1") is None
    assert split_workflow_id("order-big-commerce-77-A", ["big-commerce"]) == OrderRef("big-commerce", "77-A")
    assert split_workflow_id("order-shopify-77-A", []) == OrderRef("shopify", "77-A")
    assert split_workflow_id("inventory-sync-shopify", []) is None
