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

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import names
    from canonical import (
        Acceptance,
        Address,
        Attention,
        ChannelFulfillment,
        FulfillmentLine,
        FulfillmentRequest,
        InvoiceAmounts,
        Money,
        OperatorAction,
        Order,
        OrderState,
        OrderStatus,
        Shipment,
        ShipmentLine,
        StepRecord,
        TrackingEvent,
        invoice_for_digital,
        invoice_for_shipment,
    )
    from canonical.documents import (
        AddressCheck,
        Allocation,
        Authorization,
        CancelAck,
        Capture,
        ChannelAck,
        CustomerRef,
        FulfillmentAck,
        FulfillmentCancel,
        InvoiceAck,
        PaymentVoid,
        SalesOrderAck,
        TaxCommit,
        TaxQuote,
        TaxVoid,
    )
    from canonical.edits import EditDiff, OrderEdit, diff_edit, reduce_order
    from canonical.returns import ReturnContext
    from orchestration import search_attributes as sa
    from orchestration.metrics import OrderMetrics, Resolution
    from orchestration.models import AddressEdit, CancelRequest, OperatorRequest, OrderToCashInput
    from workflows import steps
    from workflows.channel_shipments import CHANNEL_TRACKING, split_fulfillment
    from workflows.operated import Operated

T = TypeVar("T")

# workflow.patched ids: each gates a new command on a path that running workflows may take
# (docs/workflow-versioning.md).
PATCH_ERP_BACKEND = "erp-backend-search-attribute-v1"
PATCH_ADDRESS_CHECK = "address-check-v1"
# Decided once at the start of run: signal handlers and wait conditions consult it too.
PATCH_ORDER_EDITS = "order-edits-v1"
PATCH_DIGITAL_DELIVERY = "digital-delivery-v1"

# The digital delivery: one per order, billed at acceptance (nothing ships it).
DIGITAL_SHIPMENT = "digital-delivery"
DIGITAL_LOCATION = "digital"

# Steps where a rule holds the order for a person: only approve or cancel apply.
_HELD_STEPS = {"approval": "held for approval", "address_check": "held after a failed address check"}

# Statuses after which there is nothing left to cancel.
_ENDED: set[str] = {"Completed", "Cancelled"}
_FINAL: set[str] = {"Shipped", "Delivered", "Completed", "Cancelling", "Cancelled"}


class _Cancelled(Exception):
    """Raised inside the workflow to unwind to compensation."""


@workflow.defn
class OrderToCash(Operated):
    @workflow.init
    def __init__(self, inp: OrderToCashInput) -> None:
        o = inp.order
        cur = o.currency
        self._order: Order = o
        self._policy = inp.policy
        self._correlation_id = inp.correlation_id
        self._status: OrderStatus = "Received"
        self._customer_id: str | None = None
        self._erp_order_id: str | None = None
        self._erp_backend: str | None = None
        self._tax_document: str | None = None
        self._authorization: Authorization | None = None
        self._allocations: list[Allocation] = []
        self._backordered: dict[str, int] = {}
        self._backordered_skus: dict[str, str] = {}
        self._release_round = 0
        self._fulfillments: dict[str, str] = {}
        self._expected: dict[str, int] = {}
        self._shipped: dict[str, int] = {}
        self._shipments: list[Shipment] = []
        self._seen_shipments: set[str] = set()
        self._pending_shipments: list[Shipment] = []
        self._tracking: dict[str, str] = {}
        self._seen_tracking: set[str] = set()
        self._captures: list[Capture] = []
        self._invoices: list[str] = []
        self._captured = Money.zero(cur)
        self._invoiced = Money.zero(cur)
        self._refunded = Money.zero(cur)
        self._voided = Money.zero(cur)
        self._attention: Attention | None = None
        self._pending_action: OperatorAction | None = None
        self._actions: list[OperatorAction] = []
        self._steps: list[StepRecord] = []
        self._operator_retries: dict[str, int] = {}
        self._cancel: CancelRequest | None = None
        self._waiting_for: str | None = None
        self._attention_cancellable = True
        self._compensating = False
        self._ship_to: Address | None = o.shipping_address
        self._delivered_at: datetime | None = None
        # Channel edits (orders/updated): None until run decides whether this code path is on.
        self._edits_on: bool | None = None
        self._pending_edit: OrderEdit | None = None
        self._edit_seen_at: datetime | None = None
        self._edits = 0
        # Fulfillments the channel reports: to bill when it ships its own orders
        # (policy.channel_fulfils), else only noted.
        self._channel_pending: list[ChannelFulfillment] = []
        self._channel_latest: dict[str, ChannelFulfillment] = {}  # newest report per fulfillment
        self._channel_billed: dict[str, list[str]] = {}  # fulfillment id -> its tracking numbers
        self._channel_noted: set[str] = set()
        self._channel_foreign: list[ChannelFulfillment] = []  # made at the channel beside the warehouse
        self._channel_cancelled: list[ChannelFulfillment] = []  # cancelled there after we billed them
        # Business metrics: replay-safe, and no history events (docs/observability.md).
        self._metrics = OrderMetrics(o.channel)

    # ---------------------------------------------------------------------------------
    # run
    # ---------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: OrderToCashInput) -> OrderState:
        self._edits_on = workflow.patched(PATCH_ORDER_EDITS)
        self._publish()
        try:
            await self._process()
        except _Cancelled:
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
                raise _Cancelled()
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
            raise _Cancelled()
        edited = any(a.action == "edit_address" for a in self._actions)
        self._record(
            "address_check",
            "done",
            f"approved by {action.operator}: {action.reason}"
            + (" (address edited)" if edited else " (address unchanged)"),
        )
        self._checkpoint()

    # ---------------------------------------------------------------------------------
    # allocation and release
    # ---------------------------------------------------------------------------------
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

    # ---------------------------------------------------------------------------------
    # shipping and billing
    # ---------------------------------------------------------------------------------
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

    def _all_shipped(self) -> bool:
        return all(self._shipped.get(line, 0) >= qty for line, qty in self._expected.items())

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

    # ---------------------------------------------------------------------------------
    # cancellation and compensation
    # ---------------------------------------------------------------------------------
    def _cancel_pending(self) -> bool:
        return self._cancel is not None

    def _checkpoint(self) -> None:
        if self._cancel is not None:
            raise _Cancelled()

    async def _compensate(self) -> bool:
        """Undo in reverse what can be undone; False when nothing was left to cancel."""
        o = self._order
        req = self._cancel
        reason = req.reason if req else "cancelled"
        self._compensating = True
        self._set_status("Cancelling")
        # Shipments that reached us before the cancellation are billed, never dropped.
        await self._bill_pending(keep_status=True)
        await self._bill_channel_fulfillments(keep_status=True)
        if self._policy.channel_fulfils and self._expected and self._all_shipped() and not self._backordered:
            self._record("cancel", "failed", f"{o.channel} fulfilled everything before the cancellation")
            self._cancel = None
            self._compensating = False
            return False
        too_late: list[tuple[str, str]] = []
        for fid, location in sorted(self._fulfillments.items()):
            if self._fulfillment_shipped(fid, location):
                continue
            res = await self._step(
                f"cancel_fulfillment:{fid}",
                lambda _n, fid=fid: self._call(  # type: ignore[misc]
                    names.CANCEL_FULFILLMENT,
                    [fid, reason],
                    FulfillmentCancel,
                    f"Cancel warehouse order {fid}",
                ),
                cancellable=False,
            )
            if res is not None and not res.cancelled:
                self._record(f"cancel_fulfillment:{fid}", "failed", f"too late, warehouse says {res.status}")
                too_late.append((fid, location))
        if too_late:
            await self._bill_uncancellable(too_late)
            if self._expected and self._all_shipped() and not self._backordered:
                self._record(
                    "cancel", "failed", "everything shipped before the warehouse heard of the cancellation"
                )
                self._cancel = None
                self._compensating = False
                return False
        if self._erp_order_id:
            erp_id = self._erp_order_id
            await self._step(
                "cancel_sales_order",
                lambda n: self._call(
                    names.CANCEL_SALES_ORDER,
                    [erp_id, reason, self._key("cancel_sales_order", n)],
                    CancelAck,
                    f"Cancel ERP order {erp_id}",
                ),
                cancellable=False,
            )
        if self._tax_document and not self._shipments:
            doc = self._tax_document
            await self._step(
                "void_tax",
                lambda _: self._call(names.VOID_TAX, [doc], TaxVoid, f"Void tax document {doc}"),
                cancellable=False,
            )
        auth = self._authorization
        if auth is not None and self._captured < auth.amount:
            void = await self._step(
                "void_payment",
                lambda n: self._call(
                    names.VOID_PAYMENT,
                    [auth.authorization_id, self._key("void", n)],
                    PaymentVoid,
                    f"Void authorization {auth.authorization_id}",
                ),
                cancellable=False,
            )
            if void is not None:
                self._voided = self._voided + void.voided
        channel_paid = o.channel_payment
        kept = self._invoiced if self._invoiced < channel_paid else channel_paid
        refund = channel_paid - kept
        if refund.amount > 0:
            await self._step(
                "refund_channel_payment",
                lambda n: self._call(
                    names.CHANNEL_REFUND,
                    [o.channel, o.external_id, refund, reason, self._key("channel_refund", n)],
                    ChannelAck,
                    f"Refund {refund} at {o.channel}",
                ),
                cancellable=False,
            )
            self._refunded = self._refunded + refund
        if req is None or req.source != "channel":
            await self._step(
                "notify_channel_cancelled",
                lambda n: self._call(
                    names.CHANNEL_CANCELLED,
                    [o.channel, o.external_id, reason, self._key("channel_cancel", n)],
                    ChannelAck,
                    f"Tell {o.channel} the order is cancelled",
                ),
                cancellable=False,
            )
        self._set_status("Cancelled")
        self._metrics.cancelled()
        workflow.logger.info("order cancelled", extra=self._log_extra(reason=reason))
        return True

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

    # ---------------------------------------------------------------------------------
    # order edits from the channel
    # ---------------------------------------------------------------------------------
    def _edit_due(self) -> bool:
        return bool(self._edits_on) and self._pending_edit is not None

    async def _take_edits(self) -> None:
        """Apply the newest pending channel edit (and any that arrive meanwhile)."""
        while self._edit_due():
            edit = self._pending_edit
            assert edit is not None
            self._pending_edit = None
            self._edit_seen_at = edit.updated_at
            await self._take_edit(edit)

    def _edit_conflict(self, diff: EditDiff) -> str | None:
        """Why a person must decide on the edit, or None when the workflow can apply it."""
        what = diff.describe()
        if self._shipments:
            return (
                f"the channel changed the order after shipment ({what}): settle it with the customer "
                "and skip with a reference"
            )
        # A channel that ships its own orders has had nothing released: the ERP order still follows.
        if self._fulfillments or (self._allocations and not self._policy.channel_fulfils):
            where = ", ".join(
                sorted({a.location for a in self._allocations} | set(self._fulfillments.values()))
            )
            return (
                f"the channel changed the order after release to {where} ({what}): change it at the "
                "warehouse and skip with a reference, or cancel"
            )
        if diff.unsupported:
            return (
                f"the channel's edit cannot be applied automatically ({what}): apply it by hand and skip "
                "with a reference, or cancel"
            )
        return None

    async def _take_edit(self, edit: OrderEdit) -> None:
        when = edit.updated_at.isoformat()
        while True:
            diff = diff_edit(self._order, self._ship_to, edit)
            if diff.empty:
                self._record("order_edit", "done", f"update of {when}: nothing to apply")
                return
            if self._compensating or self._status in ("Cancelling", "Cancelled"):
                self._record(
                    "order_edit", "skipped", f"update of {when} ignored: the order is being cancelled"
                )
                return
            conflict = self._edit_conflict(diff)
            if conflict is None:
                await self._apply_edit(edit, diff)
                return
            action = await self._await_operator(
                "order_edit",
                "edit_conflict",
                conflict,
                cancellable=True,
                resolved_by=lambda: self._pending_edit is not None,  # a newer edit supersedes it
                edits=False,
            )
            if action.action == "cancel":
                raise _Cancelled()
            if action.action == "skip":
                self._record("order_edit", "skipped", f"update of {when} handled by hand: {action.reference}")
                return
            if action.operator == "system":
                return  # the newer edit is taken next by the caller's loop
            # retry: look at the edit again against the order as it is now

    async def _apply_edit(self, edit: OrderEdit, diff: EditDiff) -> None:
        """Before release: the ERP order, the tax document and the authorization follow the edit."""
        self._edits += 1
        n = self._edits
        what = diff.describe()
        ship_to = diff.address or self._ship_to
        quantities = {line: new for line, (_, new) in diff.quantities.items()}
        new = reduce_order(self._order, quantities, ship_to)
        erp_id = self._erp_order_id
        if erp_id and quantities:
            ack = await self._step(
                f"edit_sales_order:{n}",
                lambda r: self._call(
                    names.UPDATE_SALES_ORDER,
                    [erp_id, new, self._key(f"edit:{n}:sales_order", r)],
                    SalesOrderAck,
                    f"Edit ERP order {erp_id}: {what}",
                ),
            )
            if ack is not None:
                self._backordered = {b.line_id: b.quantity for b in ack.backordered}
                self._backordered_skus = {b.line_id: b.sku for b in ack.backordered}
                if self._policy.channel_fulfils and self._allocations:
                    # Nothing went to a warehouse: what the channel is to fulfil is what the
                    # ERP still promises (it answers with all of the order's allocations).
                    self._allocations = list(ack.allocations)
                    self._expected = {}
                    for a in ack.allocations:
                        self._expected[a.line_id] = self._expected.get(a.line_id, 0) + a.quantity
        doc = self._tax_document
        if doc:
            await self._step(
                f"requote_tax:{n}",
                lambda _: self._call(
                    names.REQUOTE_TAX, [new, doc], TaxQuote, f"Re-quote tax for {self._label}"
                ),
            )
        auth = self._authorization
        amount = new.platform_payment
        if auth is not None and amount != auth.amount:
            adjusted = await self._step(
                f"adjust_authorization:{n}",
                lambda r: self._call(
                    names.ADJUST_AUTHORIZATION,
                    [auth.authorization_id, amount, self._key(f"edit:{n}:authorization", r)],
                    Authorization,
                    f"Hold {amount} instead of {auth.amount}",
                ),
            )
            if adjusted is not None:
                self._authorization = adjusted
        self._order = new
        self._ship_to = ship_to
        self._record("order_edit", "done", f"update of {edit.updated_at.isoformat()} applied: {what}")
        self._publish()

    @workflow.signal
    def order_updated(self, edit: OrderEdit) -> None:
        """The channel's order changed (orders/updated). Kept if it is newer than every edit seen;
        the workflow applies it at its next safe point (before release) or asks a person."""
        if self._edits_on is False:
            self._record("order_edit", "failed", "not applied: the order started before edits were supported")
            return
        newest = self._pending_edit.updated_at if self._pending_edit else self._edit_seen_at
        if newest is not None and edit.updated_at <= newest:
            self._record(
                "order_edit",
                "skipped",
                f"update of {edit.updated_at.isoformat()} ignored: not newer than {newest.isoformat()}",
            )
            return
        self._pending_edit = edit

    # ---------------------------------------------------------------------------------
    # steps, attention and operators
    # ---------------------------------------------------------------------------------
    async def _call(self, activity: str, args: Sequence[Any], result_type: type[T], summary: str) -> T:
        return await steps.call(self._policy, activity, args, result_type, summary)

    async def _step(
        self, step: str, call: Callable[[int], Awaitable[T]], *, cancellable: bool = True
    ) -> T | None:
        """Run one step; on a lasting failure wait for an operator. None means skipped."""
        while True:
            try:
                result = await call(self._operator_retries.get(step, 0))
            except ActivityError as err:
                reason, message = steps.describe(err)
                action = await self._await_operator(step, reason, message, cancellable=cancellable)
                if action.action == "retry":
                    if steps.refused_for_good(err):
                        # Refused for good, so nothing happened under the old key: a new key lets
                        # the vendor act on the corrected request. After timeouts or exhausted
                        # transient retries the vendor may have acted: keep the key, so a retry
                        # returns that result instead of acting twice.
                        self._operator_retries[step] = self._operator_retries.get(step, 0) + 1
                    continue
                if action.action == "skip":
                    self._record(step, "skipped", action.reference)
                    return None
                raise _Cancelled() from None
            self._record(step, "done")
            return result

    async def _await_operator(
        self,
        step: str,
        reason: str,
        message: str,
        *,
        cancellable: bool,
        resolved_by: Callable[[], bool] | None = None,
        edits: bool = True,
    ) -> OperatorAction:
        # While compensating, a cancellation is already under way: only retry or skip apply.
        cancellable = cancellable and not self._compensating
        previous = self._status
        attention = Attention(reason=reason, step=step, message=message, since=workflow.now())
        self._attention = attention
        self._attention_cancellable = cancellable
        self._pending_action = None
        self._set_status("NeedsAttention")
        self._metrics.attention_entered(reason)
        workflow.logger.warning("order needs attention", extra=self._log_extra(reason=reason, step=step))

        def decided() -> bool:
            return (
                self._pending_action is not None
                or (cancellable and self._cancel is not None)
                or (resolved_by is not None and resolved_by())
            )

        while True:
            await workflow.wait_condition(lambda: decided() or (edits and self._edit_due()))
            if decided():
                break
            # The channel edited the order meanwhile: take the edit, then wait on (or stop
            # waiting, if the edit resolved what this wait was for).
            await self._take_edits()
            if decided():
                break
            self._attention, self._attention_cancellable = attention, cancellable
            self._set_status("NeedsAttention")
        action = self._pending_action
        self._pending_action = None
        self._attention = None
        self._set_status(previous)
        if action is None:
            if self._cancel is not None and cancellable:
                self._attention_resolved(attention, "cancel")
                raise _Cancelled()
            # Resolved by an event (e.g. the late shipment arrived): carry on as if retried.
            self._attention_resolved(attention, "resolved")
            return OperatorAction(action="retry", operator="system", reason="resolved", at=workflow.now())
        self._attention_resolved(attention, action.action)
        return action

    def _attention_resolved(self, attention: Attention, resolution: Resolution) -> None:
        self._metrics.attention_resolved(attention.reason, attention.since, resolution)
        workflow.logger.info(
            "order attention resolved",
            extra=self._log_extra(reason=attention.reason, step=attention.step, resolution=resolution),
        )

    @workflow.update
    async def retry(self, req: OperatorRequest) -> str:
        """Retry the step that needs attention, after its cause was fixed."""
        action = self._take_action("retry", req)
        return f"retrying {action.step}"

    @retry.validator
    def _validate_retry(self, req: OperatorRequest) -> None:
        if self._attention is None:
            raise ValueError(f"nothing to retry: the order is {self._status}, not waiting for an operator")
        if self._attention.step in _HELD_STEPS:
            raise ValueError(f"the order is {_HELD_STEPS[self._attention.step]}: approve or cancel it")

    @workflow.update
    async def approve(self, req: OperatorRequest) -> str:
        """Release an order held by a rule (a high value, a failed address check) for processing."""
        self._take_action("approve", req)
        return "approved"

    @workflow.update
    def edit_address(self, edit: AddressEdit) -> str:
        """Correct the ship-to address before the order is released to a warehouse."""
        a = self._ship_to = edit.address
        self._actions.append(
            OperatorAction(
                action="edit_address",
                operator=edit.operator,
                reason=edit.reason,
                reference=f"{a.line1}, {a.city} {a.postal_code or ''}".strip(),
                at=workflow.now(),
                step=self._attention.step if self._attention else None,
            )
        )
        return "address updated"

    @edit_address.validator
    def _validate_edit_address(self, edit: AddressEdit) -> None:
        if self._fulfillments or self._shipments:
            raise ValueError("the order is already with a warehouse: change the address there")
        if self._status in _FINAL:
            raise ValueError(f"cannot edit: the order is {self._status}")

    @approve.validator
    def _validate_approve(self, req: OperatorRequest) -> None:
        if self._attention is None or self._attention.step not in _HELD_STEPS:
            raise ValueError(f"nothing to approve: the order is {self._status}, not held for approval")

    @workflow.update
    async def skip(self, req: OperatorRequest) -> str:
        """Skip the failed step; the reference says where it was done by hand."""
        action = self._take_action("skip", req)
        return f"skipped {action.step} ({req.reference})"

    @skip.validator
    def _validate_skip(self, req: OperatorRequest) -> None:
        if self._attention is None:
            raise ValueError(f"nothing to skip: the order is {self._status}, not waiting for an operator")
        if self._attention.step in _HELD_STEPS:
            raise ValueError(f"the order is {_HELD_STEPS[self._attention.step]}: approve or cancel it")
        if not req.reference:
            raise ValueError(
                "skip needs --reference: where the step was done by hand (e.g. an ERP order number)"
            )
        if self._attention.step == "await_shipment":
            raise ValueError("a shipment cannot be skipped: retry to keep waiting, or cancel")

    @workflow.update
    async def cancel(self, req: OperatorRequest) -> str:
        """Cancel the order: compensate what was done, or only what is unshipped."""
        action = self._operator_action("cancel", req)
        self._cancel = CancelRequest(reason=req.reason, source="operator", operator=req.operator)
        if self._attention is not None and self._attention_cancellable:
            self._pending_action = action
            return "cancelling"
        # Stuck on billing a shipment that left: the cancellation applies once it is billed.
        return (
            "cancelling" if self._attention is None else f"cancelling once {self._attention.step} is resolved"
        )

    def _cancellable(self) -> str | None:
        """Why the order can no longer be cancelled, or None if it can."""
        if self._status in _FINAL or self._cancel is not None:
            return f"the order is {self._status}"
        if self._channel_pending:
            return f"{self._order.channel} reported a fulfillment not billed yet: the goods have left"
        if self._shipments and self._all_shipped() and not self._backordered:
            # Status may read NeedsAttention (e.g. stuck on capture) while everything shipped.
            return "everything has shipped"
        return None

    @cancel.validator
    def _validate_cancel(self, req: OperatorRequest) -> None:
        why = self._cancellable()
        if why:
            raise ValueError(f"cannot cancel: {why}")
        if self._compensating:
            raise ValueError("cannot cancel during compensation: retry or skip the failed step")

    # ---------------------------------------------------------------------------------
    # events from other systems
    # ---------------------------------------------------------------------------------
    @workflow.signal
    def request_cancel(self, req: CancelRequest) -> None:
        """Cancellation from the channel or the API (a signal: the sender cannot wait)."""
        why = self._cancellable()
        if why:
            self._record("cancel_request", "failed", f"{req.source} asked to cancel but {why}")
            return
        self._cancel = req

    @workflow.signal
    def shipment_reported(self, shipment: Shipment) -> None:
        if shipment.shipment_id in self._seen_shipments:
            return  # a redelivered webhook
        self._seen_shipments.add(shipment.shipment_id)
        self._pending_shipments.append(shipment)

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
            if self._status in _ENDED:
                self._record(
                    f"channel_fulfillment:{fid}",
                    "failed",
                    f"{self._order.channel} reports fulfillment {f.name or fid} that the warehouse did not"
                    f" ship, after the order was {self._status}: check the goods did not leave twice",
                )
            else:
                self._channel_foreign.append(f)

    @workflow.signal
    def tracking_updated(self, event: TrackingEvent) -> None:
        if event.event_id in self._seen_tracking:
            return
        self._seen_tracking.add(event.event_id)
        if self._tracking.get(event.tracking_number) != "delivered":
            self._tracking[event.tracking_number] = event.status

    # ---------------------------------------------------------------------------------
    # visibility
    # ---------------------------------------------------------------------------------
    @workflow.query
    def state(self) -> OrderState:
        return OrderState(
            order_key=self._order.key,
            workflow_id=self._wf_id,
            channel=self._order.channel,
            external_id=self._order.external_id,
            name=self._order.name,
            status=self._status,
            erp_order_id=self._erp_order_id,
            erp_backend=self._erp_backend,
            customer_id=self._customer_id,
            tax_document=self._tax_document,
            authorization_id=self._authorization.authorization_id if self._authorization else None,
            total=self._order.totals.total,
            captured=self._captured,
            invoiced=self._invoiced,
            refunded=self._refunded,
            channel_paid=self._order.channel_payment,
            voided=self._voided,
            shipments=list(self._shipments),
            tracking=dict(self._tracking),
            fulfillments=dict(self._fulfillments),
            invoices=list(self._invoices),
            backordered=dict(self._backordered),
            attention=self._attention,
            actions=list(self._actions),
            steps=list(self._steps),
            waiting_for=self._waiting_for,
        )

    @workflow.update
    async def accepted(self) -> Acceptance:
        """Wait until the ERP accepted the order (or it needs a person, or it ended): what
        `POST /v1/orders?wait=accepted` answers a headless storefront. Issues no commands."""
        await workflow.wait_condition(
            lambda: self._erp_order_id is not None or self._attention is not None or self._status in _ENDED
        )
        return Acceptance(
            status=self._status,
            erp_order_id=self._erp_order_id,
            attention_reason=self._attention.reason if self._attention else None,
        )

    @workflow.query
    def return_context(self) -> ReturnContext:
        """What a return of this order needs: the order, what shipped from where, the captures."""
        locations: dict[str, str] = {}
        for sh in self._shipments:
            for ln in sh.lines:
                locations.setdefault(ln.line_id, sh.location)
        last_shipped = max((sh.shipped_at for sh in self._shipments), default=None)
        return ReturnContext(
            order=self._order,
            status=self._status,
            erp_order_id=self._erp_order_id,
            tax_document=self._tax_document,
            captures=list(self._captures),
            shipped=dict(self._shipped),
            ship_locations=locations,
            delivered_at=self._delivered_at or last_shipped,
        )

    @property
    def _label(self) -> str:
        return self._order.name or self._order.external_id

    def _log_extra(self, **fields: Any) -> dict[str, Any]:
        """Fields of a workflow log line: the correlation id links it to the webhook delivery
        and to the activities' lines (workflow and run ids come from the SDK's logger)."""
        return {"correlation_id": self._correlation_id, "order_key": self._order.key, **fields}

    def _completed(self) -> None:
        self._metrics.completed()
        workflow.logger.info("order completed", extra=self._log_extra())

    def _set_status(self, status: OrderStatus) -> None:
        self._status = status
        self._publish()

    def _publish(self) -> None:
        """Keep search attributes and the UI's current details in step with the state."""
        o = self._order
        updates = [
            sa.ORDER_ID.value_set(o.key),
            sa.CHANNEL.value_set(o.channel),
            sa.ORDER_STATUS.value_set(self._status),
            sa.ATTENTION_REASON.value_set(self._attention.reason)
            if self._attention
            else sa.ATTENTION_REASON.value_unset(),
            sa.CORRELATION_ID.value_set(self._correlation_id),
        ]
        if self._erp_backend:  # only set behind PATCH_ERP_BACKEND: old histories upsert as before
            updates.append(sa.ERP_BACKEND.value_set(self._erp_backend))
        workflow.upsert_search_attributes(updates)
        lines = [
            f"**{self._status}**",
            f"ERP order: {self._erp_order_id or '-'}"
            + (f" ({self._erp_backend})" if self._erp_backend else ""),
            f"Captured {self._captured} / invoiced {self._invoiced} of {o.totals.total}",
        ]
        if self._fulfillments:
            lines.append("Warehouse: " + ", ".join(f"{v} {k}" for k, v in sorted(self._fulfillments.items())))
        if self._tracking:
            lines.append("Tracking: " + ", ".join(f"{k} ({v})" for k, v in sorted(self._tracking.items())))
        if self._attention:
            a = self._attention
            lines.append(f"Needs attention: {a.reason} at {a.step}: {a.message}")
        if self._waiting_for:
            lines.append(f"Waiting for {self._waiting_for}")
        workflow.set_current_details("\n\n".join(lines))
