"""OrderToCash and the fulfillments the channel reports: billed as the shipment when the
channel ships its own orders, otherwise the echo of ours or one made beside the warehouse for a
person to look at."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from canonical import (
        ChannelFulfillment,
    )
    from workflows.channel_shipments import CHANNEL_TRACKING, split_fulfillment
    from workflows.order_billing import OrderBilling
    from workflows.order_core import ENDED_STATUSES


class ChannelFulfillments(OrderBilling):
    async def _bill_channel_fulfillments(self, *, keep_status: bool = False) -> None:
        """Bill the fulfillments the channel reported, each as one shipment per allocated
        location; the channel is not told what it reported itself."""
        while self._channel_pending:
            f = self._channel_pending.pop(0)
            fid = f.fulfillment_id
            latest = self._channel_latest.get(fid, f)
            if latest.status != "success":
                self._record(
                    f"channel_fulfillment:{fid}",
                    "skipped",
                    f"{latest.status} at the channel before it was billed",
                )
                self._channel_latest.pop(fid, None)  # a later successful report is billed
                continue
            split = split_fulfillment(
                self._order.channel, f, self._allocations, self._shipments, self._expected
            )
            if split.not_shipped_here:
                # Before the ERP allocated (a cancellation under way) nothing is expected yet:
                # goods that left unbilled are for a person.
                self._record(
                    f"channel_fulfillment:{fid}",
                    "done" if self._expected else "failed",
                    "lines the platform does not ship, left out: " + ", ".join(split.not_shipped_here)
                    if self._expected
                    else "reported before the ERP allocated the order: not billed, settle it by hand",
                )
            billed = False
            for shipment in split.shipments:
                if shipment.shipment_id in self._seen_shipments:
                    continue
                self._seen_shipments.add(shipment.shipment_id)
                before = len(self._shipments)
                await self._bill_shipment(shipment, keep_status=keep_status, tell_channel=False)
                billed = billed or len(self._shipments) > before
            if billed:
                self._channel_billed[fid] = list(f.tracking_numbers)
                # An update (delivered, new tracking, cancelled) may have come during billing.
                self._channel_update_billed(self._channel_latest.get(fid, f))
            else:
                self._channel_latest.pop(fid, None)  # refused: a corrected report can be billed

    def _channel_update_billed(self, f: ChannelFulfillment) -> None:
        """A later report of a fulfillment already billed: its tracking numbers (Shopify's
        update_tracking replaces them) and delivery status; a cancellation is for a person."""
        fid = f.fulfillment_id
        old = self._channel_billed.get(fid, [])
        new: list[str] = list(f.tracking_numbers)
        if f.status in ("cancelled", "error", "failure"):
            new = []  # nothing to wait for: that parcel is not coming
            if f"cancelled:{fid}" not in self._channel_noted:
                self._channel_noted.add(f"cancelled:{fid}")
                self._channel_cancelled.append(f)
        in_use = {n for other, numbers in self._channel_billed.items() if other != fid for n in numbers}
        for number in old:
            if number not in new and number not in in_use:
                self._tracking.pop(number, None)
        for number in new:
            self._tracking.setdefault(number, "shipped")
        self._channel_billed[fid] = new
        self._channel_tracking(f)

    def _channel_problem(self) -> bool:
        return bool(self._channel_foreign) or bool(self._channel_cancelled)

    async def _flag_channel_problems(self) -> None:
        """What the channel reported that a person must settle before the order goes on (retry
        or skip once settled): a fulfillment made there for an order a warehouse ships (the
        goods may leave twice), or one cancelled there after it was billed."""
        while self._channel_cancelled:
            f = self._channel_cancelled.pop(0)
            await self._await_operator(
                f"channel_fulfillment:{f.fulfillment_id}",
                "fulfillment_cancelled_at_channel",
                f"{self._order.channel} reports fulfillment {f.name or f.fulfillment_id} {f.status} after it"
                " was billed: the invoice and capture stand; credit or re-ship by hand, then skip",
                cancellable=False,
            )
        while self._channel_foreign:
            f = self._channel_foreign.pop(0)
            units = sum(ln.quantity for ln in f.lines)
            await self._await_operator(
                f"channel_fulfillment:{f.fulfillment_id}",
                "fulfilled_at_channel",
                f"{self._order.channel} reports fulfillment {f.name or f.fulfillment_id} ({units} units) that"
                " the warehouse did not ship: make sure the goods do not leave twice, then retry or skip",
                cancellable=False,
            )

    def _channel_tracking(self, f: ChannelFulfillment) -> None:
        """The channel's delivery status for a fulfillment's tracking numbers (never back from
        delivered)."""
        status = CHANNEL_TRACKING.get(f.shipment_status or "")
        if status is None:
            return
        for number in f.tracking_numbers:
            if number in self._tracking and self._tracking[number] != "delivered":
                self._tracking[number] = status

    @workflow.signal
    def channel_fulfilled(self, f: ChannelFulfillment) -> None:
        """A fulfillment the channel reports (created or updated).

        When the channel ships its own orders, a successful one is billed as the shipment
        (once per fulfillment id; later reports move its tracking on, or flag a cancellation).
        Otherwise it is the echo of the platform's own report (its tracking number is one the
        platform sent), or one made at the channel beside the warehouse: a person looks at it,
        since the goods may leave twice. A report older than one already taken is ignored."""
        fid = f.fulfillment_id
        newest = self._channel_latest.get(fid)
        if newest is not None and f.occurred_at < newest.occurred_at:
            return  # delivered late: the newer report stands
        if fid in self._channel_billed:
            self._channel_latest[fid] = f
            self._channel_update_billed(f)
            return
        if self._policy.channel_fulfils:
            if fid not in self._channel_latest:
                if f.status != "success":
                    return  # billed when it succeeds (fulfillments/update)
                self._channel_pending.append(f)
            self._channel_latest[fid] = f
            return
        ours = self._tracking.keys() | self._seen_shipments
        if any(number in ours for number in f.tracking_numbers):
            self._channel_tracking(f)  # the echo of what the warehouse shipped
            return
        if f.status in ("success", "open", "pending") and fid not in self._channel_noted:
            self._channel_noted.add(fid)
            if self._status in ENDED_STATUSES:
                self._record(
                    f"channel_fulfillment:{fid}",
                    "failed",
                    f"{self._order.channel} reports fulfillment {f.name or fid} that the warehouse did not"
                    f" ship, after the order was {self._status}: check the goods did not leave twice",
                )
            else:
                self._channel_foreign.append(f)
