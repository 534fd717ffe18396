"""OrderToCash's channel edits (orders/updated): the newest edit, applied at the workflow's safe
points before release (ERP order, tax document and authorization follow), or a conflict for a
person after it."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import names
    from canonical.documents import (
        Authorization,
        SalesOrderAck,
        TaxQuote,
    )
    from canonical.edits import EditDiff, OrderEdit, diff_edit, reduce_order
    from workflows.order_core import OrderCancelled, OrderCore


class OrderEdits(OrderCore):
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
                raise OrderCancelled()
            if action.action == "skip":
                self._record("order_edit", "skipped", f"update of {when} handled by hand: {action.reference}")
                return
            if action.operator == "system":
                return  # the newer edit is taken next by the caller's loop

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
