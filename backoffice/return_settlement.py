"""Settlement of returns: refunds the payment provider made against the ERP's credit memos.

A return's refunds carry its workflow id in their idempotency keys
(``return-<channel>-<return id>:refund:<round>:<capture>``) and its RMA carries the return key
(``<channel>-<return id>``), so each return's two sides meet on that key, read in two queries
per window.

Only what the provider shows can be judged here: a refund with no credit memo behind it, or
refunds adding up to more than the credit memo. A credit memo refunded through the channel, by
the channel itself or by hand leaves no trace at the provider, so "credited but not refunded"
is left to the return's own workflow (it never reaches Refunded without its refunds).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_, select

from backoffice.erp import ErpCreditMemo, ErpRma
from backoffice.payment import PaymentIdempotencyKey
from store.db import Store

RETURN_PREFIX = "return-"
CHUNK = 200


@dataclass(frozen=True)
class ReturnSettlement:
    return_key: str
    refunds: Decimal
    refund_ids: tuple[str, ...]
    currency: str
    credit_memo_id: str | None
    credited: Decimal | None


@dataclass(frozen=True)
class ReturnDifference:
    kind: str  # refund_without_credit_memo | refund_exceeds_credit_memo
    return_key: str
    reference: str
    expected: Decimal | None
    actual: Decimal
    currency: str
    detail: str


def _return_key(idempotency_key: str) -> str | None:
    wf, sep, step = idempotency_key.partition(":")
    if not sep or not wf.startswith(RETURN_PREFIX) or not step.startswith("refund:"):
        return None
    return wf.removeprefix(RETURN_PREFIX)


def return_settlements(store: Store, since: datetime, until: datetime) -> list[ReturnSettlement]:
    """Returns with a provider refund or a credit memo in the window, each with both sides whole."""
    k = PaymentIdempotencyKey
    with store.reading() as s:
        keys: set[str] = set()
        in_window = select(k.idempotency_key).where(
            k.operation == "refund",
            k.idempotency_key.like(f"{RETURN_PREFIX}%"),
            k.created_at >= since,
            k.created_at < until,
        )
        keys.update(rk for key in s.scalars(in_window) if (rk := _return_key(key)))
        memos = (
            select(ErpRma.return_key)
            .join(ErpCreditMemo, ErpCreditMemo.rma_pk == ErpRma.id)
            .where(ErpCreditMemo.created_at >= since, ErpCreditMemo.created_at < until)
        )
        keys.update(s.scalars(memos))
        if not keys:
            return []
        refunds: dict[str, list[tuple[str, Decimal, str]]] = defaultdict(list)
        ordered = sorted(keys)
        for n in range(0, len(ordered), CHUNK):
            # A few prefix range scans on the primary key per query, never a query per return.
            likes = [k.idempotency_key.like(f"{RETURN_PREFIX}{rk}:refund:%") for rk in ordered[n : n + CHUNK]]
            q = select(k.idempotency_key, k.response).where(k.operation == "refund", or_(*likes))
            for key, response in s.execute(q):
                rk = _return_key(key)
                if response is None or rk is None or rk not in keys:
                    continue
                body = json.loads(response)
                money = body.get("amount") or {}
                refunds[rk].append(
                    (
                        str(body.get("refund_id")),
                        Decimal(str(money.get("amount", "0"))),
                        str(money.get("currency")),
                    )
                )
        credit: dict[str, tuple[str | None, Decimal, str]] = {}
        q2 = (
            select(
                ErpRma.return_key, ErpCreditMemo.credit_memo_id, ErpCreditMemo.total, ErpCreditMemo.currency
            )
            .join(ErpCreditMemo, ErpCreditMemo.rma_pk == ErpRma.id)
            .where(ErpRma.return_key.in_(sorted(keys)))
        )
        for rk, memo_id, total, currency in s.execute(q2):
            credit[rk] = (memo_id, total, currency)
    out: list[ReturnSettlement] = []
    for rk in sorted(keys):
        got = refunds.get(rk, [])
        memo = credit.get(rk)
        currency = memo[2] if memo else (got[0][2] if got else "")
        out.append(
            ReturnSettlement(
                return_key=rk,
                refunds=sum((a for _, a, _ in got), Decimal(0)),
                refund_ids=tuple(r for r, _, _ in got),
                currency=currency,
                credit_memo_id=memo[0] if memo else None,
                credited=memo[1] if memo else None,
            )
        )
    return out


def compare_return(st: ReturnSettlement) -> list[ReturnDifference]:
    if not st.refund_ids:
        return []
    if st.credited is None:
        return [
            ReturnDifference(
                "refund_without_credit_memo",
                st.return_key,
                ",".join(st.refund_ids),
                None,
                st.refunds,
                st.currency,
                f"return {st.return_key}: refunded {st.refunds} {st.currency} ({', '.join(st.refund_ids)})"
                " but the ERP has no credit memo for it",
            )
        ]
    if st.refunds > st.credited:
        return [
            ReturnDifference(
                "refund_exceeds_credit_memo",
                st.return_key,
                st.credit_memo_id or "",
                st.credited,
                st.refunds,
                st.currency,
                f"return {st.return_key}: refunded {st.refunds} {st.currency}, credit memo"
                f" {st.credit_memo_id} credits {st.credited}",
            )
        ]
    return []
