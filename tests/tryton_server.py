"""A real trytond for tests (services/tryton.py): a database copied from the cached template,
a server on a free port, stopped after the test."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from adapters.erp.tryton.erp import TrytonErp
from services.tryton import TrytonServer

ROOT = Path(__file__).resolve().parent.parent
# Kept between runs: building the template (module activation) is the slow part.
TEMPLATES = ROOT / ".data" / "test-tryton-templates"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_tryton(tmp: Path) -> Iterator[TrytonServer]:
    server = TrytonServer(
        root=tmp / "tryton", database=f"t{uuid.uuid4().hex[:8]}", port=free_port(), templates=TEMPLATES
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def receive_in_tryton(erp: TrytonErp, sku: str, location: str, quantity: int) -> None:
    """A supplier receipt made by someone in Tryton: a move from the supplier location, done."""
    refs = await erp.refs()
    (supplier,) = await erp.rpc.model("stock.location", "search", [("type", "=", "supplier")], 0, 1, None)
    (move,) = await erp.rpc.model(
        "stock.move",
        "create",
        [
            {
                "product": refs.products[sku],
                "quantity": float(quantity),
                "unit": refs.unit,
                "from_location": supplier,
                "to_location": refs.warehouses[location].storage,
                "unit_price": Decimal("4.00"),
                "currency": refs.currency,
                "company": refs.company,
            }
        ],
    )
    await erp.rpc.model("stock.move", "do", [move])
