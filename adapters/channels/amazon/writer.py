"""What the platform tells Amazon: shipments (``confirmShipment``) and MFN stock
(``patchListingsItem``), following ``shared/contracts/amazon_sp_api.md`` §4, §5.1, §6 and §7.

**Shipments.** One ``confirmShipment`` per tracking number (a package each), listing the order
items and quantities in it; the canonical ``line_id`` of an Amazon order is its ``OrderItemId``.

* ``packageReferenceId`` is derived, never drawn: the first 8 bytes of
  ``sha256("<order id>|<shipment id>|<package index>")`` modulo 999,999,999, plus one, as a
  decimal string (a positive number of at most nine digits, well inside any integer type Amazon
  might keep it in). Amazon edits the package a resubmitted id names, so a retried activity, an
  operator's retry or a replayed worker edits the same package instead of adding a second one;
  the id depends on the shipment only, not on the idempotency key (which changes after an
  operator retries a refusal). Two shipments of one order colliding is a one in 10^9 chance.
* A shipment with several tracking numbers says nothing about which goods are in which box: the
  units go out in line order, split as evenly as possible over the packages (each needs at least
  one unit), so the quantities add up exactly and every tracking number reaches Amazon. More
  tracking numbers than units: the surplus ones cannot be confirmed (a package needs an item) and
  are left out with a warning.
* ``trackingNumber`` is required by Amazon. A shipment without one is refused for good
  (``amazon_tracking_required``) before anything is sent: confirming with an invented number
  would mislead the buyer, and leaving it unconfirmed would let Amazon cancel the order as late.
  The order waits in NeedsAttention: a person confirms it in Seller Central and skips the step
  with the reference.
* ``carrierCode``: ``UPS`` (the contract's example) and ``USPS``, ``FedEx``, ``DHL`` from
  Amazon's "Acceptable CarrierCode values" page (beyond the contract); anything else is
  ``Other`` with ``carrierName`` (the builtin carrier included).
* ``marketplaceId``: the configured one when there is one; with several, the order's own
  (``getOrder``, cached).
* Orders whose label was bought through Amazon are confirmed by Amazon and answer 400: that is
  ``amazon_shipment_rejected`` with Amazon's message, for a person to check and skip.

**Stock.** ``patchListingsItem`` per SKU with ``op: merge`` on ``fulfillment_availability``
(``fulfillment_channel_code: DEFAULT``, the seller-fulfilled channel), which sets the quantity and
keeps the handling time and restock date the seller set (``replace`` would wipe them). Absolute
quantities, so a repeat is harmless (§7: no deduplication on Amazon's side). The plan is 5/s,
burst 5: a batch larger than the burst meets a 429, raised as ``RateLimitedError`` after
``1 / rate``; the SKUs Amazon accepted under the same idempotency key are remembered (in memory,
bounded), so the retried activity goes on from where the 429 stopped instead of spending the
bucket on the same SKUs again. ``ACCEPTED`` only means queued; ``INVALID`` SKUs are reported
together (``amazon_listing_invalid``) after the others were sent.

Nothing here sleeps or loops on errors: Temporal retries the activity.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, OrderedDict
from datetime import UTC

import structlog

from adapters.channels.amazon.client import SYSTEM, AmazonClient, Json, amz_time
from adapters.errors import PermanentError, TransientError
from canonical import ChannelAvailability, Shipment
from canonical.documents import ChannelAck

log = structlog.get_logger("amazon")

OTHER = "Other"
CARRIER_CODES = {"ups": "UPS", "usps": "USPS", "fedex": "FedEx", "dhl": "DHL"}
MFN_CHANNEL = "DEFAULT"
_PACKAGE_SPACE = 999_999_999
_MEMO_SIZE = 200


def package_reference_id(order_id: str, shipment_id: str, index: int) -> str:
    """A positive number (as a string) naming package ``index`` of a shipment, the same on
    every call: resubmitting it edits that package at Amazon."""
    digest = hashlib.sha256(f"{order_id}|{shipment_id}|{index}".encode()).digest()
    return str(int.from_bytes(digest[:8], "big") % _PACKAGE_SPACE + 1)


def carrier_code(carrier: str | None) -> tuple[str, str | None]:
    """(carrierCode, carrierName): Amazon's code for a carrier it lists, else ``Other`` and the name."""
    name = (carrier or "").strip()
    code = CARRIER_CODES.get(re.sub(r"[^a-z]", "", name.lower()))
    if code is not None:
        return code, None
    return OTHER, name or "Unknown"


def split_packages(lines: dict[str, int], packages: int) -> list[dict[str, int]]:
    """The units of ``lines`` (item -> quantity, in line order) over ``packages`` boxes, in
    contiguous runs as even as possible; never an empty box."""
    units = [item for item, qty in lines.items() for _ in range(qty)]
    n = max(1, min(packages, len(units)))
    size, extra = divmod(len(units), n)
    out: list[dict[str, int]] = []
    start = 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(dict(Counter(units[start:end])))
        start = end
    return out


class AmazonWriter:
    """Shipment confirmations, and stock when ``seller_id`` is known (Listings needs it)."""

    def __init__(
        self,
        client: AmazonClient,
        name: str = "amazon",
        *,
        seller_id: str = "",
        product_type: str = "PRODUCT",
    ) -> None:
        self.client = client
        self.name = name
        self.seller_id = seller_id
        self.product_type = product_type
        self._marketplace: dict[str, str] = {}
        self._pushed: OrderedDict[str, dict[str, int]] = OrderedDict()

    @property
    def writes_inventory(self) -> bool:
        return bool(self.seller_id)

    async def _marketplace_of(self, order_id: str) -> str:
        ids = self.client.marketplace_ids
        if len(ids) == 1:
            return ids[0]
        if order_id not in self._marketplace:
            order = await self.client.order(order_id)
            if order is None:
                raise PermanentError(
                    f"Amazon does not know order {order_id}", reason="amazon_order_not_found", system=SYSTEM
                )
            marketplace = order.get("MarketplaceId")
            if not isinstance(marketplace, str) or not marketplace:
                raise TransientError(f"getOrder {order_id}: no MarketplaceId", system=SYSTEM)
            self._marketplace[order_id] = marketplace
        return self._marketplace[order_id]

    async def notify_fulfillment(
        self, external_order_id: str, shipment: Shipment, idempotency_key: str
    ) -> ChannelAck:
        """Confirm the shipment, one package per tracking number (see the module docstring)."""
        tracking = [t.strip() for t in shipment.tracking_numbers if t and t.strip()]
        if not tracking:
            raise PermanentError(
                f"shipment {shipment.shipment_id} of Amazon order {external_order_id} has no tracking"
                " number, which confirmShipment requires: confirm it in Seller Central, then skip",
                reason="amazon_tracking_required",
                system=SYSTEM,
            )
        items: dict[str, int] = {}
        for line in shipment.lines:
            item_id = line.line_id.strip()
            if not item_id.isdigit():
                raise PermanentError(
                    f"shipment {shipment.shipment_id}: line {line.line_id!r} is not an Amazon OrderItemId",
                    reason="amazon_invalid_input",
                    system=SYSTEM,
                )
            items[item_id] = items.get(item_id, 0) + line.quantity
        boxes = split_packages(items, len(tracking))
        if len(tracking) > len(boxes):
            log.warning(
                "amazon_tracking_numbers_left_out",
                order_id=external_order_id,
                shipment_id=shipment.shipment_id,
                left_out=tracking[len(boxes) :],
            )
        marketplace = await self._marketplace_of(external_order_id)
        code, carrier_name = carrier_code(shipment.carrier)
        shipped_at = shipment.shipped_at
        if shipped_at.tzinfo is None:  # a warehouse that reports naive times reports UTC
            shipped_at = shipped_at.replace(tzinfo=UTC)
        ship_date = amz_time(shipped_at)
        refs: list[str] = []
        for index, (number, box) in enumerate(zip(tracking, boxes, strict=False)):
            ref = package_reference_id(external_order_id, shipment.shipment_id, index)
            detail: Json = {
                "packageReferenceId": ref,
                "carrierCode": code,
                "trackingNumber": number,
                "shipDate": ship_date,
                "orderItems": [{"orderItemId": i, "quantity": q} for i, q in box.items()],
            }
            if carrier_name is not None:
                detail["carrierName"] = carrier_name
            if shipment.service:
                detail["shippingMethod"] = shipment.service
            await self.client.confirm_shipment(
                external_order_id, {"marketplaceId": marketplace, "packageDetail": detail}
            )
            refs.append(ref)
        return ChannelAck(channel=self.name, reference="package:" + ",".join(refs))

    async def push_inventory(self, levels: list[ChannelAvailability], idempotency_key: str) -> ChannelAck:
        """Set each SKU's MFN quantity (absolute), one ``patchListingsItem`` per SKU.

        A SKU Amazon does not list is not sold there: skipped. A SKU Amazon refuses does not stop
        the others; the refusals are raised together once every other SKU was sent."""
        if not self.seller_id:
            raise PermanentError(
                "Amazon stock needs the seller id (RETAIL_AMAZON_SELLER_ID)",
                reason="amazon_not_configured",
                system=SYSTEM,
            )
        marketplace = self.client.marketplace_ids[0]
        done = self._pushed.setdefault(idempotency_key, {})
        self._pushed.move_to_end(idempotency_key)
        while len(self._pushed) > _MEMO_SIZE:
            self._pushed.popitem(last=False)
        invalid: list[str] = []
        reasons: set[str] = set()
        for level in levels:
            if done.get(level.sku) == level.available:
                continue  # accepted under this key before a 429 stopped the last attempt
            body: Json = {
                "productType": self.product_type,
                "patches": [
                    {
                        "op": "merge",
                        "path": "/attributes/fulfillment_availability",
                        "value": [{"fulfillment_channel_code": MFN_CHANNEL, "quantity": level.available}],
                    }
                ],
            }
            try:
                answer = await self.client.patch_listing(self.seller_id, level.sku, marketplace, body)
            except PermanentError as err:
                if err.reason == "amazon_listing_not_found":
                    done[level.sku] = level.available  # no listing here: nothing to sell or to set
                    log.info("amazon_stock_not_listed", sku=level.sku)
                    continue
                invalid.append(f"{level.sku} ({err.reason}: {err.message})")
                reasons.add(err.reason)
                continue
            status = answer.get("status")
            if status == "INVALID":
                issues = answer.get("issues")
                listed = issues if isinstance(issues, list) else []
                first = next((i for i in listed if isinstance(i, dict)), {})
                invalid.append(f"{level.sku} ({first.get('code', '?')}: {first.get('message', '')})".strip())
                reasons.add("amazon_listing_invalid")
                continue
            if status != "ACCEPTED":
                raise TransientError(
                    f"patchListingsItem {level.sku}: unexpected status {status!r}", system=SYSTEM
                )
            done[level.sku] = level.available
        if invalid:
            raise PermanentError(
                f"Amazon refused the quantity of {len(invalid)} SKU(s): {'; '.join(invalid)[:400]}",
                # One kind of refusal keeps its own reason (e.g. amazon_listing_rejected for a 400).
                reason=reasons.pop() if len(reasons) == 1 else "amazon_listing_invalid",
                system=SYSTEM,
            )
        return ChannelAck(channel=self.name, reference=f"listings:{idempotency_key}")
