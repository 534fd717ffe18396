"""ReturnToRefund: a return from request to refund, with money and stock that agree everywhere.

load the order -> validate (shipped, window) -> RMA in the ERP -> return label and inbound notice
-> wait for the warehouse's receipt (durable timer: an RMA not received in time expires) ->
disposition per line (restock / write off) -> credit memo -> tax reversal -> refund to the
captures (latest first), the rest through the channel -> tell the channel.

A refund already made at the channel is recorded and counted, never repeated. As with orders,
a step that fails for good waits for an operator (retry, skip with a reference, cancel before
receipt); every external call carries a key from the workflow id and the step, so nothing is
refunded twice whatever is retried or restarted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import names
    from canonical import Attention, InvoiceAmounts, Money, OperatorAction, StepRecord, TrackingEvent
    from canonical.documents import (
        ChannelAck,
        CreditMemoAck,
        Label,
        PaymentRefund,
        ReturnExpected,
        ReturnReceiptAck,
        RmaAck,
        RmaLine,
        TaxReversal,
    )
    from canonical.returns import (
        CaptureBalance,
        Disposition,
        DispositionLine,
        RefundRecord,
        ReturnContext,
        ReturnNotice,
        ReturnReceipt,
        ReturnState,
        ReturnStatus,
        ShippingCredit,
        check_return,
        credit_for_return,
        plan_refunds,
    )
    from orchestration import search_attributes as sa
    from orchestration.metrics import ReturnMetrics
    from orchestration.models import OperatorRequest
    from orchestration.returns_models import ReturnInput
    from workflows import steps
    from workflows.operated import Operated

T = TypeVar("T")

# workflow.patched ids (docs/workflow-versioning.md).
PATCH_DIGITAL_RETURNS = "digital-returns-v1"

# Steps an operator cannot skip: without them there is nothing to return against.
_NO_SKIP = {"load_order"}
_CLOSED: set[str] = {"Refunded", "Rejected", "Expired", "Cancelled"}


class _Stop(Exception):
    """Unwind: the return was cancelled by an operator."""


@workflow.defn
class ReturnToRefund(Operated):
    @workflow.init
    def __init__(self, inp: ReturnInput) -> None:
        self._req = inp.request
        self._policy = inp.policy
        self._correlation_id = inp.correlation_id
        self._status: ReturnStatus = "Requested"
        self._ctx: ReturnContext | None = None
        self._rma: RmaAck | None = None
        self._tracking: str | None = None
        self._inbound: str | None = None
        self._receipt: ReturnReceipt | None = None
        self._receipts_seen: set[str] = set()
        self._first_scan = False
        self._dispositions: list[DispositionLine] = []
        self._digital: set[str] = set()  # RMA lines nothing physical comes back for
        self._credit_memo: str | None = None
        self._credited: Money | None = None
        self._tax_reversed: Money | None = None
        self._refunded: Money | None = None
        self._refunds: list[RefundRecord] = []
        self._refund_started = False
        self._refunded_at: datetime | None = None
        self._rejection: str | None = None
        self._attention: Attention | None = None
        self._attention_cancellable = True
        self._closing = False
        self._pending_action: OperatorAction | None = None
        self._actions: list[OperatorAction] = []
        self._steps: list[StepRecord] = []
        self._retries: dict[str, int] = {}
        self._cancel: OperatorAction | None = None
        self._waiting_for: str | None = None
        self._metrics = ReturnMetrics(inp.request.channel)

    # ---------------------------------------------------------------------------------
    # run
    # ---------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: ReturnInput) -> ReturnState:
        self._publish()
        try:
            await self._process()
        except _Stop:
            await self._close("Cancelled", "cancelled", self._cancel.reason if self._cancel else "cancelled")
        if self._status in ("Expired", "Cancelled", "Rejected") and self._receipt is not None:
            # The parcel arrived while the return was closing: never drop goods that came back.
            await self._await_operator(
                "receipt_after_close",
                "received_after_close",
                f"receipt {self._receipt.receipt_id} arrived after the return was {self._status.lower()}: "
                "book it by hand (or request a new return) and skip with the reference",
                cancellable=False,
            )
            self._record("receipt_after_close", "skipped", self._skip_reference("receipt_after_close"))
        return self.state()

    async def _process(self) -> None:
        r = self._req
        ctx = await self._step(
            "load_order",
            lambda _: self._call(
                names.RETURN_CONTEXT, [f"order-{r.order_key}"], ReturnContext, f"Load order {r.order_key}"
            ),
        )
        assert ctx is not None  # load_order cannot be skipped
        self._ctx = ctx
        zero = Money.zero(ctx.order.currency)
        self._credited = self._tax_reversed = self._refunded = zero
        self._refunds = [
            RefundRecord(kind="channel_managed", reference=c.refund_id, amount=c.amount)
            for c in r.channel_refunds
        ]

        ctx = await self._validated(ctx)
        if ctx is None:
            return
        if not await self._authorize(ctx):
            return
        self._checkpoint()

        digital = {ln.line_id for ln in ctx.order.lines if ln.digital}
        if any(ln.line_id in digital for ln in self._rma_lines()) and workflow.patched(PATCH_DIGITAL_RETURNS):
            # Gift cards, e-goods, services: within the window they are credited as returned,
            # without a label, an inbound notice or a receipt.
            self._digital = {ln.line_id for ln in self._rma_lines() if ln.line_id in digital}

        if r.receipt == "warehouse" and self._goods_lines():
            await self._send_back(ctx)
            received = await self._await_goods()
            if received is None:
                return  # expired
            for ln in self._rma_lines():
                if ln.line_id in self._digital:
                    received[ln.line_id] = ln.quantity
                    self._dispositions.append(self._not_returned(ln))
        else:
            restock = {ln.line_id: ln.restock is not False for ln in r.lines}
            received = {ln.line_id: ln.quantity for ln in self._rma_lines()}

            def kind(line_id: str) -> Disposition:
                if line_id in self._digital:
                    return "not_returned"
                return "restock" if r.receipt == "at_channel" and restock.get(line_id) else "not_returned"

            self._dispositions = [
                DispositionLine(
                    line_id=ln.line_id,
                    sku=ln.sku,
                    quantity=ln.quantity,
                    disposition=kind(ln.line_id),
                    location=r.location or self._location_of(ln.line_id),
                )
                for ln in self._rma_lines()
            ]
        await self._receive()
        if not self._refund_started:
            await self._refund(received)
        elif self._refunded_at is not None:
            self._set_status("Refunded")  # refunded at the first scan, now received too
        await self._notify(
            "refunded",
            f"refunded {self._refunded} for {sum(received.values())} unit(s)",
        )

    # ---------------------------------------------------------------------------------
    # validation and authorization
    # ---------------------------------------------------------------------------------
    async def _validated(self, ctx: ReturnContext) -> ReturnContext | None:
        """The order's context once the return checks out; None when it was rejected.

        Money the channel already refunded must reach the books whatever the checks say, so such
        a return waits for an operator instead: retry re-reads the order (e.g. once the unit has
        shipped), skip records that it was booked by hand."""
        r = self._req
        while True:
            why = check_return(r, ctx, self._policy.window_days)
            if not why:
                return ctx
            if not self._channel_sourced:
                await self._reject(why)
                return None
            action = await self._await_operator("validate", "not_returnable", why, cancellable=True)
            if action.action == "skip":
                self._rejection = f"booked by hand: {action.reference}"
                self._record("validate", "skipped", action.reference)
                self._set_status("Rejected")
                self._metrics.ended("Rejected")
                return None
            reloaded = await self._step(
                "load_order",
                lambda _: self._call(
                    names.RETURN_CONTEXT, [f"order-{r.order_key}"], ReturnContext, f"Load order {r.order_key}"
                ),
            )
            assert reloaded is not None
            ctx = self._ctx = reloaded

    @property
    def _channel_sourced(self) -> bool:
        """A refund the channel made: the channel decided the money, the platform books it."""
        return self._req.source == "channel"

    async def _authorize(self, ctx: ReturnContext) -> bool:
        r = self._req
        lines = self._requested_rma_lines(ctx)
        while True:
            try:
                n = self._retries.get("authorize_return", 0)
                self._rma = await self._call(
                    names.AUTHORIZE_RETURN,
                    [ctx.erp_order_id or "", r.key, lines, self._key("authorize_return", n)],
                    RmaAck,
                    f"Authorize return of {sum(ln.quantity for ln in lines)} unit(s) in the ERP",
                )
            except ActivityError as err:
                cause = err.cause
                if (
                    isinstance(cause, ApplicationError)
                    and cause.type == "not_returnable"
                    and not r.channel_refunds
                ):
                    await self._reject(cause.message)
                    return False
                if not await self._operator_after(err, "authorize_return", cancellable=True):
                    # Keyed in by hand: the reference is the RMA number.
                    ref = self._skip_reference("authorize_return") or "manual"
                    self._rma = RmaAck(
                        rma_id=ref,
                        erp_order_id=ctx.erp_order_id or "",
                        lines=lines,
                        status="authorized",
                        created=False,
                    )
                    break
                continue
            self._record("authorize_return", "done", self._rma.rma_id)
            break
        self._set_status("Authorized")
        return True

    def _requested_rma_lines(self, ctx: ReturnContext) -> list[RmaLine]:
        skus = {ln.line_id: ln.sku for ln in ctx.order.lines}
        return [
            RmaLine(line_id=ln.line_id, sku=skus.get(ln.line_id), quantity=ln.quantity)
            for ln in self._req.lines
        ]

    def _rma_lines(self) -> list[RmaLine]:
        assert self._rma is not None
        return self._rma.lines

    def _goods_lines(self) -> list[RmaLine]:
        """The RMA lines whose goods come back (all but the digital ones)."""
        return [ln for ln in self._rma_lines() if ln.line_id not in self._digital]

    def _not_returned(self, line: RmaLine) -> DispositionLine:
        return DispositionLine(
            line_id=line.line_id,
            sku=line.sku,
            quantity=line.quantity,
            disposition="not_returned",
            location=self._req.location or self._location_of(line.line_id),
        )

    def _location_of(self, line_id: str) -> str:
        ctx = self._ctx
        return (ctx.ship_locations.get(line_id) if ctx else None) or self._policy.default_location

    # ---------------------------------------------------------------------------------
    # goods coming back
    # ---------------------------------------------------------------------------------
    async def _send_back(self, ctx: ReturnContext) -> None:
        r = self._req
        assert self._rma is not None
        rma_id = self._rma.rma_id
        where = r.location or self._location_of(self._goods_lines()[0].line_id)
        if self._policy.return_label:
            label = await self._step(
                "return_label",
                lambda n: self._call(
                    names.RETURN_LABEL,
                    [r.key, ctx.order.shipping_address, where, self._key("return_label", n)],
                    Label,
                    f"Return label to {where}",
                ),
                cancellable=True,
            )
            self._tracking = label.tracking_number if label else self._skip_reference("return_label")
        inbound = await self._step(
            "expect_return",
            lambda n: self._call(
                names.EXPECT_RETURN,
                [r.key, rma_id, where, self._goods_lines(), self._key("expect_return", n)],
                ReturnExpected,
                f"Tell {where} to expect RMA {rma_id}",
            ),
            cancellable=True,
        )
        self._inbound = inbound.inbound_id if inbound else self._skip_reference("expect_return")
        self._checkpoint()

    async def _await_goods(self) -> dict[str, int] | None:
        """Wait for the receipt (or, by policy, refund at the first scan); None when it expired."""
        timeout = timedelta(seconds=self._policy.receipt_timeout_s)
        early = self._policy.refund_on_first_scan
        self._set_status("AwaitingReceipt")
        self._waiting_for = "the return parcel at the warehouse"
        self._publish()
        try:
            await workflow.wait_condition(
                lambda: self._receipt is not None or self._cancel is not None or (early and self._first_scan),
                timeout=timeout,
            )
        except TimeoutError:
            self._waiting_for = None
            await self._close(
                "Expired", "expired", f"not received within {self._policy.receipt_timeout_s:g}s"
            )
            return None
        self._waiting_for = None
        if self._receipt is not None and self._cancel is not None:
            # The parcel is back: the goods decide, the cancellation came too late.
            self._record("cancel", "failed", "the return was received before the cancellation applied")
            self._cancel = None
        self._checkpoint()
        if self._receipt is None:
            # First scan by the carrier: refund now, on what was authorized; restock on receipt.
            self._record("first_scan", "done", f"carrier scanned {self._tracking}")
            await self._refund({ln.line_id: ln.quantity for ln in self._rma_lines()})
            self._waiting_for = "the refunded parcel at the warehouse"
            self._set_status("Refunded")
            while self._receipt is None:
                try:
                    await workflow.wait_condition(lambda: self._receipt is not None, timeout=timeout)
                except TimeoutError:
                    await self._await_operator(
                        "await_receipt",
                        "not_received_after_refund",
                        "refunded at the first scan, not received within "
                        f"{self._policy.receipt_timeout_s:g}s",
                        cancellable=False,
                        resolved_by=lambda: self._receipt is not None,
                    )
                    if self._receipt is None and self._skip_reference("await_receipt"):
                        self._waiting_for = None
                        return {ln.line_id: ln.quantity for ln in self._rma_lines()}
            self._waiting_for = None
        return self._apply_receipt(self._receipt)

    def _apply_receipt(self, receipt: ReturnReceipt) -> dict[str, int]:
        """Dispositions from what the warehouse found, capped at what the RMA authorized."""
        authorized = {ln.line_id: ln for ln in self._goods_lines()}
        taken: dict[str, int] = {}
        dispositions: list[DispositionLine] = []
        for got in receipt.lines:
            line = authorized.get(got.line_id)
            if line is None:
                self._record("receipt", "failed", f"line {got.line_id} is not on the RMA: ignored")
                continue
            qty = min(got.quantity, line.quantity - taken.get(got.line_id, 0))
            if qty <= 0:
                continue
            taken[got.line_id] = taken.get(got.line_id, 0) + qty
            kind: Disposition = "damaged" if got.condition == "damaged" else "restock"
            dispositions.append(
                DispositionLine(
                    line_id=got.line_id,
                    sku=got.sku,
                    quantity=qty,
                    disposition=kind,
                    location=receipt.location,
                )
            )
        self._dispositions = dispositions
        short = {
            k: v.quantity - taken.get(k, 0) for k, v in authorized.items() if taken.get(k, 0) < v.quantity
        }
        if short:
            self._record(
                "receipt",
                "failed",
                "received short: " + ", ".join(f"{k} -{q}" for k, q in sorted(short.items())),
            )
        self._set_status("Received")
        return taken

    async def _receive(self) -> None:
        """Restock and write off in the ERP (the stock ledger tells the channels)."""
        assert self._rma is not None
        moved = [d for d in self._dispositions if d.disposition != "not_returned"]
        if not moved:
            return
        rma_id = self._rma.rma_id
        await self._step(
            "receive_return",
            lambda n: self._call(
                names.RECEIVE_RETURN,
                [rma_id, moved, self._key("receive_return", n)],
                ReturnReceiptAck,
                f"Receive RMA {rma_id}: "
                + ", ".join(f"{d.quantity} x {d.sku} {d.disposition}" for d in moved),
            ),
            cancellable=False,
        )

    # ---------------------------------------------------------------------------------
    # money
    # ---------------------------------------------------------------------------------
    async def _refund(self, returned: dict[str, int]) -> None:
        ctx = self._ctx
        rma = self._rma
        assert ctx is not None and rma is not None and self._refunded is not None
        self._refund_started = True
        order = ctx.order
        cur = order.currency
        if not any(q > 0 for q in returned.values()):
            self._record("refund", "skipped", "nothing received to refund")
            return
        while True:
            try:
                credit: InvoiceAmounts = credit_for_return(
                    order,
                    rma.returned_before,
                    returned,
                    self._shipping_credit(),
                    given={ln.line_id: ln for ln in self._req.lines},
                    shipped=ctx.shipped,
                )
                break
            except ValueError as exc:  # e.g. the ERP counts more returned units than the order has
                action = await self._await_operator(
                    "credit", "credit_not_computable", str(exc), cancellable=False
                )
                if action.action == "skip":
                    self._record("credit", "skipped", action.reference)
                    self._set_status("Refunded")
                    return
        if self._channel_sourced:
            await self._check_channel_money(credit)
        memo = await self._step(
            "credit_memo",
            lambda n: self._call(
                names.POST_CREDIT_MEMO,
                [rma.rma_id, credit, self._key("credit_memo", n)],
                CreditMemoAck,
                f"Credit memo {credit.total} for RMA {rma.rma_id}",
            ),
            cancellable=False,
        )
        self._credit_memo = memo.credit_memo_id if memo else self._skip_reference("credit_memo")
        self._credited = credit.total
        if ctx.tax_document and credit.tax.amount > 0:
            doc = ctx.tax_document
            await self._step(
                "reverse_tax",
                lambda _: self._call(
                    names.REVERSE_TAX,
                    [doc, f"{self._wf_id}:credit", credit],
                    TaxReversal,
                    f"Reverse tax {credit.tax}",
                ),
                cancellable=False,
            )
            self._tax_reversed = credit.tax
        self._set_status("Refunding")
        if not self._channel_sourced:
            # The channel decided the money of its own refunds; the platform moves money only for
            # returns it runs (API, CLI).
            await self._refund_due(ctx, credit.total)
        self._refunded = self._refunds_total(cur)
        self._refunded_at = workflow.now()
        self._metrics.refunded(self._req.requested_at)
        self._set_status("Refunded")

    def _refunds_total(self, currency: str) -> Money:
        return Money.sum((x.amount for x in self._refunds), currency)

    async def _check_channel_money(self, credit: InvoiceAmounts) -> None:
        """A channel's refund is booked as the channel made it: what it paid back must be what
        the return credits, in the order's currency; otherwise a person decides (skip once the
        difference is booked by hand). A refund still pending at the channel arrives as one
        with no money: it waits here too, it is never paid a second time by the platform."""
        cur = credit.total.currency
        while True:
            foreign = sorted({c.amount.currency for c in self._req.channel_refunds} - {cur})
            if foreign:
                why = f"the channel refunded in {', '.join(foreign)}, the order is in {cur}"
            else:
                paid = Money.sum((c.amount for c in self._req.channel_refunds), cur)
                if paid == credit.total:
                    return
                why = f"the channel refunded {paid}, the return credits {credit.total}"
            action = await self._await_operator(
                "channel_refund_check",
                "refund_mismatch",
                why + ": book the difference by hand, then skip with its reference",
                cancellable=False,
            )
            if action.action == "skip":
                self._record("channel_refund_check", "skipped", f"{why}; booked as {action.reference}")
                return

    def _shipping_credit(self) -> ShippingCredit:
        decided = self._req.refund_shipping
        if decided is None:
            return self._policy.refund_shipping
        return "this_return" if decided else "never"

    async def _refund_due(self, ctx: ReturnContext, total: Money) -> None:
        """Give ``total`` back: to the captures, latest first, the rest through the channel when
        the channel holds part of the payment.

        Planned on each capture's remaining balance. After a refusal (nothing happened under the
        key) the plan is made again on fresh balances; after a timeout the same call is retried
        with the same key, so the provider answers with the refund it may have made."""
        cur = total.currency
        o = ctx.order
        round_ = 0
        while (due := total - self._refunds_total(cur)).amount > 0:
            round_ += 1
            balances: list[CaptureBalance] = []
            if ctx.captures:
                ids = [c.capture_id for c in ctx.captures]
                got = await self._step(
                    f"capture_balances:{round_}",
                    lambda _, ids=ids: self._call(  # type: ignore[misc]
                        names.CAPTURE_BALANCES, [ids], list[CaptureBalance], "Read what each capture has left"
                    ),
                    cancellable=False,
                )
                balances = got or []
            plan, rest = plan_refunds(due, balances)
            settled = True
            for capture_id, amount in plan:
                if not await self._refund_capture(f"refund:{round_}:{capture_id}", capture_id, amount):
                    settled = False
                    break
            if not settled:
                continue
            if rest.amount <= 0:
                return
            room = o.channel_payment - self._refunded_at_channel(cur)
            if not room.is_zero and room.amount > 0:
                take = rest if rest <= room else room
                await self._refund_at_channel(f"channel_refund:{round_}", o.channel, o.external_id, take)
                continue
            action = await self._await_operator(
                "refund",
                "refund_exceeds_payments",
                f"{rest} is left to refund but the order's captures and channel payment are exhausted: "
                "refund by hand and skip with the reference, or retry once the payments are fixed",
                cancellable=False,
            )
            if action.action == "skip":
                self._refunds.append(
                    RefundRecord(kind="manual", reference=action.reference or "manual", amount=rest)
                )

    def _refunded_at_channel(self, currency: str) -> Money:
        return Money.sum((x.amount for x in self._refunds if x.kind == "channel"), currency)

    async def _refund_capture(self, step: str, capture_id: str, amount: Money) -> bool:
        """Refund part of one capture; False when it was refused and the plan must be made again."""
        while True:
            n = self._retries.get(step, 0)
            try:
                res = await self._call(
                    names.REFUND_PAYMENT,
                    [capture_id, amount, self._key(step, n)],
                    PaymentRefund,
                    f"Refund {amount} to capture {capture_id}",
                )
            except ActivityError as err:
                reason, message = steps.describe(err)
                action = await self._await_operator(step, reason, message, cancellable=False)
                if action.action == "skip":
                    ref = action.reference or "manual"
                    self._record(step, "skipped", ref)
                    self._refunds.append(RefundRecord(kind="manual", reference=ref, amount=amount))
                    return True
                if steps.refused_for_good(err):
                    self._retries[step] = n + 1
                    return False
                continue
            self._record(step, "done", res.refund_id)
            self._refunds.append(RefundRecord(kind="capture", reference=res.refund_id, amount=amount))
            return True

    async def _refund_at_channel(self, step: str, channel: str, external_id: str, amount: Money) -> None:
        ack = await self._step(
            step,
            lambda n: self._call(
                names.CHANNEL_REFUND,
                [channel, external_id, amount, self._req.reason, self._key(step, n)],
                ChannelAck,
                f"Refund {amount} through {channel}",
            ),
            cancellable=False,
        )
        if ack is not None:
            self._refunds.append(RefundRecord(kind="channel", reference=ack.reference, amount=amount))
        else:
            ref = self._skip_reference(step) or "manual"
            self._refunds.append(RefundRecord(kind="manual", reference=ref, amount=amount))

    # ---------------------------------------------------------------------------------
    # endings
    # ---------------------------------------------------------------------------------
    async def _notify(self, status: str, note: str) -> None:
        """Tell the channel, unless the return came from the channel's own refund (it knows)."""
        r = self._req
        ctx = self._ctx
        if ctx is None:
            return
        if self._channel_sourced:
            self._record("notify_channel", "skipped", f"{r.channel} made this refund: it knows")
            return
        cur = ctx.order.currency
        notice = ReturnNotice(
            return_key=r.key,
            status=status,  # type: ignore[arg-type]
            lines=list(r.lines),
            refunded=self._refunded or Money.zero(cur),
            restocked=any(d.disposition == "restock" for d in self._dispositions),
            note=note[:500],
        )
        await self._step(
            "notify_channel",
            lambda n: self._call(
                names.CHANNEL_RETURN,
                [r.channel, r.order_external_id, notice, self._key("notify_channel", n)],
                ChannelAck,
                f"Tell {r.channel}: return {status}",
            ),
            cancellable=False,
        )

    async def _reject(self, why: str) -> None:
        self._rejection = why
        self._record("validate", "failed", why)
        self._set_status("Rejected")
        self._metrics.ended("Rejected")
        await self._notify("rejected", why)

    async def _close(self, status: ReturnStatus, notice: str, why: str) -> None:
        """Expired or cancelled before receipt: close the RMA so its units are returnable again."""
        self._closing = True
        if self._rma is not None:
            rma_id = self._rma.rma_id
            await self._step(
                "close_return",
                lambda n: self._call(
                    names.CLOSE_RETURN,
                    [rma_id, why, self._key("close_return", n)],
                    RmaAck,
                    f"Close RMA {rma_id}",
                ),
                cancellable=False,
            )
        self._record(notice, "done", why)
        self._set_status(status)
        self._metrics.ended(status)
        await self._notify(notice, why)

    def _checkpoint(self) -> None:
        if self._cancel is not None:
            raise _Stop()

    # ---------------------------------------------------------------------------------
    # steps and operators
    # ---------------------------------------------------------------------------------
    async def _call(self, activity: str, args: Sequence[Any], result_type: type[T], summary: str) -> T:
        return await steps.call(self._policy.processing, activity, args, result_type, summary)

    async def _step(
        self, step: str, call: Callable[[int], Awaitable[T]], *, cancellable: bool = True
    ) -> T | None:
        """Run one step; on a lasting failure wait for an operator. None means skipped."""
        while True:
            try:
                result = await call(self._retries.get(step, 0))
            except ActivityError as err:
                if await self._operator_after(err, step, cancellable=cancellable):
                    continue
                self._record(step, "skipped", self._skip_reference(step))
                return None
            self._record(step, "done")
            return result

    async def _operator_after(self, err: ActivityError, step: str, *, cancellable: bool) -> bool:
        """Wait for an operator after a lasting failure: True to retry, False when skipped."""
        reason, message = steps.describe(err)
        action = await self._await_operator(step, reason, message, cancellable=cancellable)
        if action.action == "retry":
            if steps.refused_for_good(err):
                # Refused, so nothing happened under the old key: a new key lets the vendor act.
                self._retries[step] = self._retries.get(step, 0) + 1
            return True
        return False

    async def _await_operator(
        self,
        step: str,
        reason: str,
        message: str,
        *,
        cancellable: bool,
        resolved_by: Callable[[], bool] | None = None,
    ) -> OperatorAction:
        previous = self._status
        attention = Attention(reason=reason, step=step, message=message, since=workflow.now())
        self._attention = attention
        self._attention_cancellable = cancellable
        self._pending_action = None
        self._set_status("NeedsAttention")
        self._metrics.attention_entered(reason)
        workflow.logger.warning("return needs attention", extra=self._log_extra(reason=reason, step=step))
        await workflow.wait_condition(
            lambda: (
                self._pending_action is not None
                or (cancellable and self._cancel is not None)
                or (resolved_by is not None and resolved_by())
            )
        )
        action = self._pending_action
        self._pending_action = None
        self._attention = None
        self._set_status(previous)
        if action is None:
            if self._cancel is not None and cancellable:
                raise _Stop()
            return OperatorAction(action="retry", operator="system", reason="resolved", at=workflow.now())
        if action.action == "cancel":
            raise _Stop()
        return action

    @workflow.update
    async def retry(self, req: OperatorRequest) -> str:
        """Retry the step that needs attention, after its cause was fixed."""
        action = self._take_action("retry", req)
        return f"retrying {action.step}"

    @retry.validator
    def _validate_retry(self, req: OperatorRequest) -> None:
        if self._attention is None:
            raise ValueError(f"nothing to retry: the return is {self._status}, not waiting for an operator")
        if self._attention.step == "receipt_after_close":
            raise ValueError("nothing to retry: book the goods by hand and skip with the reference")

    @workflow.update
    async def skip(self, req: OperatorRequest) -> str:
        """Skip the failed step; the reference says where it was done by hand."""
        action = self._take_action("skip", req)
        return f"skipped {action.step} ({req.reference})"

    @skip.validator
    def _validate_skip(self, req: OperatorRequest) -> None:
        if self._attention is None:
            raise ValueError(f"nothing to skip: the return is {self._status}, not waiting for an operator")
        if self._attention.step in _NO_SKIP:
            raise ValueError(
                f"{self._attention.step} cannot be skipped: retry once the order exists, or cancel"
            )
        if not req.reference:
            raise ValueError("skip needs --reference: where the step was done by hand (e.g. a refund id)")

    @workflow.update
    async def cancel(self, req: OperatorRequest) -> str:
        """Cancel the return before the goods are received: the RMA is closed, the channel told."""
        action = self._operator_action("cancel", req)
        self._cancel = action
        if self._attention is not None:
            self._pending_action = action
        return "cancelling"

    @cancel.validator
    def _validate_cancel(self, req: OperatorRequest) -> None:
        if self._status in _CLOSED or self._closing:
            raise ValueError(f"cannot cancel: the return is {self._status}")
        if self._receipt is not None or self._refund_started:
            raise ValueError("cannot cancel: the goods were received or the refund has started")
        if self._cancel is not None:
            raise ValueError("a cancellation is already under way")
        if self._attention is not None:
            if not self._attention_cancellable:
                raise ValueError(
                    f"cannot cancel while {self._attention.step} needs attention: retry or skip it"
                )
            return
        if self._channel_sourced or self._req.receipt != "warehouse":
            raise ValueError("cannot cancel: nothing is awaited, the return goes straight to its credit memo")

    # ---------------------------------------------------------------------------------
    # events from the warehouse and the carrier
    # ---------------------------------------------------------------------------------
    @workflow.signal
    def receipt_reported(self, receipt: ReturnReceipt) -> None:
        if receipt.receipt_id in self._receipts_seen:
            return  # a redelivered webhook
        self._receipts_seen.add(receipt.receipt_id)
        if self._receipt is not None:
            self._record("receipt", "failed", f"a second receipt {receipt.receipt_id} was not applied")
            return
        # Kept whatever the status: goods that came back after a close wait for an operator.
        self._receipt = receipt

    @workflow.signal
    def tracking_updated(self, event: TrackingEvent) -> None:
        if event.status in ("in_transit", "out_for_delivery", "delivered"):
            self._first_scan = True

    # ---------------------------------------------------------------------------------
    # visibility
    # ---------------------------------------------------------------------------------
    @workflow.query
    def state(self) -> ReturnState:
        r = self._req
        cycle = (self._refunded_at - r.requested_at).total_seconds() if self._refunded_at else None
        return ReturnState(
            return_key=r.key,
            workflow_id=self._wf_id,
            order_key=r.order_key,
            channel=r.channel,
            return_id=r.return_id,
            source=r.source,
            reason=r.reason,
            status=self._status,
            lines=list(r.lines),
            rma_id=self._rma.rma_id if self._rma else None,
            return_tracking=self._tracking,
            inbound_id=self._inbound,
            receipt_id=self._receipt.receipt_id if self._receipt else None,
            dispositions=list(self._dispositions),
            credit_memo_id=self._credit_memo,
            currency=self._ctx.order.currency if self._ctx else None,
            credited=self._credited,
            tax_reversed=self._tax_reversed,
            refunded=self._refunded,
            refunds=list(self._refunds),
            rejection=self._rejection,
            requested_at=r.requested_at,
            refunded_at=self._refunded_at,
            cycle_time_s=max(0.0, cycle) if cycle is not None else None,
            attention=self._attention,
            actions=list(self._actions),
            steps=list(self._steps),
            waiting_for=self._waiting_for,
        )

    def _log_extra(self, **fields: Any) -> dict[str, Any]:
        return {"correlation_id": self._correlation_id, "return_key": self._req.key, **fields}

    def _set_status(self, status: ReturnStatus) -> None:
        self._status = status
        self._publish()

    def _publish(self) -> None:
        r = self._req
        workflow.upsert_search_attributes(
            [
                sa.ORDER_ID.value_set(r.order_key),
                sa.CHANNEL.value_set(r.channel),
                sa.RETURN_STATUS.value_set(self._status),
                sa.ATTENTION_REASON.value_set(self._attention.reason)
                if self._attention
                else sa.ATTENTION_REASON.value_unset(),
                sa.CORRELATION_ID.value_set(self._correlation_id),
            ]
        )
        lines = [f"**{self._status}**", f"RMA: {self._rma.rma_id if self._rma else '-'}"]
        if self._tracking:
            lines.append(f"Return label: {self._tracking}")
        if self._credited is not None:
            lines.append(
                f"Credited {self._credited}, refunded {self._refunded}, tax reversed {self._tax_reversed}"
            )
        if self._rejection:
            lines.append(f"Rejected: {self._rejection}")
        if self._attention:
            a = self._attention
            lines.append(f"Needs attention: {a.reason} at {a.step}: {a.message}")
        if self._waiting_for:
            lines.append(f"Waiting for {self._waiting_for}")
        workflow.set_current_details("\n\n".join(lines))
