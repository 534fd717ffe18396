"""The builtin payment provider on a real store: Stripe-like idempotency (also across
processes and under races), partial captures, voids, refunds, declines and fault injection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from adapters.errors import PermanentError, TransientError
from adapters.faults import FaultInjector
from adapters.payment.builtin import BuiltinPayment, get_authorization, list_captures, list_refunds
from canonical import Money
from settings import FaultSettings
from store.db import Store


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def race(
    store: Store, n: int, call: Callable[[BuiltinPayment, int], Coroutine[Any, Any, Any]]
) -> tuple[list[Any], list[BaseException]]:
    """Run ``call`` from ``n`` threads at once, alternating between two engines (two processes)."""
    other = Store(store.url)
    results: list[Any] = []
    errors: list[BaseException] = []
    try:
        providers = [BuiltinPayment(store), BuiltinPayment(other)]
        barrier = threading.Barrier(n)

        def run(i: int) -> None:
            barrier.wait()
            try:
                results.append(asyncio.run(call(providers[i % 2], i)))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.dispose()
    return results, errors


async def test_the_same_key_returns_the_same_authorization_and_a_reused_key_is_refused(store: Store) -> None:
    pay = BuiltinPayment(store)
    auth = await pay.authorize(usd("72.03"), "tok_visa", "order-1:authorize")
    assert auth.authorization_id.startswith("auth_") and auth.status == "authorized"
    assert await pay.authorize(usd("72.03"), "tok_visa", "order-1:authorize") == auth
    assert await BuiltinPayment(store).authorize(usd("72.030"), "tok_visa", "order-1:authorize") == auth

    for amount, ref in ((usd("72.04"), "tok_visa"), (usd("72.03"), "tok_other")):
        with pytest.raises(PermanentError) as exc:
            await pay.authorize(amount, ref, "order-1:authorize")
        assert exc.value.reason == "idempotency_key_reuse"
    with pytest.raises(PermanentError) as exc:
        await pay.capture(auth.authorization_id, usd("1.00"), "order-1:authorize")  # another operation
    assert exc.value.reason == "idempotency_key_reuse"
    assert list_captures(store) == []


async def test_declines_and_invalid_amounts_store_nothing(store: Store) -> None:
    pay = BuiltinPayment(store)
    with pytest.raises(PermanentError) as exc:
        await pay.authorize(usd("10.00"), "tok_decline", "k")
    assert exc.value.reason == "card_declined"
    with pytest.raises(PermanentError) as exc:
        await pay.authorize(usd("0"), "tok_visa", "k0")
    assert exc.value.reason == "invalid_amount"
    # Nothing was stored under the key: once the customer fixes the card, the same key works.
    auth = await pay.authorize(usd("10.00"), "tok_visa", "k")
    assert auth.status == "authorized"


async def test_partial_captures_until_the_authorization_is_exhausted(store: Store) -> None:
    pay = BuiltinPayment(store)
    auth = await pay.authorize(usd("100.00"), None, "a")
    c1 = await pay.capture(auth.authorization_id, usd("60.00"), "c1")
    assert c1.capture_id.startswith("cap_") and c1.amount == usd("60.00")
    assert await pay.capture(auth.authorization_id, usd("60.00"), "c1") == c1  # replay: no second capture
    assert get_authorization(store, auth.authorization_id).status == "partially_captured"  # type: ignore[union-attr]

    with pytest.raises(PermanentError) as over:
        await pay.capture(auth.authorization_id, usd("40.01"), "c2")
    assert over.value.reason == "insufficient_authorization"
    with pytest.raises(PermanentError) as cur:
        await pay.capture(auth.authorization_id, Money.of("40.00", "EUR"), "c2")
    assert cur.value.reason == "currency_mismatch"
    with pytest.raises(PermanentError) as missing:
        await pay.capture("auth_nope", usd("1.00"), "c9")
    assert missing.value.reason == "not_found"

    await pay.capture(auth.authorization_id, usd("40.00"), "c2")
    assert get_authorization(store, auth.authorization_id).status == "captured"  # type: ignore[union-attr]
    assert [c.amount for c in list_captures(store, auth.authorization_id)] == [usd("60.00"), usd("40.00")]
    with pytest.raises(PermanentError) as done:
        await pay.capture(auth.authorization_id, usd("0.01"), "c3")
    assert done.value.reason == "insufficient_authorization"


async def test_void_releases_only_the_uncaptured_remainder(store: Store) -> None:
    pay = BuiltinPayment(store)
    part = await pay.authorize(usd("100.00"), None, "a1")
    await pay.capture(part.authorization_id, usd("30.00"), "c1")
    v = await pay.void(part.authorization_id, "v1")
    assert v.voided == usd("70.00") and await pay.void(part.authorization_id, "v1") == v
    assert (await pay.void(part.authorization_id, "v2")).voided.is_zero
    with pytest.raises(PermanentError) as exc:
        await pay.capture(part.authorization_id, usd("1.00"), "c2")
    assert exc.value.reason == "insufficient_authorization"

    whole = await pay.authorize(Money.of("4856", "JPY"), None, "a2")
    assert (await pay.void(whole.authorization_id, "v3")).voided == Money.of("4856", "JPY")
    assert get_authorization(store, whole.authorization_id).status == "voided"  # type: ignore[union-attr]
    with pytest.raises(PermanentError) as voided:
        await pay.capture(whole.authorization_id, Money.of("1", "JPY"), "c3")
    assert voided.value.reason == "authorization_voided"


async def test_refunds_up_to_what_was_captured(store: Store) -> None:
    pay = BuiltinPayment(store)
    auth = await pay.authorize(Money.of("5.625", "KWD"), None, "a")
    cap = await pay.capture(auth.authorization_id, Money.of("5.625", "KWD"), "c")
    r1 = await pay.refund(cap.capture_id, Money.of("2.000", "KWD"), "r1")
    assert (
        r1.refund_id.startswith("re_") and await pay.refund(cap.capture_id, Money.of("2", "KWD"), "r1") == r1
    )
    with pytest.raises(PermanentError) as exc:
        await pay.refund(cap.capture_id, Money.of("3.626", "KWD"), "r2")
    assert exc.value.reason == "refund_exceeds_capture"
    await pay.refund(cap.capture_id, Money.of("3.625", "KWD"), "r2")
    assert Money.sum((r.amount for r in list_refunds(store)), "KWD") == Money.of("5.625", "KWD")
    with pytest.raises(PermanentError) as missing:
        await pay.refund("cap_nope", Money.of("1", "KWD"), "r3")
    assert missing.value.reason == "not_found"


def test_concurrent_calls_with_one_key_move_money_once(store: Store) -> None:
    auths, errors = race(store, 10, lambda p, i: p.authorize(usd("50.00"), "tok_visa", "order-9:authorize"))
    assert errors == [] and len({a.authorization_id for a in auths}) == 1
    auth_id = auths[0].authorization_id

    caps, errors = race(store, 10, lambda p, i: p.capture(auth_id, usd("20.00"), "order-9:capture:S1"))
    assert errors == [] and len(caps) == 10 and len({c.capture_id for c in caps}) == 1
    assert len(list_captures(store, auth_id)) == 1

    refunds, errors = race(
        store, 10, lambda p, i: p.refund(caps[0].capture_id, usd("5.00"), "order-9:refund:1")
    )
    assert errors == [] and len({r.refund_id for r in refunds}) == 1 and len(list_refunds(store)) == 1


def test_concurrent_captures_with_different_keys_never_exceed_the_authorization(store: Store) -> None:
    auth = asyncio.run(BuiltinPayment(store).authorize(usd("100.00"), None, "a"))
    caps, errors = race(store, 10, lambda p, i: p.capture(auth.authorization_id, usd("20.00"), f"cap-{i}"))
    assert len(caps) == 5 and len(errors) == 5
    assert all(isinstance(e, PermanentError) and e.reason == "insufficient_authorization" for e in errors)
    assert Money.sum((c.amount for c in list_captures(store, auth.authorization_id)), "USD") == usd("100.00")


async def test_configured_faults_reject_permanently_or_fail_transiently(store: Store) -> None:
    rejecting = BuiltinPayment(store, FaultInjector("payment", FaultSettings(reject=["operation=capture"])))
    auth = await rejecting.authorize(usd("10.00"), None, "a")
    with pytest.raises(PermanentError) as exc:
        await rejecting.capture(auth.authorization_id, usd("10.00"), "c")
    assert exc.value.reason == "injected_rejection"
    assert list_captures(store) == []

    flaky = BuiltinPayment(store, FaultInjector("payment", FaultSettings(transient_rate=1.0)))
    with pytest.raises(TransientError):
        await flaky.capture(auth.authorization_id, usd("10.00"), "c")
    # The key was not consumed by the failed attempts: a healthy retry captures once.
    cap = await BuiltinPayment(store).capture(auth.authorization_id, usd("10.00"), "c")
    assert list_captures(store) == [cap]
