"""OrderToCash's billing: each shipment (and the digital delivery at acceptance) captured,
its tax committed, invoiced in the ERP and told to the channel; shipments and tracking as the
warehouse and carrier report them."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import names
    from canonical import (
        InvoiceAmounts,
        Money,
        Shipment,
        ShipmentLine,
        TrackingEvent,
        invoice_for_digital,
        invoice_for_shipment,
    )
    from canonical.documents import (
        Capture,
        ChannelAck,
        InvoiceAck,
        TaxCommit,
    )
    from workflows.order_core import OrderCore

# The digital delivery: one per order, billed at acceptance (nothing ships it).
DIGITAL_SHIPMENT = "digital-delivery"
DIGITAL_LOCATION = "digital"


class OrderBilling(OrderCore):
    async def _deliver_digital(self) -> None:
        """Bill the digital lines (gift cards, e-goods, services) at acceptance and tell the
        channel they are fulfilled: nothing of theirs goes through a warehouse or a carrier."""
        o = self._order
        shipment = Shipment(
            shipment_id=DIGITAL_SHIPMENT,
            order_key=o.key,
            location=DIGITAL_LOCATION,
            lines=[
                ShipmentLine(line_id=ln.line_id, sku=ln.sku or "", quantity=ln.quantity)
                for ln in o.lines
                if ln.digital
            ],
            shipped_at=workflow.now(),
            digital=True,
        )
        self._seen_shipments.add(shipment.shipment_id)
        # A channel that fulfils its own orders reports its digital lines itself.
        await self._bill_shipment(shipment, keep_status=True, tell_channel=not self._policy.channel_fulfils)

    async def _bill_shipment(
        self, shipment: Shipment, *, keep_status: bool = False, tell_channel: bool = True
    ) -> None:
        o = self._order
        now: dict[str, int] = {}
        for ln in shipment.lines:
            now[ln.line_id] = now.get(ln.line_id, 0) + ln.quantity
        try:
            if shipment.digital:
                amounts = invoice_for_digital(o, list(now))
            else:
                # Shipping bills with the first shipment from a warehouse, not the digital one.
                first = not any(not sh.digital for sh in self._shipments)
                amounts = invoice_for_shipment(o, self._shipped, now, first=first)
        except (ValueError, KeyError) as exc:
            self._record(f"shipment:{shipment.shipment_id}", "failed", f"rejected shipment: {exc}")
            # A corrected report under the same id must not be dropped as a duplicate.
            self._seen_shipments.discard(shipment.shipment_id)
            return
        for line, qty in now.items():
            self._shipped[line] = self._shipped.get(line, 0) + qty
        self._shipments.append(shipment)
        for number in shipment.tracking_numbers:
            self._tracking.setdefault(number, "shipped")
        if not keep_status:
            self._set_status("Shipped" if self._all_shipped() else "PartiallyShipped")
        sid = shipment.shipment_id

        await self._capture_for(amounts, sid)
        if self._tax_document:
            doc = self._tax_document
            await self._step(
                f"commit_tax:{sid}",
                lambda _: self._call(
                    names.COMMIT_TAX,
                    [doc, f"{self._wf_id}:invoice:{sid}", amounts],
                    TaxCommit,
                    f"Commit tax {amounts.tax}",
                ),
                cancellable=False,
            )
        inv = await self._step(
            f"invoice:{sid}",
            lambda n: self._call(
                names.INVOICE_SHIPMENT,
                [self._erp_order_id or "", shipment, amounts, self._key(f"invoice:{sid}", n)],
                InvoiceAck,
                f"Invoice {amounts.total} for shipment {sid}",
            ),
            cancellable=False,
        )
        if inv is not None:
            self._invoices.append(inv.invoice_id)
        else:
            self._invoices.append(self._skip_reference(f"invoice:{sid}") or "manual")
        self._invoiced = self._invoiced + amounts.total
        if not tell_channel:
            return
        await self._step(
            f"notify_channel:{sid}",
            lambda n: self._call(
                names.CHANNEL_FULFILLMENT,
                [o.channel, o.external_id, shipment, self._key(f"channel_fulfillment:{sid}", n)],
                ChannelAck,
                f"Tell {o.channel}: shipped {', '.join(shipment.tracking_numbers) or 'without tracking'}",
            ),
            cancellable=False,
        )

    async def _capture_for(self, amounts: InvoiceAmounts, sid: str) -> None:
        """Capture the platform's share of what has been billed so far (channel money first)."""
        auth = self._authorization
        if auth is None:
            return
        billed = self._invoiced + amounts.total
        channel_paid = self._order.channel_payment
        platform_due = billed - channel_paid if billed > channel_paid else Money.zero(billed.currency)
        due = platform_due - self._captured
        if due.amount <= 0:
            return
        cap = await self._step(
            f"capture:{sid}",
            lambda n: self._call(
                names.CAPTURE_PAYMENT,
                [auth.authorization_id, due, self._key(f"capture:{sid}", n)],
                Capture,
                f"Capture {due} for shipment {sid}",
            ),
            # Goods that left are billed before any cancellation applies.
            cancellable=False,
        )
        if cap is not None:
            self._captures.append(cap)
        # A skipped capture was taken outside the platform: it still counts as collected.
        self._captured = self._captured + due

    async def _bill_pending(self, *, keep_status: bool = False) -> None:
        while self._pending_shipments:
            await self._bill_shipment(self._pending_shipments.pop(0), keep_status=keep_status)

    async def _bill_uncancellable(self, fulfillments: list[tuple[str, str]]) -> None:
        """The warehouse shipped before it heard of the cancellation: wait for those shipments
        and bill them, so that goods never leave unbilled."""
        sla = timedelta(seconds=self._policy.shipping_sla_s)
        while not all(self._fulfillment_shipped(f, loc) for f, loc in fulfillments):
            await self._bill_pending(keep_status=True)
            if all(self._fulfillment_shipped(f, loc) for f, loc in fulfillments):
                break
            self._waiting_for = "shipments the warehouse could not cancel"
            self._publish()
            try:
                await workflow.wait_condition(lambda: bool(self._pending_shipments), timeout=sla)
            except TimeoutError:
                action = await self._await_operator(
                    "await_cancelled_shipment",
                    "cancel_conflict",
                    "the warehouse could not cancel "
                    + ", ".join(f for f, _ in fulfillments)
                    + " and has not reported shipping it",
                    cancellable=False,
                    resolved_by=lambda: bool(self._pending_shipments),
                )
                if action.action == "skip":
                    break
            finally:
                self._waiting_for = None

    def _fulfillment_shipped(self, fid: str, location: str) -> bool:
        """Whether the warehouse order shipped everything released to it."""
        shipped: dict[str, int] = {}
        for s in self._shipments:
            if s.fulfillment_id == fid or (s.fulfillment_id is None and s.location == location):
                for ln in s.lines:
                    shipped[ln.line_id] = shipped.get(ln.line_id, 0) + ln.quantity
        released = [a for a in self._allocations if a.location == location]
        return bool(shipped) and all(shipped.get(a.line_id, 0) >= a.quantity for a in released)

    @workflow.signal
    def shipment_reported(self, shipment: Shipment) -> None:
        if shipment.shipment_id in self._seen_shipments:
            return  # a redelivered webhook
        self._seen_shipments.add(shipment.shipment_id)
        self._pending_shipments.append(shipment)

    @workflow.signal
    def tracking_updated(self, event: TrackingEvent) -> None:
        if event.event_id in self._seen_tracking:
            return
        self._seen_tracking.add(event.event_id)
        if self._tracking.get(event.tracking_number) != "delivered":
            self._tracking[event.tracking_number] = event.status
