"""OrderToCash end to end on a real Temporal server, with the builtin ERP, tax, payment, WMS and
carrier on a real database, and the warehouse/carrier simulators reporting through the API."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from temporalio.client import Client, WorkflowUpdateFailedError

from adapters.carrier.builtin import BuiltinCarrier
from adapters.erp.builtin import get_sales_order, list_invoices, stock_levels
from adapters.payment.builtin import get_authorization, list_captures
from adapters.signing import as_poster
from backoffice.wms import list_fulfillment_orders
from canonical import Address, Money
from orchestration.models import AddressEdit, OperatorRequest
from sandboxes.wms import WmsSimulator
from settings import Faults, FaultSettings
from store.db import Store
from tests.platform import platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order
from workflows.order_to_cash import OrderToCash

OPERATOR = OperatorRequest(operator="test", reason="test")


def _stock(store: Store, sku: str, location: str) -> tuple[int, int]:
    for lvl in stock_levels(store, sku):
        if lvl.location == location:
            return lvl.on_hand, lvl.reserved
    raise AssertionError(f"no stock row for {sku} at {location}")


async def test_webhook_order_reaches_completed_with_books_that_agree(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        r = await p.send_shopify(shopify_order(1001, [("TEE-BLK-M", 2, "25.00"), ("MUG-01", 1, "12.50")]))
        assert r.status_code == 200, r.text
        st = await p.wait_status("shopify-1001", "Completed")

        assert st.erp_order_id is not None
        assert st.captured == st.total and st.invoiced == st.total
        assert st.total == Money.of("72.03", "USD")  # 62.50 + tax 3.62 + 0.91 (per line) + 5.00
        invoices = list_invoices(p.store, st.erp_order_id)
        assert Money.sum((i.total for i in invoices), "USD") == st.total
        assert st.authorization_id is not None
        captures = list_captures(p.store, st.authorization_id)
        assert Money.sum((c.amount for c in captures), "USD") == st.total
        assert all(v == "delivered" for v in st.tracking.values()) and st.tracking
        so = get_sales_order(p.store, st.erp_order_id)
        assert so is not None and so.status in ("shipped", "closed", "invoiced", "fulfilled")
        # Stock left on hand, nothing still reserved.
        assert _stock(p.store, "TEE-BLK-M", "WH-EAST") == (8, 0)


async def test_split_shipment_across_two_locations_captures_twice(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        # HAT-RED: 3 at WH-EAST and 3 at WH-WEST; 5 ordered means a split.
        await p.send_shopify(shopify_order(1002, [("HAT-RED", 5, "18.00")]))
        st = await p.wait_status("shopify-1002", "Completed")
        assert sorted(st.fulfillments.values()) == ["WH-EAST", "WH-WEST"]
        assert len(st.shipments) == 2
        assert st.authorization_id is not None
        captures = list_captures(p.store, st.authorization_id)
        assert len(captures) == 2
        assert Money.sum((c.amount for c in captures), "USD") == st.total == st.captured


async def test_cancel_before_shipment_voids_cancels_and_releases(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog, wms_pick_delay_s=60.0) as p:
        await p.send_shopify(shopify_order(1003, [("TEE-BLK-M", 3, "25.00")]))
        st = await p.wait_status("shopify-1003", "AwaitingShipment")
        assert _stock(p.store, "TEE-BLK-M", "WH-EAST") == (10, 3)

        result = await p.handle("shopify-1003").execute_update(
            OrderToCash.cancel, OperatorRequest(operator="ops", reason="customer changed mind")
        )
        assert result == "cancelling"
        st = await p.wait_status("shopify-1003", "Cancelled")

        assert st.authorization_id is not None and st.erp_order_id is not None
        auth = get_authorization(p.store, st.authorization_id)
        assert auth is not None and auth.status == "voided"
        assert st.voided == st.total and st.captured.is_zero
        so = get_sales_order(p.store, st.erp_order_id)
        assert so is not None and so.status == "cancelled"
        assert _stock(p.store, "TEE-BLK-M", "WH-EAST") == (10, 0)
        assert [a.action for a in st.actions] == ["cancel"] and st.actions[0].operator == "ops"


async def test_unknown_sku_waits_for_operator_then_completes_after_import_and_retry(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        await p.send_shopify(shopify_order(1004, [("NEW-THING", 1, "40.00")]))
        st = await p.wait_status("shopify-1004", "NeedsAttention")
        assert st.attention is not None
        assert st.attention.reason == "unknown_sku" and "NEW-THING" in st.attention.message
        assert st.attention.step == "create_sales_order"

        # An invalid action is refused without touching the order.
        try:
            await p.handle("shopify-1004").execute_update(
                OrderToCash.skip, OperatorRequest(operator="ops", reason="no ref")
            )
            raise AssertionError("skip without a reference must be refused")
        except WorkflowUpdateFailedError as exc:
            assert "reference" in str(exc.cause)

        seed_catalog(p.store, extra=[("NEW-THING", "40.00", "WH-EAST", 5)])
        await p.handle("shopify-1004").execute_update(
            OrderToCash.retry, OperatorRequest(operator="ops", reason="SKU imported")
        )
        st = await p.wait_status("shopify-1004", "Completed")
        assert st.attention is None
        assert [(a.action, a.step) for a in st.actions] == [("retry", "create_sales_order")]
        assert st.captured == st.total


async def test_duplicate_and_concurrent_deliveries_start_one_workflow(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        payload = shopify_order(1005, [("MUG-01", 1, "12.50")])
        codes = await asyncio.gather(*[p.send_shopify(payload) for _ in range(8)])
        assert [c.status_code for c in codes] == [200] * 8
        st = await p.wait_status("shopify-1005", "Completed")
        again = await p.send_shopify(payload)  # a late redelivery after completion
        assert again.status_code == 200
        runs = [wf async for wf in client.list_workflows('WorkflowId = "order-shopify-1005"')]
        # Visibility lags: the count can only be lower than the truth, never higher.
        assert len(runs) <= 1
        desc = await p.handle("shopify-1005").describe()
        assert desc.run_id is not None
        assert st.authorization_id is not None
        assert len(list_captures(p.store, st.authorization_id)) == 1


async def test_jpy_and_three_decimal_currency_orders_complete(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog) as p:
        await p.send_shopify(
            shopify_order(1006, [("MUG-01", 2, "1980")], currency="JPY", shipping="500", tax_rate="0.10")
        )
        await p.send_shopify(
            shopify_order(1007, [("MUG-01", 1, "4.125")], currency="KWD", shipping="1.500", tax_rate="0")
        )
        jpy = await p.wait_status("shopify-1006", "Completed")
        kwd = await p.wait_status("shopify-1007", "Completed")
        assert jpy.captured == jpy.total == Money.of("4856", "JPY")
        assert kwd.captured == kwd.total == Money.of("5.625", "KWD")


async def test_totals_that_do_not_add_up_are_rejected_at_the_door(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        bad = shopify_order(1008, [("MUG-01", 1, "12.50")])
        bad["total_price"] = "99.99"
        bad["total_price_set"]["shop_money"]["amount"] = "99.99"
        r = await p.send_shopify(bad)
        assert r.status_code == 422
        body = r.json()["detail"]
        assert body["reason"] == "mapping_error" and "total" in body["detail"]


async def test_retry_is_refused_when_nothing_waits_for_an_operator(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog, wms_pick_delay_s=60.0) as p:
        await p.send_shopify(shopify_order(1009, [("MUG-01", 1, "12.50")]))
        await p.wait_status("shopify-1009", "AwaitingShipment")
        try:
            await p.handle("shopify-1009").execute_update(OrderToCash.retry, OPERATOR)
            raise AssertionError("retry must be refused")
        except WorkflowUpdateFailedError as exc:
            assert "nothing to retry" in str(exc.cause)
        st = await p.state("shopify-1009")
        assert st.actions == []


async def test_cancel_after_partial_shipment_cancels_only_the_unshipped_part(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, seed=seed_catalog, wms_extra_delay={"WH-WEST": 120.0}
    ) as p:
        # HAT-RED: 3 at WH-EAST ship quickly; 2 at WH-WEST sit in a slow warehouse.
        await p.send_shopify(shopify_order(1010, [("HAT-RED", 5, "18.00")]))
        st = await p.wait_status("shopify-1010", "PartiallyShipped")
        assert _stock(p.store, "HAT-RED", "WH-WEST") == (3, 2)

        await p.handle("shopify-1010").execute_update(
            OrderToCash.cancel, OperatorRequest(operator="ops", reason="customer cancelled the rest")
        )
        st = await p.wait_status("shopify-1010", "Cancelled")

        assert len(st.shipments) == 1 and st.shipments[0].location == "WH-EAST"
        assert st.captured == st.invoiced and not st.captured.is_zero
        assert st.captured + st.voided == st.total
        assert st.erp_order_id is not None
        so = get_sales_order(p.store, st.erp_order_id)
        assert so is not None and so.status == "partially_cancelled"
        assert _stock(p.store, "HAT-RED", "WH-WEST") == (3, 0)  # the reservation was released
        assert _stock(p.store, "HAT-RED", "WH-EAST") == (0, 0)  # what shipped stays shipped
        west = [fid for fid, loc in st.fulfillments.items() if loc == "WH-WEST"]
        assert any(s.step == f"cancel_fulfillment:{west[0]}" and s.status == "done" for s in st.steps)


async def test_order_not_shipped_within_sla_is_escalated_and_can_be_cancelled(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, seed=seed_catalog, wms_pick_delay_s=120.0, shipping_sla_s=1.0
    ) as p:
        await p.send_shopify(shopify_order(1011, [("MUG-01", 1, "12.50")]))
        st = await p.wait_status("shopify-1011", "NeedsAttention")
        assert st.attention is not None and st.attention.reason == "shipping_sla_breached"
        await p.handle("shopify-1011").execute_update(
            OrderToCash.cancel, OperatorRequest(operator="ops", reason="warehouse lost it")
        )
        st = await p.wait_status("shopify-1011", "Cancelled")
        assert st.voided == st.total and st.attention is None


async def test_cancel_the_warehouse_refuses_bills_what_it_shipped(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    """The warehouse ships just before the cancellation reaches it: the goods are billed, the
    rest of the authorization is voided, and nothing is left unbilled or uncancelled."""
    async with platform(
        client,
        tmp_path,
        database_url,
        seed=seed_catalog,
        simulators=False,
        wms_pick_delay_s=0.0,
        wms_ship_delay_s=0.0,
    ) as p:
        await p.send_shopify(shopify_order(1012, [("MUG-01", 2, "12.50")]))
        await p.wait_status("shopify-1012", "AwaitingShipment")

        async def unreachable(url: str, raw: bytes, headers: Mapping[str, str]) -> int:
            return 503

        carrier = BuiltinCarrier(p.store)
        offline = WmsSimulator(p.store, carrier, unreachable, p.settings, retry_max_s=0.05)
        for _ in range(3):  # released -> picking -> packed and shipped; the webhook fails
            await offline.run_once()
        await p.handle("shopify-1012").execute_update(
            OrderToCash.cancel, OperatorRequest(operator="ops", reason="too late?")
        )
        st = await p.wait_for(
            "shopify-1012", lambda s: s.waiting_for is not None and "could not cancel" in s.waiting_for
        )
        assert st.status == "Cancelling"

        online = WmsSimulator(p.store, carrier, as_poster(p.http), p.settings, retry_max_s=0.05)
        for _ in range(20):
            await online.run_once()
            if (await p.state("shopify-1012")).status == "Shipped":
                break
            await asyncio.sleep(0.1)
        # Everything shipped before the warehouse heard of the cancellation: the order is
        # billed in full and goes on to delivery instead of being half cancelled.
        st = await p.wait_status("shopify-1012", "Shipped")
        assert len(st.shipments) == 1
        assert st.captured == st.invoiced == st.total
        assert st.voided.is_zero and st.attention is None
        assert any(s.step == "cancel" and s.status == "failed" for s in st.steps)
        assert st.erp_order_id is not None
        so = get_sales_order(p.store, st.erp_order_id)
        assert so is not None and so.status != "cancelled"


async def test_cancel_while_a_shipped_part_cannot_be_captured_bills_it_first(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    """Goods that left are billed before a cancellation applies: the operator settles the
    failed capture (skip with a reference), then only the unshipped rest is cancelled."""
    faults = Faults(payment=FaultSettings(reject=["operation=capture"]))
    async with platform(
        client, tmp_path, database_url, seed=seed_catalog, faults=faults, wms_extra_delay={"WH-WEST": 120.0}
    ) as p:
        await p.send_shopify(shopify_order(1013, [("HAT-RED", 5, "18.00")]))
        st = await p.wait_status("shopify-1013", "NeedsAttention")
        assert st.attention is not None and st.attention.step.startswith("capture:")
        said = await p.handle("shopify-1013").execute_update(
            OrderToCash.cancel, OperatorRequest(operator="ops", reason="customer cancelled")
        )
        assert "once capture:" in said
        st = await p.state("shopify-1013")
        assert st.status == "NeedsAttention" and st.attention is not None  # still settling the capture
        await p.handle("shopify-1013").execute_update(
            OrderToCash.skip, OperatorRequest(operator="ops", reason="charged by phone", reference="POS-77")
        )
        st = await p.wait_status("shopify-1013", "Cancelled")
        assert len(st.shipments) == 1 and len(st.invoices) == 1
        assert st.invoiced == st.captured and not st.invoiced.is_zero
        # Nothing was captured through the provider (charged by phone), so its whole
        # authorization is released.
        assert st.voided == st.total
        assert _stock(p.store, "HAT-RED", "WH-WEST") == (3, 0)


async def test_a_high_value_order_waits_for_approval_and_then_completes(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, seed=seed_catalog, hold_above={"USD": "100.00"}) as p:
        await p.send_shopify(shopify_order(1014, [("MUG-01", 10, "12.50")]))  # 139.06 USD
        await p.send_shopify(shopify_order(1015, [("MUG-01", 1, "12.50")]))  # under the limit
        st = await p.wait_status("shopify-1014", "NeedsAttention")
        assert st.attention is not None and st.attention.reason == "held_for_approval"
        assert st.erp_order_id is None and st.authorization_id is None  # nothing done before approval
        await p.wait_status("shopify-1015", "Completed")
        try:
            await p.handle("shopify-1014").execute_update(OrderToCash.retry, OPERATOR)
            raise AssertionError("retry must not release a held order")
        except WorkflowUpdateFailedError as exc:
            assert "approve or cancel" in str(exc.cause)
        await p.handle("shopify-1014").execute_update(
            OrderToCash.approve, OperatorRequest(operator="risk", reason="known customer")
        )
        st = await p.wait_status("shopify-1014", "Completed")
        assert [(a.action, a.operator) for a in st.actions] == [("approve", "risk")]
        assert st.captured == st.total


async def test_an_operator_corrects_the_address_before_release_and_not_after(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, seed=seed_catalog, hold_above={"USD": "100.00"}, wms_pick_delay_s=60.0
    ) as p:
        await p.send_shopify(shopify_order(1016, [("MUG-01", 10, "12.50")]))
        await p.wait_status("shopify-1016", "NeedsAttention")
        new = Address(
            name="Ada Lovelace",
            line1="10 Market St",
            city="San Francisco",
            region="CA",
            postal_code="94103",
            country="US",
        )
        h = p.handle("shopify-1016")
        said = await h.execute_update(
            OrderToCash.edit_address, AddressEdit(operator="ops", reason="typo", address=new)
        )
        assert said == "address updated"
        await h.execute_update(OrderToCash.approve, OperatorRequest(operator="risk", reason="ok"))
        await p.wait_status("shopify-1016", "AwaitingShipment")
        fos = list_fulfillment_orders(p.store, "shopify-1016")
        assert fos and all((fo.ship_to or {}).get("line1") == "10 Market St" for fo in fos)
        try:
            await h.execute_update(
                OrderToCash.edit_address, AddressEdit(operator="ops", reason="late", address=new)
            )
            raise AssertionError("an address change after release must be refused")
        except WorkflowUpdateFailedError as exc:
            assert "already with a warehouse" in str(exc.cause)
        st = await p.state("shopify-1016")
        assert [a.action for a in st.actions] == ["edit_address", "approve"]
