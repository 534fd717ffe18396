"""The builtin tax engine behind ``TaxPort``: a rate table in the store, quotes kept as
documents, commits per invoice.

The jurisdiction is the order's shipping address (else billing); the most specific rate row
wins (postal prefix > region > country; no row means no tax). Tax is computed per line on
the line's net and rounded per line, half-even (``Money.round``); shipping is taxed only
where the rate row says so. Tax-inclusive orders have their tax extracted from the gross:
tax = gross - gross / (1 + rate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters import store_calls
from adapters.errors import PermanentError, TransientError
from adapters.faults import FaultInjector
from adapters.registry import AdapterContext, register
from backoffice.tax import (
    TaxCommitRecord,
    TaxDocument,
    TaxRate,
    TaxReversalRecord,
    add_rate,
    get_tax_document,
    list_rates,
    normalise_postal,
    reversed_tax,
    seed_default_rates,
    utcnow,
)
from canonical import Address, InvoiceAmounts, Money, Order
from canonical.documents import TaxCommit, TaxLineQuote, TaxQuote, TaxReversal, TaxVoid
from store.db import Store

__all__ = [
    "BuiltinTax",
    "Jurisdiction",
    "add_rate",
    "get_tax_document",
    "list_rates",
    "resolve_jurisdiction",
    "reversed_tax",
    "seed_default_rates",
    "tax_on",
]

SYSTEM = "tax"
T = TypeVar("T")


async def in_thread(fn: Callable[[], T]) -> T:
    return await store_calls.in_thread(SYSTEM, fn)


def permanent(message: str, reason: str) -> PermanentError:
    return PermanentError(message, reason=reason, system=SYSTEM)


@dataclass(frozen=True)
class Jurisdiction:
    """The rate that applies to an address (rate 0 when no row matches)."""

    code: str
    rate: Decimal
    taxes_shipping: bool


def resolve_jurisdiction(s: Session, address: Address) -> Jurisdiction:
    """The most specific matching rate row: longest postal prefix, then region, then country."""
    region = (address.region or "").strip().upper()
    postal = normalise_postal(address.postal_code)
    best: TaxRate | None = None
    for r in s.scalars(select(TaxRate).where(TaxRate.country == address.country)):
        if r.region and r.region != region:
            continue
        if r.postal_prefix and not postal.startswith(r.postal_prefix):
            continue
        if best is None or r.specificity > best.specificity:
            best = r
    if best is None:
        return Jurisdiction(address.country, Decimal(0), False)
    return Jurisdiction(best.jurisdiction, best.rate.normalize(), best.taxes_shipping)


def tax_on(amount: Money, rate: Decimal, inclusive: bool) -> Money:
    """Tax on one line's amount, rounded half-even to minor units."""
    if rate == 0 or amount.is_zero:
        return Money.zero(amount.currency)
    a = amount.amount
    exact = a - a / (1 + rate) if inclusive else a * rate
    return Money.round(exact, amount.currency)


def compute_quote(order: Order, document_code: str, j: Jurisdiction) -> TaxQuote:
    cur = order.currency
    lines = [
        TaxLineQuote(
            line_id=ln.line_id,
            rate=j.rate if ln.taxable and not ln.gift_card else Decimal(0),
            tax=tax_on(ln.net, j.rate, order.taxes_included)
            if ln.taxable and not ln.gift_card
            else Money.zero(cur),
            jurisdiction=j.code,
        )
        for ln in order.lines
    ]
    shipping_tax = Money.sum(
        (
            tax_on(sl.price - sl.discount, j.rate, order.taxes_included)
            for sl in order.shipping_lines
            if j.taxes_shipping
        ),
        cur,
    )
    total = Money.sum((ln.tax for ln in lines), cur) + shipping_tax
    return TaxQuote(document_code=document_code, lines=lines, shipping_tax=shipping_tax, total_tax=total)


class BuiltinTax:
    """The embedded tax engine: quote at order time, commit per invoice, void on cancel."""

    name = "builtin"

    def __init__(self, store: Store, faults: FaultInjector | None = None) -> None:
        self.store = store
        self.faults = faults or FaultInjector(SYSTEM)

    async def quote(self, order: Order, document_code: str) -> TaxQuote:
        """Quote and keep the document; quoting the same code again returns the stored quote
        (a new one only after a void)."""
        address = order.shipping_address or order.billing_address
        await self.faults.before(
            "quote", document_code=document_code, country=address.country if address is not None else None
        )
        return await in_thread(lambda: self._quote(order, document_code))

    async def requote(self, order: Order, document_code: str) -> TaxQuote:
        """Quote the edited order under the same code (same order: same quote, so a replay is
        harmless); refused once the document has commits."""
        await self.faults.before("requote", document_code=document_code)
        return await in_thread(lambda: self._requote(order, document_code))

    async def commit(self, document_code: str, invoice_code: str, amounts: InvoiceAmounts) -> TaxCommit:
        """Record ``amounts.tax`` as committed for the invoice, once per invoice code."""
        await self.faults.before("commit", document_code=document_code, invoice_code=invoice_code)
        return await in_thread(lambda: self._commit(document_code, invoice_code, amounts))

    async def void(self, document_code: str) -> TaxVoid:
        """Void the quote (commits already made stay reported)."""
        await self.faults.before("void", document_code=document_code)
        return await in_thread(lambda: self._void(document_code))

    async def reverse(self, document_code: str, credit_code: str, amounts: InvoiceAmounts) -> TaxReversal:
        """Record ``amounts.tax`` as given back for the credit memo, once per credit code; never
        more in total than the document committed (``reversal_exceeds_committed``)."""
        await self.faults.before("reverse", document_code=document_code, credit_code=credit_code)
        result = await in_thread(lambda: self._reverse(document_code, credit_code, amounts))
        await self.faults.after("reverse")
        return result

    # -- synchronous halves (run in a worker thread) -----------------------------------------

    def _quote(self, order: Order, document_code: str) -> TaxQuote:
        for _ in range(2):
            try:
                with self.store.session() as s:
                    return self._quote_in(s, order, document_code)
            except IntegrityError:
                continue  # quoted concurrently under the same code: read that quote next round
        raise TransientError(f"tax document {document_code} is being quoted concurrently", system=SYSTEM)

    def _quote_in(self, s: Session, order: Order, document_code: str) -> TaxQuote:
        doc = s.get(TaxDocument, document_code, with_for_update=True)
        if doc is not None and doc.status != "voided":
            return TaxQuote.model_validate_json(doc.quote_json)
        address = order.shipping_address or order.billing_address
        if address is None:
            raise permanent(f"order {order.key} has no shipping or billing address to tax", "no_tax_address")
        j = resolve_jurisdiction(s, address)
        quote = compute_quote(order, document_code, j)
        if doc is None:
            doc = TaxDocument(document_code=document_code, committed=Decimal(0))
            s.add(doc)
        doc.status = "quoted"
        doc.jurisdiction = j.code
        doc.currency = order.currency
        doc.total_tax = quote.total_tax.amount
        doc.shipping_tax = quote.shipping_tax.amount
        doc.quote_json = quote.model_dump_json()
        doc.voided_at = None
        s.flush()
        return quote

    def _requote(self, order: Order, document_code: str) -> TaxQuote:
        with self.store.session() as s:
            doc = s.get(TaxDocument, document_code, with_for_update=True)
            if doc is None:
                raise permanent(f"no tax document {document_code}", "not_found")
            if doc.committed != 0 or doc.status == "committed":
                raise permanent(
                    f"tax document {document_code} has commits: it cannot change", "document_committed"
                )
            address = order.shipping_address or order.billing_address
            if address is None:
                raise permanent(
                    f"order {order.key} has no shipping or billing address to tax", "no_tax_address"
                )
            j = resolve_jurisdiction(s, address)
            quote = compute_quote(order, document_code, j)
            doc.status = "quoted"
            doc.jurisdiction = j.code
            doc.total_tax = quote.total_tax.amount
            doc.shipping_tax = quote.shipping_tax.amount
            doc.quote_json = quote.model_dump_json()
            doc.voided_at = None
            s.flush()
            return quote

    def _commit(self, document_code: str, invoice_code: str, amounts: InvoiceAmounts) -> TaxCommit:
        for _ in range(2):
            try:
                with self.store.session() as s:
                    return self._commit_in(s, document_code, invoice_code, amounts)
            except IntegrityError:
                continue  # committed concurrently under the same invoice code: replay it
        raise TransientError(f"invoice {invoice_code} is being committed concurrently", system=SYSTEM)

    def _commit_in(
        self, s: Session, document_code: str, invoice_code: str, amounts: InvoiceAmounts
    ) -> TaxCommit:
        doc = s.get(TaxDocument, document_code, with_for_update=True)
        done = s.get(TaxCommitRecord, invoice_code)
        if done is not None:
            if done.document_code != document_code:
                raise permanent(
                    f"invoice {invoice_code} was committed on {done.document_code}, not {document_code}",
                    "idempotency_key_reuse",
                )
            return TaxCommit(document_code=document_code, committed=Money.of(done.tax, done.currency))
        if doc is None:
            raise permanent(f"no tax document {document_code}", "not_found")
        if doc.status == "voided":
            raise permanent(f"tax document {document_code} is voided", "document_voided")
        tax = amounts.tax
        if tax.currency != doc.currency:
            raise permanent(
                f"invoice tax is in {tax.currency}, the document in {doc.currency}", "currency_mismatch"
            )
        s.add(
            TaxCommitRecord(
                invoice_code=invoice_code, document_code=document_code, tax=tax.amount, currency=tax.currency
            )
        )
        doc.committed = doc.committed + tax.amount
        doc.status = "committed"
        s.flush()
        return TaxCommit(document_code=document_code, committed=tax)

    def _void(self, document_code: str) -> TaxVoid:
        with self.store.session() as s:
            doc = s.get(TaxDocument, document_code, with_for_update=True)
            if doc is None:
                return TaxVoid(document_code=document_code, status="not_found")
            if doc.status == "voided":
                return TaxVoid(document_code=document_code, status="already_voided")
            doc.status = "voided"
            doc.voided_at = utcnow()
            return TaxVoid(document_code=document_code, status="voided")

    def _reverse(self, document_code: str, credit_code: str, amounts: InvoiceAmounts) -> TaxReversal:
        for _ in range(2):
            try:
                with self.store.session() as s:
                    return self._reverse_in(s, document_code, credit_code, amounts)
            except IntegrityError:
                continue  # reversed concurrently under the same credit code: replay it
        raise TransientError(f"credit {credit_code} is being reversed concurrently", system=SYSTEM)

    def _reverse_in(
        self, s: Session, document_code: str, credit_code: str, amounts: InvoiceAmounts
    ) -> TaxReversal:
        doc = s.get(TaxDocument, document_code, with_for_update=True)  # serialises reversals of a document
        done = s.get(TaxReversalRecord, credit_code)
        tax = amounts.tax
        if done is not None:
            recorded = Money.of(done.tax, done.currency)
            if done.document_code != document_code or recorded != tax:
                raise permanent(
                    f"credit {credit_code} already reversed {recorded} on {done.document_code},"
                    f" not {tax} on {document_code}",
                    "idempotency_key_reuse",
                )
            return TaxReversal(document_code=document_code, credit_code=credit_code, reversed=recorded)
        if doc is None:
            raise permanent(f"no tax document {document_code}", "not_found")
        if tax.currency != doc.currency:
            raise permanent(
                f"credit tax is in {tax.currency}, the document in {doc.currency}", "currency_mismatch"
            )
        if tax.amount < 0:
            raise permanent(f"tax to reverse must not be negative, got {tax}", "invalid_amount")
        before = sum(
            s.scalars(select(TaxReversalRecord.tax).where(TaxReversalRecord.document_code == document_code)),
            Decimal(0),
        )
        if before + tax.amount > doc.committed:
            raise permanent(
                f"reversing {tax} on {document_code} after {Money.of(before, doc.currency)} exceeds the"
                f" {Money.of(doc.committed, doc.currency)} committed",
                "reversal_exceeds_committed",
            )
        s.add(
            TaxReversalRecord(
                credit_code=credit_code, document_code=document_code, tax=tax.amount, currency=tax.currency
            )
        )
        s.flush()
        return TaxReversal(document_code=document_code, credit_code=credit_code, reversed=tax)


@register("tax", "builtin")
def _builtin(ctx: AdapterContext) -> BuiltinTax:
    return BuiltinTax(ctx.store, FaultInjector("tax", ctx.settings.faults.tax))
