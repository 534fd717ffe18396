"""The builtin carrier: labels with unique tracking numbers, idempotent purchase, hand-over."""

from __future__ import annotations

import asyncio
import re

import pytest

from adapters.carrier.builtin import BuiltinCarrier
from adapters.carrier.port import CarrierPort
from adapters.errors import PermanentError, TransientError
from adapters.faults import FaultInjector
from backoffice.carrier import hand_over, list_labels
from canonical import Address
from settings import FaultSettings
from store.columns import utcnow
from store.db import Store

SHIP_TO = Address(name="Grace Hopper", line1="7 Compiler St", city="Arlington", region="VA", country="US")


def test_builtin_carrier_satisfies_the_port(store: Store) -> None:
    carrier: CarrierPort = BuiltinCarrier(store)
    assert carrier.name == "builtin"


async def test_create_label_persists_a_label_with_a_tracking_number(store: Store) -> None:
    label = await BuiltinCarrier(store).create_label(
        "shopify-1001", "WH-EAST", SHIP_TO, "express", "FO-000001-label"
    )

    assert re.fullmatch(r"1ZRC\d{12}", label.tracking_number)
    assert label.label_url == f"https://labels.invalid/{label.tracking_number}.pdf"
    assert (label.carrier, label.service) == ("builtin", "express")
    assert label.created_at.tzinfo is not None
    [stored] = list_labels(store, order_key="shopify-1001")
    assert stored.tracking_number == label.tracking_number
    assert stored.ship_from == "WH-EAST"
    assert stored.ship_to is not None and Address.model_validate(stored.ship_to) == SHIP_TO
    assert (stored.status, stored.handed_over_at) == ("label_created", None)


async def test_service_defaults_to_ground(store: Store) -> None:
    label = await BuiltinCarrier(store).create_label("shopify-1001", "WH-EAST", None, None, "k")
    assert label.service == "ground"


async def test_create_label_is_idempotent_on_the_key(store: Store) -> None:
    carrier = BuiltinCarrier(store)
    first = await carrier.create_label("shopify-1001", "WH-EAST", SHIP_TO, None, "FO-000001-label")
    again = await carrier.create_label("shopify-1001", "WH-EAST", SHIP_TO, None, "FO-000001-label")
    concurrent = await asyncio.gather(
        *(carrier.create_label("shopify-1001", "WH-EAST", SHIP_TO, None, "FO-000001-label") for _ in range(5))
    )

    assert again == first
    assert all(label == first for label in concurrent)
    assert len(list_labels(store)) == 1


async def test_different_keys_get_different_tracking_numbers(store: Store) -> None:
    carrier = BuiltinCarrier(store)
    labels = await asyncio.gather(
        *(carrier.create_label("shopify-1001", "WH-EAST", None, None, f"key-{i}") for i in range(10))
    )
    assert len({label.tracking_number for label in labels}) == 10
    assert len(list_labels(store, "shopify-1001")) == 10


async def test_a_key_reused_for_another_order_is_refused(store: Store) -> None:
    carrier = BuiltinCarrier(store)
    await carrier.create_label("shopify-1001", "WH-EAST", None, None, "same-key")

    with pytest.raises(PermanentError) as err:
        await carrier.create_label("shopify-2002", "WH-EAST", None, None, "same-key")
    assert err.value.reason == "idempotency_conflict"


async def test_injected_outage_is_transient_and_buys_nothing(store: Store) -> None:
    carrier = BuiltinCarrier(store, FaultInjector("carrier", FaultSettings(transient_rate=1.0)))

    with pytest.raises(TransientError):
        await carrier.create_label("shopify-1001", "WH-EAST", None, None, "k")
    assert list_labels(store) == []


async def test_hand_over_happens_once(store: Store) -> None:
    label = await BuiltinCarrier(store).create_label("shopify-1001", "WH-EAST", None, None, "k")
    first, second = utcnow(), utcnow()

    with store.session() as s:
        assert hand_over(s, label.tracking_number, first) is True
    with store.session() as s:
        assert hand_over(s, label.tracking_number, second) is False
        assert hand_over(s, "1ZRC000000000000", second) is False

    [stored] = list_labels(store)
    assert stored.handed_over_at == first
