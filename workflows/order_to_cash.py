"""OrderToCash: an order from the storefront to the ERP, paid, picked, shipped and invoiced.

validate -> resolve customer -> tax quote -> authorize (platform-managed payment) -> ERP order
and allocation -> release per location -> per shipment: capture, commit tax, invoice, tell the
channel -> delivered -> completed.

A step that fails for good never fails the workflow: it records why, sets
OrderStatus=NeedsAttention and waits for an operator's retry, skip or cancel (Temporal updates,
validated before they touch history). Cancellation compensates in reverse, and after a partial
shipment cancels only what is unshipped.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import names
    from canonical import (
        FulfillmentLine,
        FulfillmentRequest,
        OrderState,
    )
    from canonical.documents import (
        AddressCheck,
        Allocation,
        Authorization,
        CustomerRef,
        FulfillmentAck,
        SalesOrderAck,
        TaxQuote,
    )
    from orchestration.models import OrderToCashInput
    from workflows.order_compensation import OrderCompensation
    from workflows.order_core import OrderCancelled
    from workflows.order_edits import OrderEdits
    from workflows.order_operator import OrderOperatorActions

# workflow.patched ids: each gates a new command on a path that running workflows may take
# (docs/workflow-versioning.md).
PATCH_ERP_BACKEND = "erp-backend-search-attribute-v1"
PATCH_ADDRESS_CHECK = "address-check-v1"
# Decided once at the start of run: signal handlers and wait conditions consult it too.
PATCH_ORDER_EDITS = "order-edits-v1"
PATCH_DIGITAL_DELIVERY = "digital-delivery-v1"


@workflow.defn
class OrderToCash(OrderCompensation, OrderEdits, OrderOperatorActions):
    """One order from acceptance to completion; its parts live in workflows/order_*.py."""

    @workflow.run
    async def run(self, inp: OrderToCashInput) -> OrderState:
        self._edits_on = workflow.patched(PATCH_ORDER_EDITS)
        self._publish()
        try:
            await self._process()
        except OrderCancelled:
            if not await self._compensate():
                # Everything shipped before the cancellation reached the warehouse.
                self._set_status("Shipped")
                self._metrics.shipped()
                await self._await_delivery()
                self._set_status("Completed")
                self._completed()
        return self.state()

    async def _process(self) -> None:
        o = self._order
        self._set_status("Processing")
        if (
            self._policy.address_check
            and any(ln.fulfillable for ln in o.lines)
            and workflow.patched(PATCH_ADDRESS_CHECK)
        ):
            await self._check_address()
        limit = self._policy.hold_above.get(o.currency)
        if limit is not None and o.totals.total.amount >= limit:
            # A rule holds high-value orders for a person (fraud, credit): nothing is charged or
            # sent to the ERP until an operator approves or cancels.
            action = await self._await_operator(
                "approval",
                "held_for_approval",
                f"total {o.totals.total} reaches the approval limit {limit} {o.currency}",
                cancellable=True,
            )
            if action.action == "cancel":
                raise OrderCancelled()
            self._record("approval", "done", f"approved by {action.operator}: {action.reason}")
            self._checkpoint()
            await self._take_edits()
            o = self._order
        ref = await self._step(
            "resolve_customer",
            lambda _: self._call(
                names.RESOLVE_CUSTOMER,
                [o.customer, o.billing_address or o.shipping_address],
                CustomerRef,
                f"Resolve customer {o.customer.display_name}",
            ),
        )
        self._customer_id = ref.customer_id if ref else None
        self._checkpoint()
        await self._take_edits()
        o = self._order

        if any(ln.taxable for ln in o.lines):
            code = f"{self._wf_id}:tax"
            quote = await self._step(
                "quote_tax",
                lambda _: self._call(
                    names.QUOTE_TAX, [self._order, code], TaxQuote, f"Quote tax for {self._label}"
                ),
            )
            self._tax_document = quote.document_code if quote else None
            self._checkpoint()
            await self._take_edits()
            o = self._order

        platform = o.platform_payment
        if not platform.is_zero:
            reference = next((p.reference for p in o.payments if p.managed_by == "platform"), None)
            self._authorization = await self._step(
                "authorize_payment",
                lambda n: self._call(
                    names.AUTHORIZE_PAYMENT,
                    [platform, reference, self._key("authorize", n)],
                    Authorization,
                    f"Authorize {platform}",
                ),
            )
            self._checkpoint()
            await self._take_edits()
            o = self._order
        if not o.channel_payment.is_zero:
            self._record("record_channel_payment", "done", f"{o.channel_payment} paid at {o.channel}")

        ack = await self._step(
            "create_sales_order",
            lambda n: self._call(
                names.CREATE_SALES_ORDER,
                # The order as edited so far (an edit may arrive while this step waits).
                [self._order, self._customer_id or "", self._key("sales_order", n)],
                SalesOrderAck,
                f"Create ERP sales order for {self._label}",
            ),
        )
        if ack is None:
            # Skipped by an operator who keyed the ERP order in by hand: ship everything from
            # the default location they are responsible for.
            self._erp_order_id = self._skip_reference("create_sales_order")
            ack = SalesOrderAck(
                erp_order_id=self._erp_order_id or "manual",
                allocations=[
                    Allocation(location="manual", line_id=ln.line_id, sku=ln.sku or "", quantity=ln.quantity)
                    for ln in o.lines
                    if ln.fulfillable
                ],
                created=False,
            )
        self._erp_order_id = ack.erp_order_id
        if ack.backend and workflow.patched(PATCH_ERP_BACKEND):
            # Published with the next status change (no extra command of its own).
            self._erp_backend = ack.backend
        self._metrics.erp_accepted()
        await self._apply_allocation(ack)
        self._checkpoint()
        await self._take_edits()
        o = self._order

        if any(ln.digital for ln in o.lines) and workflow.patched(PATCH_DIGITAL_DELIVERY):
            await self._deliver_digital()
            self._checkpoint()
            o = self._order

        while self._backordered:
            await self._handle_backorder()

        if not self._expected:
            if all(ln.digital for ln in o.lines) and self._shipped:
                # Digital only: billed and delivered at acceptance, nothing left to wait for.
                self._delivered_at = workflow.now()
                self._set_status("Completed")
                self._completed()
                return
            # Nothing for a warehouse but lines that need shipping (custom lines without a
            # SKU): no shipment will ever bill them, and completing unbilled would lose the
            # money. An operator bills it by hand and skips with the invoice reference, or cancels.
            await self._await_operator(
                "bill_without_shipment",
                "nothing_to_ship",
                "no lines a warehouse ships: bill it by hand, then skip with the invoice reference",
                cancellable=True,
            )
            self._record("bill_without_shipment", "skipped", self._skip_reference("bill_without_shipment"))
            self._set_status("Completed")
            return

        await self._ship_and_bill()
        if self._cancel is not None:
            self._record("cancel", "failed", "everything shipped before the cancellation could apply")
            self._cancel = None
        self._set_status("Shipped")
        self._metrics.shipped()
        await self._await_delivery()
        self._set_status("Completed")
        self._completed()

    async def _check_address(self) -> None:
        """A ship-to address that fails the check holds the order for a person, before anything
        is charged or sent to the ERP: fix it (edit-address), then approve; or cancel."""
        check = await self._step(
            "check_address",
            lambda _: self._call(
                names.CHECK_ADDRESS, [self._ship_to], AddressCheck, "Check the ship-to address"
            ),
        )
        if check is None or check.ok:
            return
        action = await self._await_operator(
            "address_check", "address_check_failed", "; ".join(check.reasons), cancellable=True
        )
        if action.action == "cancel":
            raise OrderCancelled()
        edited = any(a.action == "edit_address" for a in self._actions)
        self._record(
            "address_check",
            "done",
            f"approved by {action.operator}: {action.reason}"
            + (" (address edited)" if edited else " (address unchanged)"),
        )
        self._checkpoint()

    async def _apply_allocation(self, ack: SalesOrderAck) -> None:
        """Release to each location what the ERP allocated beyond what was released before.

        The ERP returns all of the order's allocations each time (a replay loses nothing), so
        what is new is the cumulative quantity per (line, location) above what we hold."""
        held: dict[tuple[str, str], int] = {}
        for a in self._allocations:
            held[(a.line_id, a.location)] = held.get((a.line_id, a.location), 0) + a.quantity
        total: dict[tuple[str, str], Allocation] = {}
        for a in ack.allocations:
            k = (a.line_id, a.location)
            prev = total.get(k)
            qty = a.quantity + (prev.quantity if prev else 0)
            total[k] = Allocation(location=a.location, line_id=a.line_id, sku=a.sku, quantity=qty)
        new: dict[str, list[Allocation]] = {}
        for k, a in sorted(total.items()):
            extra = a.quantity - held.get(k, 0)
            if extra > 0:
                fresh = Allocation(location=a.location, line_id=a.line_id, sku=a.sku, quantity=extra)
                self._allocations.append(fresh)
                new.setdefault(a.location, []).append(fresh)
                self._expected[a.line_id] = self._expected.get(a.line_id, 0) + extra
        self._backordered = {b.line_id: b.quantity for b in ack.backordered}
        self._backordered_skus = {b.line_id: b.sku for b in ack.backordered}
        self._release_round += 1
        o = self._order
        for location in sorted(new):
            allocs = new[location]
            release_key = f"release:{location}:{self._release_round}"

            def request(
                n: int,
                allocs: list[Allocation] = allocs,
                location: str = location,
                release_key: str = release_key,
            ) -> FulfillmentRequest:
                return FulfillmentRequest(
                    order_key=o.key,
                    order_name=o.name,
                    location=location,
                    lines=[
                        FulfillmentLine(line_id=a.line_id, sku=a.sku, quantity=a.quantity) for a in allocs
                    ],
                    ship_to=self._ship_to,
                    shipping_method=o.shipping_lines[0].code if o.shipping_lines else None,
                    idempotency_key=self._key(release_key, n),
                )

            units = sum(a.quantity for a in allocs)
            if self._policy.channel_fulfils:
                # The channel ships its own orders: its fulfillment is the shipment.
                self._record(
                    f"release_fulfillment:{location}",
                    "skipped",
                    f"{o.channel} fulfils it: {units} units allocated here await its fulfillment",
                )
                continue
            fa = await self._step(
                f"release_fulfillment:{location}",
                lambda n, request=request, units=units, location=location: self._call(  # type: ignore[misc]
                    names.RELEASE_FULFILLMENT,
                    [request(n)],
                    FulfillmentAck,
                    f"Release {units} units to {location}",
                ),
            )
            if fa is not None:
                self._fulfillments[fa.fulfillment_id] = location
        self._set_status("AwaitingShipment")

    async def _handle_backorder(self) -> None:
        skus = self._backordered_skus
        what = ", ".join(f"{qty} x {skus.get(line, line)}" for line, qty in sorted(self._backordered.items()))
        action = await self._await_operator(
            "allocate",
            "backordered",
            f"no location has stock for {what}",
            cancellable=True,
            resolved_by=lambda: not self._backordered,  # an edit removed what was backordered
        )
        if not self._backordered:
            return
        if action.action == "retry":
            assert self._erp_order_id
            ack = await self._step(
                "allocate_backorders",
                lambda _: self._call(
                    names.ALLOCATE_BACKORDERS, [self._erp_order_id], SalesOrderAck, "Allocate backorders"
                ),
            )
            if ack is not None:
                await self._apply_allocation(ack)
        elif action.action == "skip":
            # Ship what is allocated; the backordered remainder is handled outside the platform.
            self._record("allocate", "skipped", f"backorder left to {action.reference or action.operator}")
            self._backordered = {}

    async def _ship_and_bill(self) -> None:
        sla = timedelta(seconds=self._policy.shipping_sla_s)
        while True:
            await self._bill_pending()
            await self._bill_channel_fulfillments()
            await self._flag_channel_problems()
            await self._take_edits()
            if self._all_shipped():
                return
            self._checkpoint()
            self._waiting_for = (
                f"fulfillment at {self._order.channel}"
                if self._policy.channel_fulfils
                else "shipment from the warehouse"
            )
            self._publish()
            try:
                await workflow.wait_condition(
                    lambda: (
                        bool(self._pending_shipments)
                        or bool(self._channel_pending)
                        or self._channel_problem()
                        or self._cancel_pending()
                        or self._edit_due()
                    ),
                    timeout=sla,
                )
            except TimeoutError:  # the SLA passed
                await self._await_operator(
                    "await_shipment",
                    "shipping_sla_breached",
                    f"not shipped within {self._policy.shipping_sla_s:g}s of release",
                    cancellable=True,
                    resolved_by=lambda: bool(self._pending_shipments) or bool(self._channel_pending),
                )
            finally:
                self._waiting_for = None

    async def _await_delivery(self) -> None:
        await self._flag_channel_problems()
        if not self._tracking:
            return
        self._waiting_for = "delivery by the carrier"
        self._publish()
        while True:
            await workflow.wait_condition(
                lambda: (
                    all(s == "delivered" for s in self._tracking.values())
                    or self._edit_due()
                    or self._channel_problem()
                )
            )
            if self._channel_problem():
                await self._flag_channel_problems()
                continue
            if not self._edit_due():
                break
            await self._take_edits()  # after shipment: a conflict for a person
        self._waiting_for = None
        self._delivered_at = workflow.now()
        self._set_status("Delivered")
