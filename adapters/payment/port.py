"""The payment port: authorize now, capture on shipment, void or refund.

Every call takes an idempotency key: the same key always returns the same result and never
moves money twice (Stripe's Idempotency-Key semantics)."""

from __future__ import annotations

from typing import Protocol

from canonical import Money
from canonical.documents import Authorization, Capture, PaymentRefund, PaymentVoid


class PaymentPort(Protocol):
    name: str

    async def authorize(
        self, amount: Money, reference: str | None, idempotency_key: str
    ) -> Authorization: ...

    async def capture(self, authorization_id: str, amount: Money, idempotency_key: str) -> Capture:
        """Capture part or all of what is left on the authorization."""
        ...

    async def void(self, authorization_id: str, idempotency_key: str) -> PaymentVoid:
        """Release what is not captured."""
        ...

    async def refund(self, capture_id: str, amount: Money, idempotency_key: str) -> PaymentRefund: ...
