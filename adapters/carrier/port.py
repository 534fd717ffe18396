"""The carrier port: labels with tracking numbers; tracking events come back by webhook."""

from __future__ import annotations

from typing import Protocol

from canonical import Address
from canonical.documents import Label


class CarrierPort(Protocol):
    name: str

    async def create_label(
        self,
        order_key: str,
        ship_from: str,
        ship_to: Address | None,
        service: str | None,
        idempotency_key: str,
    ) -> Label:
        """Buy a label. Idempotent on the key (a retried purchase returns the same label)."""
        ...

    async def create_return_label(
        self, return_key: str, ship_from: Address | None, to_location: str, idempotency_key: str
    ) -> Label:
        """A prepaid return label from the customer to the warehouse; its tracking events (first
        scan, delivered) come back by webhook for the return. Idempotent on the key."""
        ...
