"""The address-check port: is this ship-to address deliverable as written?

A vendor (Loqate, Smarty, Google Address Validation) plugs in here; the builtin one checks
required fields and postal code formats per country."""

from __future__ import annotations

from typing import Protocol

from canonical import Address
from canonical.documents import AddressCheck


class AddressCheckPort(Protocol):
    name: str

    async def check(self, address: Address | None) -> AddressCheck:
        """Whether the address can be shipped to, and if not, every reason (for a person to fix).

        A failed check is an answer, not an error: raise only when the check itself could not run."""
        ...
