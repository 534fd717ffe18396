"""The builtin warehouse: release (idempotent), cancel rules, faults, and its migration."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Table, update

from adapters.errors import PermanentError
from adapters.faults import FaultInjector
from adapters.wms.builtin import BuiltinWms
from adapters.wms.port import WmsPort
from backoffice.wms import (
    FulfillmentOrder,
    get_fulfillment_order,
    list_fulfillment_orders,
    parse_fulfillment_id,
)
from canonical import Address, FulfillmentLine, FulfillmentRequest
from settings import FaultSettings
from store.db import Base, Store

SHIP_TO = Address(name="Ada Lovelace", line1="1 Analytical Way", city="Portland", region="OR", country="US")


def request(
    key: str = "order-shopify-1001:release:WH-EAST",
    order_key: str = "shopify-1001",
    location: str = "WH-EAST",
) -> FulfillmentRequest:
    return FulfillmentRequest(
        order_key=order_key,
        order_name="#1001",
        location=location,
        lines=[
            FulfillmentLine(line_id="L1", sku="TEE-BLK-M", quantity=2),
            FulfillmentLine(line_id="L2", sku="MUG-WHT", quantity=1),
        ],
        ship_to=SHIP_TO,
        shipping_method="express",
        idempotency_key=key,
    )


def set_status(store: Store, fulfillment_id: str, status: str) -> None:
    with store.session() as s:
        s.execute(
            update(FulfillmentOrder)
            .where(FulfillmentOrder.id == parse_fulfillment_id(fulfillment_id))
            .values(status=status)
        )


def test_builtin_wms_satisfies_the_port(store: Store) -> None:
    wms: WmsPort = BuiltinWms(store)
    assert wms.name == "builtin"


async def test_release_creates_one_fulfillment_order_with_lines_and_address(store: Store) -> None:
    ack = await BuiltinWms(store).release(request())

    assert ack.status == "released"
    assert ack.location == "WH-EAST"
    assert ack.fulfillment_id.startswith("FO-") and len(ack.fulfillment_id) == 9
    [fo] = list_fulfillment_orders(store, order_key="shopify-1001")
    assert fo.fulfillment_id == ack.fulfillment_id
    assert fo.order_name == "#1001"
    assert fo.shipping_method == "express"
    assert [(ln.line_id, ln.sku, ln.quantity) for ln in fo.lines] == [
        ("L1", "TEE-BLK-M", 2),
        ("L2", "MUG-WHT", 1),
    ]
    assert fo.ship_to is not None and Address.model_validate(fo.ship_to) == SHIP_TO
    assert fo.created_at.tzinfo is not None
    assert list_fulfillment_orders(store, order_key="shopify-other") == []


async def test_release_is_idempotent_on_the_key(store: Store) -> None:
    wms = BuiltinWms(store)
    first = await wms.release(request())
    again = await wms.release(request())
    concurrent = await asyncio.gather(*(wms.release(request()) for _ in range(5)))

    assert again == first
    assert all(ack == first for ack in concurrent)
    assert len(list_fulfillment_orders(store)) == 1


async def test_each_location_gets_its_own_fulfillment_order(store: Store) -> None:
    wms = BuiltinWms(store)
    east = await wms.release(request(key="k-east", location="WH-EAST"))
    west = await wms.release(request(key="k-west", location="WH-WEST"))

    assert east.fulfillment_id != west.fulfillment_id
    assert {fo.location for fo in list_fulfillment_orders(store, "shopify-1001")} == {"WH-EAST", "WH-WEST"}


async def test_a_key_reused_for_another_order_is_refused(store: Store) -> None:
    wms = BuiltinWms(store)
    await wms.release(request(key="same-key"))

    with pytest.raises(PermanentError) as err:
        await wms.release(request(key="same-key", order_key="shopify-2002"))
    assert err.value.reason == "idempotency_conflict"


async def test_cancel_before_shipping_cancels_and_is_idempotent(store: Store) -> None:
    wms = BuiltinWms(store)
    released = await wms.release(request(key="k1"))
    picking = await wms.release(request(key="k2", location="WH-WEST"))
    set_status(store, picking.fulfillment_id, "picking")

    for ack in (released, picking):
        result = await wms.cancel(ack.fulfillment_id, "customer changed their mind")
        assert (result.cancelled, result.status) == (True, "cancelled")
        replay = await wms.cancel(ack.fulfillment_id, "customer changed their mind")
        assert (replay.cancelled, replay.status) == (True, "cancelled")

    fo = get_fulfillment_order(store, released.fulfillment_id)
    assert fo is not None
    assert fo.status == "cancelled" and fo.cancel_reason == "customer changed their mind"


@pytest.mark.parametrize("status", ["packed", "shipped"])
async def test_cancel_is_refused_once_packed_or_shipped(store: Store, status: str) -> None:
    wms = BuiltinWms(store)
    ack = await wms.release(request())
    set_status(store, ack.fulfillment_id, status)

    result = await wms.cancel(ack.fulfillment_id, "too late")

    assert (result.cancelled, result.status) == (False, status)
    fo = get_fulfillment_order(store, ack.fulfillment_id)
    assert fo is not None and fo.status == status and fo.cancel_reason is None


@pytest.mark.parametrize("fulfillment_id", ["FO-999999", "nonsense", "FO-12"])
async def test_cancel_of_an_unknown_fulfillment_is_not_found(store: Store, fulfillment_id: str) -> None:
    with pytest.raises(PermanentError) as err:
        await BuiltinWms(store).cancel(fulfillment_id, "whatever")
    assert err.value.reason == "not_found"
    assert err.value.system == "wms"


async def test_injected_rejection_happens_before_anything_is_stored(store: Store) -> None:
    faults = FaultInjector("wms", FaultSettings(reject=["location=WH-BROKEN"]))
    wms = BuiltinWms(store, faults)

    with pytest.raises(PermanentError) as err:
        await wms.release(request(location="WH-BROKEN"))
    assert err.value.reason == "injected_rejection"
    assert list_fulfillment_orders(store) == []
    assert (await wms.release(request(location="WH-EAST"))).status == "released"


def touched_table(entry: Any) -> str:
    """The table an autogenerate diff entry is about (its shapes vary by kind)."""
    op = entry[0] if isinstance(entry, list) else entry
    for part in op[1:]:
        if isinstance(part, Table):
            return part.name
        table = getattr(part, "table", None)
        if isinstance(table, Table):
            return table.name
    return str(op[2]) if len(op) > 2 and isinstance(op[2], str) else ""


def test_migration_0003_matches_the_models(store: Store) -> None:
    """The hand-written migration creates exactly what the models declare (no drift)."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)

    ours = [d for d in diff if touched_table(d).startswith(("wms_", "carrier_"))]
    assert ours == []
