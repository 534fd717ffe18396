"""The builtin payment provider behind ``PaymentPort``: authorizations, partial captures,
voids and refunds kept in the store, with Stripe's Idempotency-Key semantics.

Every call's key is inserted first in the call's transaction, with the request's parameters.
The same key then always returns the first call's stored response and never moves money
twice, even across processes: a concurrent call with the same key waits on the key's primary
key (PostgreSQL) or on the write lock (SQLite), fails, and reads the winner's response. A key
reused with different parameters is refused (``idempotency_key_reuse``). Failed calls store
nothing, so they can be retried with the same key once the cause is fixed.

Test rule: the reference ``tok_decline`` is declined (``card_declined``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters import store_calls
from adapters.errors import PermanentError, TransientError
from adapters.faults import FaultInjector
from adapters.registry import AdapterContext, register
from backoffice.payment import (
    PaymentAuthorization,
    PaymentCapture,
    PaymentIdempotencyKey,
    PaymentRefundRecord,
    authorization_document,
    get_authorization,
    list_captures,
    list_refunds,
)
from canonical import Money
from canonical.documents import Authorization, Capture, PaymentRefund, PaymentVoid
from canonical.returns import CaptureBalance
from store.db import Store

__all__ = ["DECLINE_REFERENCE", "BuiltinPayment", "get_authorization", "list_captures", "list_refunds"]

SYSTEM = "payment"
DECLINE_REFERENCE = "tok_decline"
T = TypeVar("T")
D = TypeVar("D", bound=BaseModel)


async def in_thread(fn: Callable[[], T]) -> T:
    return await store_calls.in_thread(SYSTEM, fn)


def permanent(message: str, reason: str) -> PermanentError:
    return PermanentError(message, reason=reason, system=SYSTEM)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _positive(amount: Money) -> None:
    if amount.amount <= 0:
        raise permanent(f"amount must be positive, got {amount}", "invalid_amount")


class BuiltinPayment:
    """The embedded payment provider (manual capture, partial captures, refunds)."""

    name = "builtin"

    def __init__(self, store: Store, faults: FaultInjector | None = None) -> None:
        self.store = store
        self.faults = faults or FaultInjector(SYSTEM)

    # -- the port ---------------------------------------------------------------------------

    async def authorize(self, amount: Money, reference: str | None, idempotency_key: str) -> Authorization:
        """Hold ``amount``; the same key returns the same authorization."""
        await self.faults.before("authorize", reference=reference, currency=amount.currency)
        request = {"amount": str(amount.amount), "currency": amount.currency, "reference": reference}
        result = await in_thread(
            lambda: self._idempotent(
                idempotency_key,
                "authorize",
                request,
                Authorization,
                lambda s: self._authorize(s, amount, reference),
            )
        )
        await self.faults.after("authorize")
        return result

    async def adjust_authorization(
        self, authorization_id: str, amount: Money, idempotency_key: str
    ) -> Authorization:
        """Lower what the authorization holds to ``amount`` (a partial reversal); never below
        what was captured or voided. Increases are refused (``increase_not_supported``)."""
        await self.faults.before("adjust", authorization_id=authorization_id, currency=amount.currency)
        request = {
            "authorization_id": authorization_id,
            "amount": str(amount.amount),
            "currency": amount.currency,
        }
        result = await in_thread(
            lambda: self._idempotent(
                idempotency_key,
                "adjust",
                request,
                Authorization,
                lambda s: self._adjust(s, authorization_id, amount),
            )
        )
        await self.faults.after("adjust")
        return result

    async def capture(self, authorization_id: str, amount: Money, idempotency_key: str) -> Capture:
        """Capture part or all of what is left; more than that is ``insufficient_authorization``."""
        await self.faults.before("capture", authorization_id=authorization_id, currency=amount.currency)
        request = {
            "authorization_id": authorization_id,
            "amount": str(amount.amount),
            "currency": amount.currency,
        }
        result = await in_thread(
            lambda: self._idempotent(
                idempotency_key,
                "capture",
                request,
                Capture,
                lambda s: self._capture(s, authorization_id, amount),
            )
        )
        await self.faults.after("capture")
        return result

    async def void(self, authorization_id: str, idempotency_key: str) -> PaymentVoid:
        """Release what is not captured (zero when nothing is left)."""
        await self.faults.before("void", authorization_id=authorization_id)
        request = {"authorization_id": authorization_id}
        result = await in_thread(
            lambda: self._idempotent(
                idempotency_key, "void", request, PaymentVoid, lambda s: self._void(s, authorization_id)
            )
        )
        await self.faults.after("void")
        return result

    async def refund(self, capture_id: str, amount: Money, idempotency_key: str) -> PaymentRefund:
        """Refund up to the capture's amount minus earlier refunds (``refund_exceeds_capture``
        beyond); the same key returns the first refund and never moves money twice."""
        await self.faults.before("refund", capture_id=capture_id, currency=amount.currency)
        request = {"capture_id": capture_id, "amount": str(amount.amount), "currency": amount.currency}
        result = await in_thread(
            lambda: self._idempotent(
                idempotency_key,
                "refund",
                request,
                PaymentRefund,
                lambda s: self._refund(s, capture_id, amount),
            )
        )
        await self.faults.after("refund")
        return result

    async def capture_balance(self, capture_id: str) -> CaptureBalance:
        """The capture's amount and what its refunds took so far (a read: no key needed)."""
        await self.faults.before("capture_balance", capture_id=capture_id)
        result = await in_thread(lambda: self._capture_balance(capture_id))
        await self.faults.after("capture_balance")
        return result

    def _capture_balance(self, capture_id: str) -> CaptureBalance:
        with self.store.reading() as s:
            cap = s.get(PaymentCapture, capture_id)
            if cap is None:
                raise permanent(f"no capture {capture_id}", "not_found")
            return CaptureBalance(
                capture_id=cap.id,
                amount=Money.of(cap.amount, cap.currency),
                refunded=Money.of(cap.refunded, cap.currency),
            )

    # -- idempotency ------------------------------------------------------------------------

    def _idempotent(
        self,
        key: str,
        operation: str,
        request: Mapping[str, str | None],
        result_type: type[D],
        action: Callable[[Session], D],
    ) -> D:
        fingerprint = json.dumps({"operation": operation, **request}, sort_keys=True)
        for _ in range(2):
            try:
                with self.store.session() as s:
                    done = s.get(PaymentIdempotencyKey, key)
                    if done is not None:
                        return _replay(done, fingerprint, result_type)
                    row = PaymentIdempotencyKey(idempotency_key=key, operation=operation, request=fingerprint)
                    s.add(row)
                    s.flush()  # a concurrent call with this key blocks here until we finish, then fails
                    result = action(s)
                    row.response = result.model_dump_json()
                    return result
            except IntegrityError:
                continue  # lost the race for this key: the next round replays the winner's response
        raise TransientError(f"idempotency key {key!r} is in use by a concurrent request", system=SYSTEM)

    # -- operations (inside the key's transaction) -------------------------------------------

    def _authorize(self, s: Session, amount: Money, reference: str | None) -> Authorization:
        _positive(amount)
        if reference == DECLINE_REFERENCE:
            raise permanent("card declined (test reference tok_decline)", "card_declined")
        auth = PaymentAuthorization(
            id=_new_id("auth"),
            amount=amount.amount,
            currency=amount.currency,
            captured=Decimal(0),
            voided=Decimal(0),
            status="authorized",
            reference=reference,
        )
        s.add(auth)
        s.flush()
        return authorization_document(auth)

    def _adjust(self, s: Session, authorization_id: str, amount: Money) -> Authorization:
        auth = s.get(PaymentAuthorization, authorization_id, with_for_update=True)
        if auth is None:
            raise permanent(f"no authorization {authorization_id}", "not_found")
        if amount.currency != auth.currency:
            raise permanent(
                f"adjustment in {amount.currency} of an authorization in {auth.currency}", "currency_mismatch"
            )
        _positive(amount)
        if auth.status == "voided":
            raise permanent(f"authorization {authorization_id} is voided", "authorization_voided")
        if amount.amount > auth.amount:
            raise permanent(
                f"raising {authorization_id} from {Money.of(auth.amount, auth.currency)} to {amount}"
                " needs a new authorization",
                "increase_not_supported",
            )
        if amount.amount < auth.captured + auth.voided:
            raise permanent(
                f"{amount} is less than the {Money.of(auth.captured + auth.voided, auth.currency)} already"
                f" captured or voided on {authorization_id}",
                "insufficient_authorization",
            )
        auth.amount = amount.amount
        if auth.captured >= auth.amount and auth.captured > 0:
            auth.status = "captured"
        s.flush()
        return authorization_document(auth)

    def _capture(self, s: Session, authorization_id: str, amount: Money) -> Capture:
        auth = s.get(PaymentAuthorization, authorization_id, with_for_update=True)
        if auth is None:
            raise permanent(f"no authorization {authorization_id}", "not_found")
        if amount.currency != auth.currency:
            raise permanent(
                f"capture in {amount.currency} on an authorization in {auth.currency}", "currency_mismatch"
            )
        _positive(amount)
        if auth.status == "voided":
            raise permanent(f"authorization {authorization_id} is voided", "authorization_voided")
        remaining = auth.remaining
        if amount.amount > remaining:
            raise permanent(
                f"capture of {amount} exceeds the {Money.of(remaining, auth.currency)} left"
                f" on {authorization_id}",
                "insufficient_authorization",
            )
        cap = PaymentCapture(
            id=_new_id("cap"),
            authorization_id=auth.id,
            amount=amount.amount,
            currency=amount.currency,
            refunded=Decimal(0),
        )
        s.add(cap)
        auth.captured = auth.captured + amount.amount
        auth.status = "captured" if auth.captured >= auth.amount else "partially_captured"
        s.flush()
        return Capture(capture_id=cap.id, authorization_id=auth.id, amount=amount)

    def _void(self, s: Session, authorization_id: str) -> PaymentVoid:
        auth = s.get(PaymentAuthorization, authorization_id, with_for_update=True)
        if auth is None:
            raise permanent(f"no authorization {authorization_id}", "not_found")
        released = auth.remaining
        auth.voided = auth.voided + released
        if auth.captured == 0:
            auth.status = "voided"
        s.flush()
        return PaymentVoid(authorization_id=auth.id, voided=Money.of(released, auth.currency))

    def _refund(self, s: Session, capture_id: str, amount: Money) -> PaymentRefund:
        cap = s.get(PaymentCapture, capture_id, with_for_update=True)
        if cap is None:
            raise permanent(f"no capture {capture_id}", "not_found")
        if amount.currency != cap.currency:
            raise permanent(
                f"refund in {amount.currency} of a capture in {cap.currency}", "currency_mismatch"
            )
        _positive(amount)
        left = cap.amount - cap.refunded
        if amount.amount > left:
            raise permanent(
                f"refund of {amount} exceeds the {Money.of(left, cap.currency)} refundable on {capture_id}",
                "refund_exceeds_capture",
            )
        ref = PaymentRefundRecord(
            id=_new_id("re"), capture_id=cap.id, amount=amount.amount, currency=amount.currency
        )
        s.add(ref)
        cap.refunded = cap.refunded + amount.amount
        s.flush()
        return PaymentRefund(refund_id=ref.id, capture_id=cap.id, amount=amount)


def _replay(done: PaymentIdempotencyKey, fingerprint: str, result_type: type[D]) -> D:
    if done.request != fingerprint:
        raise permanent(
            f"idempotency key {done.idempotency_key!r} was used for a different request ({done.request})",
            "idempotency_key_reuse",
        )
    if done.response is None:  # cannot be seen committed; guard against a half-written row anyway
        raise TransientError(f"idempotency key {done.idempotency_key!r} has no response yet", system=SYSTEM)
    return result_type.model_validate_json(done.response)


@register("payment", "builtin")
def _builtin(ctx: AdapterContext) -> BuiltinPayment:
    return BuiltinPayment(ctx.store, FaultInjector("payment", ctx.settings.faults.payment))
