"""Returns on Tryton: an RMA is a return sale (negative quantities) whose reference is
``<order key>/return/<return key>``; Tryton makes its customer return shipment.

- ``authorize_return`` refuses more than shipped minus what live RMAs of the order already
  take, saying the figures; a replay finds the return sale by reference.
- ``receive_return`` receives the restocked units into the warehouse (the ledger hears a
  ``return_restock``); damaged units are written off at the door: their return moves are
  cancelled and ignored, so they never enter Tryton's stock, and the write-off is Tryton's cost
  price times the quantity. The receipt key is the return shipment's reference.
- ``post_credit_memo`` posts one credit note (a customer invoice with negative quantities) per
  RMA, reference = the idempotency key, with the platform's amounts to the cent.
- ``close_return`` cancels the return shipment of an RMA never received.

The RMA's status is read from Tryton: closed (its moves cancelled, none done), credited (a credit
note posted), received (its return shipment done), else authorized.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from adapters.erp.tryton.base import LINE_NOTE, _permanent, one_at_a_time, platform_line, sale_line_ids
from adapters.erp.tryton.stock_sync import TrytonStockSync
from canonical import InvoiceAmounts, Money
from canonical.documents import CreditMemoAck, ReturnReceiptAck, RmaAck, RmaLine
from canonical.returns import DispositionLine

RETURN = "/return/"


class TrytonReturns(TrytonStockSync):
    @one_at_a_time(lambda number, *_: f"sale:{number}:returns")  # one order's returns one at a time
    async def authorize_return(
        self, erp_order_id: str, return_key: str, lines: list[RmaLine], idempotency_key: str
    ) -> RmaAck:
        sale = await self._sale_by_number(erp_order_id)
        reference = f"{sale['reference']}{RETURN}{return_key}"
        existing = await self._sale_by_reference(reference)
        before = await self._returned(sale, exclude=reference)
        if existing is not None:
            return await self._rma_ack(await self._processed(existing), erp_order_id, before, created=False)
        shipped = await self._shipped(sale)
        refused = [
            f"line {ln.line_id}: {ln.quantity} asked, {shipped.get(ln.line_id, 0)} shipped, "
            f"{before.get(ln.line_id, 0)} on other returns"
            for ln in lines
            if ln.quantity > shipped.get(ln.line_id, 0) - before.get(ln.line_id, 0)
        ]
        if refused:
            raise _permanent(f"not returnable: {'; '.join(refused)}", "not_returnable")
        refs = await self.refs()
        read = await self._sale_lines(sale)
        by_line = sale_line_ids(read)
        originals = {r["id"]: r for r in read}
        rows = []
        for ln in lines:
            original = originals[by_line[ln.line_id]]
            row: dict[str, Any] = {
                "type": "line",
                "quantity": -float(ln.quantity),
                "unit_price": original["unit_price"],
                "description": original["description"],
                "note": f"{LINE_NOTE}{ln.line_id}",
            }
            if original["product"]:
                row |= {"product": original["product"], "unit": refs.unit}
            rows.append(row)
        (return_id,) = await self.rpc.model(
            "sale.sale",
            "create",
            [
                {
                    "party": sale["party"],
                    "reference": reference,
                    "description": f"return {return_key} of {sale['number']}",
                    "warehouse": sale["warehouse"],
                    "currency": refs.currency,
                    "company": refs.company,
                    "invoice_method": "manual",
                    "shipment_method": "order",
                    "invoice_address": sale["invoice_address"],
                    "shipment_address": sale["invoice_address"],
                    "lines": [["create", rows]],
                }
            ],
        )
        rma = await self._processed(await self._sale(return_id))
        return await self._rma_ack(rma, erp_order_id, before, created=True)

    @one_at_a_time(lambda rma, *_: f"rma:{rma}")
    async def receive_return(
        self, rma_id: str, lines: list[DispositionLine], idempotency_key: str
    ) -> ReturnReceiptAck:
        rma = await self._sale_by_number(rma_id)
        shipments = await self._return_shipments(rma)
        received = await self._receipt_key(rma)
        if received is not None:
            if received == idempotency_key:
                return await self._receipt_ack(rma)
            raise _permanent(f"{rma_id} was already received (another receipt)", "rma_received")
        if any(sh["reference"] == idempotency_key for sh in shipments):
            # This receipt's attempt received in Tryton, then died: finish its last steps.
            return await self._after_receipt(rma, shipments, idempotency_key, lines)
        status = await self._status(rma)
        if status == "closed":
            raise _permanent(f"{rma_id} is closed", "rma_closed")
        line_ids = await self._lines(rma)
        moves = [m for m in await self._moves(rma) if m["state"] not in ("done", "cancelled")]
        authorized: dict[str, int] = defaultdict(int)
        for m in moves:
            authorized[line_ids[int(m["origin"].split(",")[1])]] += int(m["quantity"])
        restock: dict[str, int] = defaultdict(int)
        damaged: dict[str, int] = defaultdict(int)
        for dl in lines:
            if dl.line_id not in authorized:
                raise _permanent(f"{rma_id} does not return line {dl.line_id}", "unknown_line")
            if dl.disposition == "damaged":
                damaged[dl.line_id] += dl.quantity
            elif dl.disposition != "not_returned":
                restock[dl.line_id] += dl.quantity
        over = [
            f"line {lid}: {restock[lid] + damaged[lid]} of {authorized[lid]}"
            for lid in authorized
            if restock[lid] + damaged[lid] > authorized[lid]
        ]
        if over:
            raise _permanent(
                f"{rma_id}: receipt exceeds the authorization: {'; '.join(over)}", "receipt_exceeds_rma"
            )
        # Each line's return moves carry the restocked units; the rest (damaged, not returned)
        # is cancelled, then ignored once the receipt is done.
        keep: dict[str, int] = dict(restock)
        receiving: set[int] = set()
        cancel: list[int] = []
        for m in moves:
            line = line_ids[int(m["origin"].split(",")[1])]
            want = min(int(m["quantity"]), keep.get(line, 0))
            keep[line] = keep.get(line, 0) - want
            if not want:
                cancel.append(m["id"])
                continue
            if want != int(m["quantity"]):
                await self.rpc.model("stock.move", "write", [m["id"]], {"quantity": float(want)})
            receiving.add(int(m["shipment"].split(",")[1]))
        if cancel:
            # Tryton makes these units a new return shipment (the sale still asks for them):
            # _ignore_open cancels it once the receipt is done.
            await self.rpc.model("stock.move", "delete", cancel)
        ids = sorted(receiving)
        if ids:
            await self.rpc.model("stock.shipment.out.return", "write", ids, {"reference": idempotency_key})
            await self.rpc.model("stock.shipment.out.return", "receive", ids)
        empty = [
            s["id"] for s in shipments if s["id"] not in receiving and s["state"] not in ("done", "cancelled")
        ]
        if empty:
            await self.rpc.model("stock.shipment.out.return", "cancel", empty)
        return await self._after_receipt(rma, await self._return_shipments(rma), idempotency_key, lines)

    async def _after_receipt(
        self, rma: dict[str, Any], shipments: list[dict[str, Any]], key: str, lines: list[DispositionLine]
    ) -> ReturnReceiptAck:
        drafts = [sh["id"] for sh in shipments if sh["reference"] == key and sh["state"] == "draft"]
        if drafts:  # the quantities were set before the key was written: receive them now
            await self.rpc.model("stock.shipment.out.return", "receive", drafts)
            shipments = await self._return_shipments(rma)
        still = [sh["id"] for sh in shipments if sh["state"] == "received"]
        if still:
            await self.rpc.model("stock.shipment.out.return", "do", still)
        await self._ignore_open(rma)
        damaged: dict[str, int] = defaultdict(int)
        for dl in lines:
            if dl.disposition == "damaged":
                damaged[dl.line_id] += dl.quantity
        written_off = await self._write_off(rma, damaged)
        await self._remember_receipt(rma, key, written_off)
        await self._mirror(rma)
        return await self._receipt_ack(rma)

    @one_at_a_time(lambda rma, *_: f"rma:{rma}")
    async def post_credit_memo(
        self, rma_id: str, amounts: InvoiceAmounts, idempotency_key: str
    ) -> CreditMemoAck:
        rma = await self._sale_by_number(rma_id)
        found = await self._credit_notes(rma)
        mine = [i for i in found if i["reference"] == idempotency_key]
        if found and not mine:
            raise _permanent(f"{rma_id} was credited already ({found[0]['number']})", "already_credited")
        refs = await self.refs()
        if mine:
            invoice_id = mine[0]["id"]
        else:
            values = await self._invoice_values(rma, amounts, refs, idempotency_key, sign=-1)
            (invoice_id,) = await self.rpc.model("account.invoice", "create", [values])
        (inv,) = await self.rpc.model(
            "account.invoice", "read", [invoice_id], ["state", "number", "total_amount"]
        )
        if inv["state"] in ("draft", "validated"):
            await self._post_invoice(invoice_id)
            (inv,) = await self.rpc.model("account.invoice", "read", [invoice_id], ["number", "total_amount"])
        return CreditMemoAck(
            credit_memo_id=inv["number"],
            rma_id=rma_id,
            total=Money(amount=-inv["total_amount"], currency=amounts.total.currency),
        )

    @one_at_a_time(lambda rma, *_: f"rma:{rma}")
    async def close_return(self, rma_id: str, reason: str, idempotency_key: str) -> RmaAck:
        rma = await self._sale_by_number(rma_id)
        status = await self._status(rma)
        if status in ("received", "credited"):
            raise _permanent(f"{rma_id} was received: it cannot be closed", "rma_received")
        if status != "closed":
            open_ids = [
                s["id"] for s in await self._return_shipments(rma) if s["state"] not in ("done", "cancelled")
            ]
            if open_ids:
                await self.rpc.model("stock.shipment.out.return", "cancel", open_ids)
            await self._ignore_open(rma)
        order_ref = rma["reference"].split(RETURN)[0]
        sale = await self._sale_by_reference(order_ref)
        before = await self._returned(sale, exclude=rma["reference"]) if sale else {}
        return await self._rma_ack(rma, sale["number"] if sale else "", before, created=False)

    # -- reading ---------------------------------------------------------------------------

    async def _shipped(self, sale: dict[str, Any]) -> dict[str, int]:
        lines = await self._lines(sale)
        out: dict[str, int] = defaultdict(int)
        for m in await self._moves(sale):
            if m["state"] == "done":
                out[lines[int(m["origin"].split(",")[1])]] += int(m["quantity"])
        return dict(out)

    async def _returns_of(self, sale: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in await self.rpc.search_read(
                "sale.sale",
                [("reference", "like", f"{sale['reference']}{RETURN}%"), ("state", "!=", "cancelled")],
                list(self._SALE_FIELDS),
                order=[("id", "ASC")],
            )
        ]

    async def _returned(self, sale: dict[str, Any], *, exclude: str) -> dict[str, int]:
        """Per line, what the order's live (not closed) RMAs other than ``exclude`` take."""
        out: dict[str, int] = defaultdict(int)
        for rma in await self._returns_of(sale):
            if rma["reference"] == exclude or await self._status(rma) == "closed":
                continue
            rows = await self.rpc.model("sale.line", "read", rma["lines"], ["note", "quantity"])
            for r in rows:
                if (line := platform_line(r)) is not None:
                    out[line] += int(abs(r["quantity"]))
        return dict(out)

    async def _return_shipments(self, rma: dict[str, Any]) -> list[dict[str, Any]]:
        moves = await self._moves(rma)
        ids = sorted({int(m["shipment"].split(",")[1]) for m in moves if m["shipment"]})
        if not ids:
            return []
        rows = await self.rpc.model("stock.shipment.out.return", "read", ids, ["state", "reference"])
        return [dict(r) for r in rows]

    async def _credit_notes(self, rma: dict[str, Any]) -> list[dict[str, Any]]:
        origins = [f"sale.line,{i}" for i in rma["lines"]]
        lines = await self.rpc.search_read("account.invoice.line", [("origin", "in", origins)], ["invoice"])
        ids = sorted({ln["invoice"] for ln in lines if ln["invoice"]})
        if not ids:
            return []
        rows = await self.rpc.model("account.invoice", "read", ids, ["state", "number", "reference"])
        return [dict(r) for r in rows if r["state"] != "cancelled"]

    async def _status(self, rma: dict[str, Any]) -> str:
        moves = await self._moves(rma)
        if await self._credit_notes(rma):
            return "credited"
        if any(m["state"] == "done" for m in moves) or await self._receipt_key(rma) is not None:
            return "received"
        if moves and all(m["state"] == "cancelled" for m in moves):
            return "closed"
        return "authorized"

    async def _rma_ack(
        self, rma: dict[str, Any], erp_order_id: str, before: dict[str, int], *, created: bool
    ) -> RmaAck:
        rows = await self.rpc.model("sale.line", "read", rma["lines"], ["note", "quantity", "product"])
        await self._know_products([{"product": r["product"]} for r in rows if r["product"]])
        refs = await self.refs()
        lines = [
            RmaLine(
                line_id=line,
                sku=refs.skus.get(r["product"]) if r["product"] else None,
                quantity=int(abs(r["quantity"])),
            )
            for r in rows
            if (line := platform_line(r)) is not None
        ]
        status: Any = await self._status(rma)
        return RmaAck(
            rma_id=rma["number"],
            erp_order_id=erp_order_id,
            lines=lines,
            returned_before=before,
            status=status,
            created=created,
        )

    async def _receipt_ack(self, rma: dict[str, Any]) -> ReturnReceiptAck:
        restocked = sum(int(m["quantity"]) for m in await self._moves(rma) if m["state"] == "done")
        written_off = Decimal((await self._comment(rma)).get("written-off", "0"))
        refs = await self.refs()
        (co,) = await self.rpc.model("currency.currency", "read", [refs.currency], ["code"])
        return ReturnReceiptAck(
            rma_id=rma["number"],
            restocked=restocked,
            written_off=Money(amount=written_off, currency=co["code"]),
        )

    # -- writing ---------------------------------------------------------------------------

    async def _ignore_open(self, rma: dict[str, Any]) -> None:
        """Cancel the return moves nothing came back for and mark them ignored (Tryton's
        "Handle Shipment Exception"), so the return sale does not ask for them again."""
        moves = await self._moves(rma)
        open_moves = [m for m in moves if m["state"] not in ("done", "cancelled")]
        shipments = sorted({int(m["shipment"].split(",")[1]) for m in open_moves if m["shipment"]})
        if shipments:
            await self.rpc.model("stock.shipment.out.return", "cancel", shipments)
        loose = [m["id"] for m in open_moves if not m["shipment"]]
        if loose:
            await self.rpc.model("stock.move", "cancel", loose)
        await self._ignore(rma, [m for m in await self._moves(rma) if m["state"] == "cancelled"])

    async def _write_off(self, rma: dict[str, Any], damaged: dict[str, int]) -> Decimal:
        if not any(damaged.values()):
            return Decimal(0)
        read = await self._sale_lines(rma)
        line_ids = sale_line_ids(read)
        rows = {r["id"]: r for r in read}
        products = sorted(
            {rows[line_ids[lid]]["product"] for lid in damaged if rows[line_ids[lid]]["product"]}
        )
        costs = {
            p["id"]: p["cost_price"] or Decimal(0)
            for p in await self.rpc.model("product.product", "read", products, ["cost_price"])
        }
        total = Decimal(0)
        for lid, qty in damaged.items():
            product = rows[line_ids[lid]]["product"]
            total += costs.get(product, Decimal(0)) * qty
        return total.quantize(Decimal("0.01"))

    async def _remember_receipt(self, rma: dict[str, Any], key: str, amount: Decimal) -> None:
        """The receipt's key and write-off, kept on the return sale (its comment): a replayed
        receipt answers the same, another receipt is refused."""
        await self.rpc.model(
            "sale.sale", "write", [rma["id"]], {"comment": f"received:{key} written-off:{amount}"}
        )

    async def _comment(self, rma: dict[str, Any]) -> dict[str, str]:
        (row,) = await self.rpc.model("sale.sale", "read", [rma["id"]], ["comment"])
        return dict(part.split(":", 1) for part in (row["comment"] or "").split() if ":" in part)

    async def _receipt_key(self, rma: dict[str, Any]) -> str | None:
        return (await self._comment(rma)).get("received")
