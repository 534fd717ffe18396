"""What the platform tells Adobe Commerce (Magento 2): shipments and cancellations.

Follows ``shared/contracts/bigcommerce_adobe_commerce.md`` §B; what the contract does not spell
out is from Magento's Web API reference and said so.

**Shipments** (``POST /V1/order/{entity_id}/ship``, the contract's body: ``items`` with
``order_item_id`` and ``qty``, ``tracks`` with ``track_number``, ``title``, ``carrier_code``,
``notify``; plus Magento's ``appendComment``/``comment``). Magento has no idempotency key, so
the adapter looks before it writes, as the Shopify adapter does: it lists the order's shipments
(``GET /V1/shipments`` by ``order_id``) and a shipment that carries one of our tracking numbers,
or our marker ``[retail-connect shipment <shipment id>]`` in its comment, is this shipment
already (a retry after a lost answer, or the same parcel entered by hand): its id is the answer
and nothing is created. Otherwise one ``ship`` call creates one shipment with every tracking
number. Line ids are the order's ``item_id``s (the mapper's ``line_id``). ``carrier_code`` is
Magento's for the carriers it ships with (``ups``, ``usps``, ``fedex``, ``dhl``), else ``custom``
with the carrier's name as ``title``. A shipment without tracking is created without tracks
(Magento allows it; the comment marker keeps it idempotent).

**Cancellation** (``POST /V1/orders/{entity_id}/cancel``, Magento's reference: ``true``, or
``false`` when the order cannot be cancelled). An order already ``canceled`` at the store is
success without a call. ``false`` on an order that is still not cancelled (typically one paid
at the store, hence invoiced: Magento cancels only what is not invoiced) is refused for good
(``adobe_commerce_cannot_cancel``): a person refunds it with a credit memo in the admin and
skips the step with its number.

Refunds and return notices stay with the builtin recording (``adapters/channels/polled.py``).
"""

from __future__ import annotations

import re

from adapters.channels.adobe_commerce.client import SYSTEM, AdobeCommerceClient, Json
from adapters.channels.adobe_commerce.mapping import CANCELLED
from adapters.errors import PermanentError, TransientError
from canonical import Shipment
from canonical.documents import ChannelAck

MAGENTO_CARRIERS = frozenset({"ups", "usps", "fedex", "dhl"})
CUSTOM = "custom"


def marker(shipment_id: str) -> str:
    """What the shipment's comment carries so a retry recognises it."""
    return f"[retail-connect shipment {shipment_id}]"


def magento_carrier(carrier: str | None) -> tuple[str, str]:
    """(carrier_code, title) for a track."""
    name = (carrier or "").strip()
    code = re.sub(r"[^a-z]", "", name.lower())
    return (code if code in MAGENTO_CARRIERS else CUSTOM), name or "Carrier"


def _ours(existing: Json, shipment_marker: str, tracking: set[str], items: dict[int, int]) -> bool:
    """Whether ``existing`` is this shipment, written before: our marker in its comments, or
    (comments not listed) one of our tracking numbers on the same items. A tracking number alone
    is not enough: two shipments of one order may share a master tracking number."""
    comments = [str(c.get("comment")) for c in existing.get("comments") or [] if isinstance(c, dict)]
    if any(shipment_marker in c for c in comments):
        return True
    tracks = {str(t.get("track_number")) for t in existing.get("tracks") or [] if isinstance(t, dict)}
    shipped: dict[int, int] = {}
    for it in existing.get("items") or []:
        if isinstance(it, dict) and isinstance(it.get("order_item_id"), int):
            qty = it.get("qty")
            shipped[it["order_item_id"]] = shipped.get(it["order_item_id"], 0) + int(qty or 0)
    return bool(tracking & tracks) and shipped == items


class AdobeCommerceWriter:
    def __init__(
        self, client: AdobeCommerceClient, name: str = "adobe_commerce", *, notify_customer: bool = False
    ) -> None:
        self.client = client
        self.name = name
        self.notify_customer = notify_customer

    async def _order(self, external_order_id: str) -> Json:
        order = await self.client.order_by_number(external_order_id)
        if order is None:
            raise PermanentError(
                f"Adobe Commerce has no order #{external_order_id}",
                reason="adobe_commerce_not_found",
                system=SYSTEM,
            )
        if not isinstance(order.get("entity_id"), int):
            raise TransientError(f"order #{external_order_id}: no entity_id in the answer", system=SYSTEM)
        return order

    async def notify_fulfillment(
        self, external_order_id: str, shipment: Shipment, idempotency_key: str
    ) -> ChannelAck:
        """Create the shipment with its tracks unless the order already has it."""
        items: dict[int, int] = {}
        for line in shipment.lines:
            if not line.line_id.strip().isdigit():
                raise PermanentError(
                    f"shipment {shipment.shipment_id}: line {line.line_id!r} is not a Magento order item id",
                    reason="adobe_commerce_invalid",
                    system=SYSTEM,
                )
            items[int(line.line_id)] = items.get(int(line.line_id), 0) + line.quantity
        order = await self._order(external_order_id)
        entity_id = int(order["entity_id"])
        tracking = [t.strip() for t in shipment.tracking_numbers if t and t.strip()]
        mark = marker(shipment.shipment_id)
        for existing in await self.client.shipments(entity_id):
            if _ours(existing, mark, set(tracking), items):
                return ChannelAck(channel=self.name, reference=f"shipment:{existing.get('entity_id')}")
        code, title = magento_carrier(shipment.carrier)
        body: Json = {
            "items": [{"order_item_id": item, "qty": qty} for item, qty in items.items()],
            "notify": self.notify_customer,
            "appendComment": True,
            "comment": {
                "comment": f"Shipped from {shipment.location} {mark}",
                "is_visible_on_front": 0,
            },
            "tracks": [{"track_number": n, "title": title, "carrier_code": code} for n in tracking],
        }
        shipment_entity = await self.client.ship(entity_id, body)
        return ChannelAck(channel=self.name, reference=f"shipment:{shipment_entity}")

    async def notify_cancelled(self, external_order_id: str, reason: str, idempotency_key: str) -> ChannelAck:
        """Cancel the order at the store; one cancelled already is success."""
        order = await self._order(external_order_id)
        entity_id = int(order["entity_id"])
        done = ChannelAck(channel=self.name, reference=f"cancelled:{entity_id}")
        if order.get("state") == CANCELLED:
            return done
        if await self.client.cancel(entity_id):
            return done
        now = await self._order(external_order_id)
        if now.get("state") == CANCELLED:
            return done  # cancelled in between (a retry, a person): what was asked is so
        raise PermanentError(
            f"Adobe Commerce will not cancel order #{external_order_id} (state {now.get('state')}):"
            " an invoiced order needs a credit memo at the store; cancel it there, then skip",
            reason="adobe_commerce_cannot_cancel",
            system=SYSTEM,
        )
