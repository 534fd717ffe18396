"""Item master and stock import for the builtin ERP, from CSV or JSON files (or rows).

Both imports are idempotent upserts in one transaction: a file is validated as a whole
first (a bad row names its number and nothing is written), then applied. Running the same
file twice changes nothing the second time. Row numbers count data records from 1 (a CSV
header is not a row).

Products: ``sku, title, price, currency[, weight_grams][, active]``.
Stock: ``sku, location, on_hand`` (absolute on-hand counts; reservations are untouched). Every
count that changes a position (or creates one) is journalled as a ``cycle_count`` movement,
event id ``import:<run>:<row>``; an unchanged count writes nothing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select

from adapters.erp.inventory import import_run_id, move
from backoffice.erp import ErpItem, ErpStock
from canonical.money import Money
from store.db import Store

Row = Mapping[str, object]
Source = Path | str | Iterable[Row]
_CHUNK = 500  # keep IN (...) lists well inside every database's parameter limit


@dataclass(frozen=True)
class ImportCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged

    def __str__(self) -> str:
        return f"{self.total} ({self.created} new, {self.updated} updated, {self.unchanged} unchanged)"


@dataclass(frozen=True)
class ProductRow:
    sku: str
    title: str
    price: Decimal
    currency: str
    weight_grams: int | None
    active: bool


@dataclass(frozen=True)
class StockRow:
    sku: str
    location: str
    on_hand: int


# -- reading ----------------------------------------------------------------------------------


def read_rows(path: Path, wrapper_keys: tuple[str, ...] = ()) -> list[Row]:
    """Records from a .csv (header row) or .json file (a list of objects, or an object whose
    ``wrapper_keys`` entry is that list). JSON numbers are read as Decimal, never float."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            return [dict(r) for r in csv.DictReader(f)]
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        if isinstance(data, dict):
            data = next((data[k] for k in wrapper_keys if k in data), data)
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of objects")
        for i, r in enumerate(data, start=1):
            if not isinstance(r, dict):
                raise ValueError(f"{path}: row {i}: expected an object, got {type(r).__name__}")
        return data
    raise ValueError(f"{path}: unsupported file type {suffix!r} (expected .csv or .json)")


def _rows(source: Source, wrapper_keys: tuple[str, ...]) -> list[Row]:
    if isinstance(source, str | Path):
        return read_rows(Path(source), wrapper_keys)
    return list(source)


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _text(row: Row, i: int, name: str) -> str:
    v = row.get(name)
    if _blank(v):
        raise ValueError(f"row {i}: missing {name}")
    if not isinstance(v, str | int):
        raise ValueError(f"row {i}: {name} must be text, got {v!r}")
    return str(v).strip()


def _int(row: Row, i: int, name: str, *, required: bool) -> int | None:
    v = row.get(name)
    if _blank(v):
        if required:
            raise ValueError(f"row {i}: missing {name}")
        return None
    try:
        if isinstance(v, bool) or not isinstance(v, str | int | Decimal):
            raise ValueError
        d = Decimal(v.strip()) if isinstance(v, str) else Decimal(v)
        if d != d.to_integral_value():
            raise ValueError
        n = int(d)
    except (ValueError, InvalidOperation):
        raise ValueError(f"row {i}: {name} must be a whole number, got {v!r}") from None
    if n < 0:
        raise ValueError(f"row {i}: {name} must not be negative, got {n}")
    return n


def _bool(row: Row, i: int, name: str, default: bool) -> bool:
    v = row.get(name)
    if _blank(v):
        return default
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "y"):
        return True
    if s in ("0", "false", "no", "n"):
        return False
    raise ValueError(f"row {i}: {name} must be true or false, got {v!r}")


def parse_product(row: Row, i: int) -> ProductRow:
    sku, title = _text(row, i, "sku"), _text(row, i, "title")
    currency = _text(row, i, "currency").upper()
    raw = row.get("price")
    if _blank(raw):
        raise ValueError(f"row {i}: missing price")
    if isinstance(raw, float | bool) or not isinstance(raw, str | int | Decimal):
        raise ValueError(f"row {i}: price must be a decimal string or number, got {raw!r}")
    try:
        price = Money.of(raw.strip() if isinstance(raw, str) else raw, currency)
    except (ValidationError, ValueError, InvalidOperation) as exc:
        first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise ValueError(f"row {i}: price {raw!r} {currency}: {first}") from None
    if price.amount < 0:
        raise ValueError(f"row {i}: price must not be negative, got {price}")
    weight = _int(row, i, "weight_grams", required=False)
    return ProductRow(sku, title, price.amount, currency, weight, _bool(row, i, "active", True))


def parse_stock(row: Row, i: int) -> StockRow:
    on_hand = _int(row, i, "on_hand", required=True)
    assert on_hand is not None
    return StockRow(_text(row, i, "sku"), _text(row, i, "location"), on_hand)


def _chunks(keys: list[str]) -> Iterable[list[str]]:
    for n in range(0, len(keys), _CHUNK):
        yield keys[n : n + _CHUNK]


# -- importing --------------------------------------------------------------------------------


def import_products(store: Store, source: Source) -> ImportCounts:
    """Upsert the item master from a file path or rows; returns what was created/updated."""
    rows: list[ProductRow] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(_rows(source, ("products", "items")), start=1):
        p = parse_product(raw, i)
        if p.sku in seen:
            raise ValueError(f"row {i}: sku {p.sku!r} repeats row {seen[p.sku]}")
        seen[p.sku] = i
        rows.append(p)
    created = updated = unchanged = 0
    with store.session() as s:
        existing: dict[str, ErpItem] = {}
        for chunk in _chunks(sorted(seen)):
            existing.update((it.sku, it) for it in s.scalars(select(ErpItem).where(ErpItem.sku.in_(chunk))))
        for p in rows:
            item = existing.get(p.sku)
            if item is None:
                s.add(
                    ErpItem(
                        sku=p.sku,
                        title=p.title,
                        price=p.price,
                        currency=p.currency,
                        weight_grams=p.weight_grams,
                        active=p.active,
                    )
                )
                created += 1
            elif (item.title, item.price, item.currency, item.weight_grams, item.active) == (
                p.title,
                p.price,
                p.currency,
                p.weight_grams,
                p.active,
            ):
                unchanged += 1
            else:
                item.title, item.price, item.currency = p.title, p.price, p.currency
                item.weight_grams, item.active = p.weight_grams, p.active
                updated += 1
    return ImportCounts(created, updated, unchanged)


def import_stock(store: Store, source: Source) -> ImportCounts:
    """Set on-hand stock per (sku, location) from a file path or rows.

    SKUs must already be in the item master. Only ``on_hand`` changes: reservations of open
    orders stay, so available = new on_hand - reserved. Rows are locked in (sku, location)
    order, like allocation, so an import cannot deadlock with orders."""
    rows: list[StockRow] = []
    seen: dict[tuple[str, str], int] = {}
    run = import_run_id()
    reference = Path(source).name[:200] if isinstance(source, str | Path) else None
    for i, raw in enumerate(_rows(source, ("stock", "inventory")), start=1):
        r = parse_stock(raw, i)
        key = (r.sku, r.location)
        if key in seen:
            raise ValueError(f"row {i}: {r.sku!r} at {r.location!r} repeats row {seen[key]}")
        seen[key] = i
        rows.append(r)
    skus = sorted({r.sku for r in rows})
    created = updated = unchanged = 0
    with store.session() as s:
        known: set[str] = set()
        existing: dict[tuple[str, str], ErpStock] = {}
        for chunk in _chunks(skus):
            known.update(s.scalars(select(ErpItem.sku).where(ErpItem.sku.in_(chunk))))
            q = (
                select(ErpStock)
                .where(ErpStock.sku.in_(chunk))
                .order_by(ErpStock.sku, ErpStock.location)
                .with_for_update()
            )
            existing.update(((st.sku, st.location), st) for st in s.scalars(q))
        for r in rows:
            if r.sku not in known:
                raise ValueError(
                    f"row {seen[(r.sku, r.location)]}: unknown sku {r.sku!r} (import products first)"
                )
        counted: list[tuple[StockRow, ErpStock]] = []
        for r in rows:
            row = existing.get((r.sku, r.location))
            if row is None:
                row = ErpStock(sku=r.sku, location=r.location, on_hand=0, reserved=0)
                s.add(row)
                created += 1
            elif row.on_hand == r.on_hand:
                unchanged += 1
                continue
            else:
                updated += 1
            counted.append((r, row))
        s.flush()  # new positions exist (or conflict) before the journal is written
        for r, row in counted:
            move(
                s,
                row,
                kind="cycle_count",
                event_id=f"import:{run}:{seen[(r.sku, r.location)]}",
                leg=0,
                quantity=r.on_hand,
                on_hand=r.on_hand - row.on_hand,
                source="import",
                reference=reference,
            )
    return ImportCounts(created, updated, unchanged)
