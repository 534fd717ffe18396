"""The builtin carrier: labels with tracking numbers, kept in the store.

Tracking events come later from ``CarrierSimulator``, once the warehouse hands the parcel over.
A return label's parcel is the customer's to drop off: it counts as handed over when bought, so
its first scan (in transit) and its delivery follow on the simulator's usual delays, reported
with the return's key instead of an order's.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from adapters.errors import PermanentError, TransientError
from adapters.faults import FaultInjector
from adapters.registry import AdapterContext, register
from adapters.store_calls import in_thread
from backoffice.carrier import CarrierLabel, CarrierReturnLabel
from canonical import Address
from canonical.documents import Label
from store.columns import utcnow
from store.db import Store

SYSTEM = "carrier"
CARRIER_NAME = "builtin"
DEFAULT_SERVICE = "ground"
TRACKING_PREFIX = "1ZRC"
LABEL_URL = "https://labels.invalid/{tracking_number}.pdf"
RETURN_ORIGIN = "customer"  # a return label's ship_from: the customer's address is kept with it


def new_tracking_number() -> str:
    """``1ZRC`` and 12 random digits; uniqueness is enforced by the store (and retried)."""
    return f"{TRACKING_PREFIX}{secrets.randbelow(10**12):012d}"


class BuiltinCarrier:
    """The embedded carrier behind ``CarrierPort``: one label per idempotency key."""

    name = "builtin"

    def __init__(self, store: Store, faults: FaultInjector | None = None) -> None:
        self.store = store
        self.faults = faults or FaultInjector(SYSTEM)

    async def create_label(
        self,
        order_key: str,
        ship_from: str,
        ship_to: Address | None,
        service: str | None,
        idempotency_key: str,
    ) -> Label:
        """Buy a label; a replayed key returns the label bought the first time."""
        await self.faults.before(
            "create_label", order_key=order_key, ship_from=ship_from, service=service or DEFAULT_SERVICE
        )
        return await in_thread(
            SYSTEM, lambda: self._buy(order_key, ship_from, ship_to, service, idempotency_key)
        )

    async def create_return_label(
        self, return_key: str, ship_from: Address | None, to_location: str, idempotency_key: str
    ) -> Label:
        """A prepaid return label from the customer to ``to_location``; a replayed key returns
        the label bought the first time. The label's ``order_key`` is the return key."""
        await self.faults.before("create_return_label", return_key=return_key, to_location=to_location)
        label = await in_thread(
            SYSTEM,
            lambda: self._buy(
                return_key, RETURN_ORIGIN, None, None, idempotency_key, returning=(to_location, ship_from)
            ),
        )
        await self.faults.after("create_return_label")
        return label

    def _buy(
        self,
        order_key: str,
        ship_from: str,
        ship_to: Address | None,
        service: str | None,
        idempotency_key: str,
        *,
        returning: tuple[str, Address | None] | None = None,
    ) -> Label:
        for _ in range(5):
            found = self._replay(order_key, idempotency_key)
            if found is not None:
                return found
            now = utcnow()
            tracking = new_tracking_number()
            label = CarrierLabel(
                tracking_number=tracking,
                idempotency_key=idempotency_key,
                order_key=order_key,
                carrier=CARRIER_NAME,
                service=service or DEFAULT_SERVICE,
                ship_from=ship_from,
                ship_to=ship_to.model_dump(mode="json") if ship_to else None,
                label_url=LABEL_URL.format(tracking_number=tracking),
                created_at=now,
                status="label_created",
                status_changed_at=now,
                handed_over_at=now if returning is not None else None,
            )
            try:
                with self.store.session() as s:
                    s.add(label)
                    if returning is not None:
                        to_location, origin = returning
                        s.add(
                            CarrierReturnLabel(
                                tracking_number=tracking,
                                return_key=order_key,
                                to_location=to_location,
                                ship_from=origin.model_dump(mode="json") if origin else None,
                                created_at=now,
                            )
                        )
                    s.flush()
                    return _label(label)
            except IntegrityError:
                # Either a concurrent purchase with the same key won (the replay above finds
                # it next time round) or the random tracking number was taken (draw again).
                continue
        raise TransientError("could not allocate a unique tracking number", system=SYSTEM)

    def _replay(self, order_key: str, idempotency_key: str) -> Label | None:
        with self.store.session() as s:
            label = s.scalar(select(CarrierLabel).where(CarrierLabel.idempotency_key == idempotency_key))
            if label is None:
                return None
            if label.order_key != order_key:
                raise PermanentError(
                    f"idempotency key {idempotency_key!r} already bought a label for {label.order_key}",
                    reason="idempotency_conflict",
                    system=SYSTEM,
                )
            return _label(label)


def _label(label: CarrierLabel) -> Label:
    return Label(
        tracking_number=label.tracking_number,
        carrier=label.carrier,
        service=label.service,
        label_url=label.label_url,
        created_at=label.created_at,
    )


@register("carrier", "builtin")
def _builtin(ctx: AdapterContext) -> BuiltinCarrier:
    return BuiltinCarrier(ctx.store, FaultInjector("carrier", ctx.settings.faults.carrier))
