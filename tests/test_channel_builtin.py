"""The builtin channel records notifications once per idempotency key, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from adapters.channels.builtin import BuiltinChannel, list_notifications
from adapters.channels.port import ChannelPort
from adapters.errors import PermanentError, RateLimitedError, TransientError
from adapters.faults import FaultInjector
from backoffice.channel import ChannelNotification
from canonical import Money, Shipment, ShipmentLine
from settings import FaultSettings
from store.db import Store


def shipment(order_id: str = "5601234567890", shipment_id: str = "SHP-1") -> Shipment:
    return Shipment(
        shipment_id=shipment_id,
        order_key=f"shopify-{order_id}",
        location="WH-EAST",
        fulfillment_id="FO-000001",
        lines=[ShipmentLine(line_id="13801234567001", sku="TSHIRT-BLK-M", quantity=2)],
        carrier="UPS",
        service="Ground",
        tracking_numbers=["1Z999AA10123456784"],
        shipped_at=datetime(2026, 11, 21, 15, 30, tzinfo=UTC),
    )


def count(store: Store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(ChannelNotification)) or 0


def test_it_implements_the_channel_port(store: Store) -> None:
    port: ChannelPort = BuiltinChannel(store)
    assert port.name == "shopify"
    assert BuiltinChannel(store, channel="woo").name == "woo"


async def test_fulfillment_is_recorded_once_per_key(store: Store) -> None:
    channel = BuiltinChannel(store)
    before = datetime.now(UTC)
    ack = await channel.notify_fulfillment(
        "5601234567890", shipment(), "order-shopify-5601234567890/ship/SHP-1"
    )
    assert (ack.channel, ack.reference) == ("shopify", "CH-000001")

    replay = await channel.notify_fulfillment(
        "5601234567890", shipment(), "order-shopify-5601234567890/ship/SHP-1"
    )
    assert replay == ack
    assert count(store) == 1

    (n,) = list_notifications(store, "5601234567890")
    assert (n.reference, n.channel, n.kind, n.external_order_id) == (
        "CH-000001",
        "shopify",
        "fulfillment",
        "5601234567890",
    )
    assert n.idempotency_key == "order-shopify-5601234567890/ship/SHP-1"
    assert Shipment.model_validate_json(json.dumps(n.payload["shipment"])) == shipment()  # tracking kept
    assert n.amount is None
    assert n.created_at.tzinfo is not None and before <= n.created_at <= datetime.now(UTC)


async def test_refund_records_the_amount_exactly(store: Store) -> None:
    channel = BuiltinChannel(store)
    ack = await channel.refund_payment("1001", Money.of("68.59", "USD"), "cancelled by customer", "k-refund")
    again = await channel.refund_payment(
        "1001", Money.of("68.59", "USD"), "cancelled by customer", "k-refund"
    )
    assert again == ack and count(store) == 1
    yen = await channel.refund_payment("7001", Money.of("7670", "JPY"), "out of stock", "k-refund-jpy")
    assert yen.reference == "CH-000002"

    usd, jpy = list_notifications(store)
    assert usd.kind == "refund" and usd.amount == Money.of("68.59", "USD")
    assert usd.payload == {"reason": "cancelled by customer", "amount": "68.59", "currency": "USD"}
    assert jpy.amount == Money.of("7670", "JPY") and jpy.payload["amount"] == "7670"


async def test_cancellation_is_recorded(store: Store) -> None:
    channel = BuiltinChannel(store)
    ack = await channel.notify_cancelled("1001", "inventory", "k-cancel")
    assert ack.reference == "CH-000001"
    (n,) = list_notifications(store)
    assert (n.kind, n.payload, n.amount) == ("cancelled", {"reason": "inventory"}, None)


async def test_a_key_reused_for_something_else_is_a_permanent_error(store: Store) -> None:
    channel = BuiltinChannel(store)
    await channel.refund_payment("1001", Money.of("10.00", "USD"), "goodwill", "k-1")
    with pytest.raises(PermanentError) as err:
        await channel.refund_payment("1001", Money.of("12.00", "USD"), "goodwill", "k-1")
    assert err.value.reason == "idempotency_conflict" and "10.00 USD" in err.value.message
    with pytest.raises(PermanentError, match="already recorded a refund"):
        await channel.notify_cancelled("1001", "fraud", "k-1")
    with pytest.raises(PermanentError, match="order 1001"):
        await channel.refund_payment("1002", Money.of("10.00", "USD"), "goodwill", "k-1")
    assert count(store) == 1


async def test_non_positive_refunds_and_missing_keys_are_refused(store: Store) -> None:
    channel = BuiltinChannel(store)
    with pytest.raises(PermanentError) as err:
        await channel.refund_payment("1001", Money.of("0.00", "USD"), "nothing", "k-zero")
    assert err.value.reason == "invalid_amount" and err.value.system == "channel"
    with pytest.raises(PermanentError, match="must be positive"):
        await channel.refund_payment("1001", Money.of("-5.00", "USD"), "negative", "k-neg")
    with pytest.raises(PermanentError, match="idempotency key is required"):
        await channel.notify_cancelled("1001", "fraud", "")
    assert count(store) == 0


async def test_concurrent_calls_with_one_key_record_one_notification(store: Store) -> None:
    channel = BuiltinChannel(store)
    acks = await asyncio.gather(
        *(channel.notify_fulfillment("1001", shipment(), "k-concurrent") for _ in range(8))
    )
    # One notification, and every caller got its reference (a lost insert may use up a
    # sequence number on PostgreSQL, so the number itself is not asserted).
    refs = {a.reference for a in acks}
    assert len(refs) == 1 and next(iter(refs)).startswith("CH-")
    assert count(store) == 1


async def test_notifications_are_listed_in_order_and_filtered(store: Store) -> None:
    shopify, woo = BuiltinChannel(store), BuiltinChannel(store, channel="woocommerce")
    await shopify.notify_fulfillment("A", shipment("A"), "k-a-ship")
    await woo.notify_cancelled("B", "customer", "k-b-cancel")
    await shopify.refund_payment("A", Money.of("5.00", "USD"), "partial", "k-a-refund")

    assert [n.reference for n in list_notifications(store)] == ["CH-000001", "CH-000002", "CH-000003"]
    assert [n.kind for n in list_notifications(store, "A")] == ["fulfillment", "refund"]
    assert [n.channel for n in list_notifications(store, channel="woocommerce")] == ["woocommerce"]
    assert list_notifications(store, "A", channel="woocommerce") == []
    assert list_notifications(store, "missing") == []


async def test_injected_faults_fail_before_anything_is_recorded(store: Store) -> None:
    rejecting = BuiltinChannel(
        store, FaultInjector("channel", FaultSettings(reject=["operation=refund_payment"]))
    )
    with pytest.raises(PermanentError) as err:
        await rejecting.refund_payment("1001", Money.of("1.00", "USD"), "x", "k-fault-1")
    assert err.value.reason == "injected_rejection"
    # The rule matches the operation only: other calls go through.
    assert (await rejecting.notify_cancelled("1001", "x", "k-fault-2")).reference == "CH-000001"

    by_order = BuiltinChannel(
        store, FaultInjector("channel", FaultSettings(reject=["external_order_id=BAD"]))
    )
    with pytest.raises(PermanentError):
        await by_order.notify_fulfillment("BAD", shipment("BAD"), "k-fault-3")

    flaky = BuiltinChannel(store, FaultInjector("channel", FaultSettings(transient_rate=1.0, seed=1)))
    with pytest.raises(TransientError):
        await flaky.notify_cancelled("1001", "x", "k-fault-4")
    limited = BuiltinChannel(
        store, FaultInjector("channel", FaultSettings(rate_limit_rate=1.0, retry_after_s=2.5, seed=1))
    )
    with pytest.raises(RateLimitedError) as limited_err:
        await limited.notify_cancelled("1001", "x", "k-fault-5")
    assert limited_err.value.retry_after == 2.5
    assert [n.idempotency_key for n in list_notifications(store)] == ["k-fault-2"]
