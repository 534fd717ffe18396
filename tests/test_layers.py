"""The layers point one way (README "Layout"): each package imports only what sits below it,
vendor stand-ins stay out of the product, and the workflow names the client starts by are the
workflows' own."""

from __future__ import annotations

import ast
from pathlib import Path

from temporalio import workflow

from orchestration import names
from workflows.inventory import ChannelInventorySync, InventoryAdjustment
from workflows.order_to_cash import OrderToCash
from workflows.return_to_refund import ReturnToRefund

ROOT = Path(__file__).resolve().parent.parent
BASE = {"canonical", "settings"}
# package -> the project's packages and modules it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "canonical": set(),
    "settings": set(),
    "tracing": {"settings"},
    "orchestration": BASE | {"tracing"},
    "store": BASE,
    "backoffice": BASE | {"store"},
    "adapters": BASE | {"store", "backoffice"},
    "sandboxes": BASE | {"store", "backoffice", "adapters"},
    "activities": BASE | {"tracing", "orchestration", "adapters", "store", "backoffice"},
    "workflows": BASE | {"orchestration", "activities"},
    "devserver": BASE | {"orchestration"},
    "services": BASE,
}
# Alembic's environment and migrations are the one database's schema history, the builtin
# back office's tables included.
EXEMPT = {"store/migrations"}
PRODUCT_WITHOUT_SANDBOXES = {"api", "worker", "replay", "devserver", *ALLOWED} - {"sandboxes"}


def _project_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _sources() -> dict[str, list[Path]]:
    by_top: dict[str, list[Path]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {".venv", "tests", "bench", "scripts"} or rel.parts[0].startswith("."):
            continue
        top = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        by_top.setdefault(top, []).append(path)
    return by_top


def _violations(allowed: dict[str, set[str]]) -> list[str]:
    sources = _sources()
    tops = set(sources)
    out: list[str] = []
    for top, paths in sorted(sources.items()):
        for path in paths:
            rel = path.relative_to(ROOT).as_posix()
            if any(rel.startswith(e) for e in EXEMPT):
                continue
            for imported in sorted(_project_imports(path) & tops - {top}):
                if top in allowed and imported not in allowed[top]:
                    out.append(f"{rel} imports {imported}")
                if imported == "cli":
                    out.append(f"{rel} imports cli: nothing imports the CLI")
                if imported == "sandboxes" and top in PRODUCT_WITHOUT_SANDBOXES:
                    out.append(f"{rel} imports a vendor stand-in (sandboxes)")
    return out


def test_every_import_points_down_the_layers() -> None:
    assert _violations(ALLOWED) == []


def test_the_check_sees_an_upward_import() -> None:
    # The rule is live: forbid what activities really import and it is reported.
    stricter = {**ALLOWED, "activities": ALLOWED["activities"] - {"orchestration"}}
    assert any("activities/" in v and "imports orchestration" in v for v in _violations(stricter))


def test_adapters_hold_no_vendor_imitation() -> None:
    stand_ins = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "adapters").rglob("*.py")
        if p.stem in {"sandbox", "simulator", "fake", "demo_orders", "app_server"} or "sandbox" in p.parts
    ]
    assert stand_ins == []


def test_the_client_starts_and_reads_workflows_by_their_own_names() -> None:
    def definition(cls: type) -> workflow._Definition:
        return workflow._Definition.must_from_class(cls)

    assert definition(OrderToCash).name == names.ORDER_TO_CASH
    assert definition(ReturnToRefund).name == names.RETURN_TO_REFUND
    assert definition(InventoryAdjustment).name == names.INVENTORY_ADJUSTMENT
    assert definition(ChannelInventorySync).name == names.CHANNEL_INVENTORY_SYNC
    order = definition(OrderToCash)
    assert names.ORDER_ACCEPTED in order.updates
    assert {names.ORDER_STATE, names.ORDER_RETURN_CONTEXT} <= set(order.queries)
    assert names.ORDER_UPDATED in order.signals


def _imports_any(path: Path, names: set[str]) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in names for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in names:
            return True
    return False


def test_only_the_tryton_bootstrap_imports_trytond() -> None:
    """The platform talks to Tryton over the network like any cloud ERP: only the scripts run
    inside trytond's own process (set-up, and its one-request-at-a-time server for SQLite) may
    import trytond or proteus."""
    found = [
        path.relative_to(ROOT).as_posix()
        for paths in _sources().values()
        for path in paths
        if _imports_any(path, {"trytond", "proteus"})
    ]
    assert sorted(found) == ["services/tryton_bootstrap.py", "services/tryton_serve.py"]
