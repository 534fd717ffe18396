"""The payment port: authorize now, capture on shipment, void or refund.

Every call takes an idempotency key: the same key always returns the same result and never
moves money twice (Stripe's Idempotency-Key semantics)."""

from __future__ import annotations

from typing import Protocol

from canonical import Money
from canonical.documents import Authorization, Capture, PaymentRefund, PaymentVoid
from canonical.returns import CaptureBalance


class PaymentPort(Protocol):
    name: str

    async def authorize(
        self, amount: Money, reference: str | None, idempotency_key: str
    ) -> Authorization: ...

    async def adjust_authorization(
        self, authorization_id: str, amount: Money, idempotency_key: str
    ) -> Authorization:
        """Hold ``amount`` instead of what the authorization holds now (an edited order): lower
        releases the difference (a partial reversal); higher is an incremental authorization,
        which a provider may refuse (PermanentError reason='increase_not_supported')."""
        ...

    async def capture(self, authorization_id: str, amount: Money, idempotency_key: str) -> Capture:
        """Capture part or all of what is left on the authorization."""
        ...

    async def void(self, authorization_id: str, idempotency_key: str) -> PaymentVoid:
        """Release what is not captured."""
        ...

    async def refund(self, capture_id: str, amount: Money, idempotency_key: str) -> PaymentRefund:
        """Refund up to what is left of the capture; more is a PermanentError
        (reason='refund_exceeds_capture')."""
        ...

    async def capture_balance(self, capture_id: str) -> CaptureBalance:
        """The capture's amount and what was refunded from it so far (Stripe: amount_refunded)."""
        ...
