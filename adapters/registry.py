"""One registry for every kind of adapter: a vendor module registers a factory under its name,
configuration names which one serves (``RETAIL_ERP=builtin|tryton``, ``RETAIL_TAX``, ...), and
an unknown name fails at start with the names that are known.

Adding a vendor: one module that calls :func:`register` (and its name in ``VENDOR_MODULES``, or
an entry point in the ``retail_connect.adapters`` group for a package of its own), plus its
settings. Workflows never know which adapter runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal, TypeVar, get_args

from settings import Settings
from store.db import Store

Kind = Literal["erp", "tax", "payment", "wms", "carrier", "channel"]
KINDS: tuple[Kind, ...] = get_args(Kind)

# The modules that register the adapters shipped with the platform.
VENDOR_MODULES = (
    "adapters.erp.builtin",
    "adapters.erp.tryton.erp",
    "adapters.tax.builtin",
    "adapters.payment.builtin",
    "adapters.wms.builtin",
    "adapters.carrier.builtin",
    "adapters.channels.factories",
)
ENTRY_POINT_GROUP = "retail_connect.adapters"


@dataclass(frozen=True)
class AdapterContext:
    """What a factory may use: the settings, the store, and for a channel its name."""

    settings: Settings
    store: Store
    channel: str = ""


Factory = Callable[[AdapterContext], Any]
F = TypeVar("F", bound=Factory)
_FACTORIES: dict[Kind, dict[str, Factory]] = {k: {} for k in KINDS}
_loaded = False


class UnknownAdapterError(ValueError):
    """Configuration names an adapter nobody registered."""


def register(kind: Kind, name: str) -> Callable[[F], F]:
    """Register ``factory`` as the ``kind`` adapter called ``name`` (a decorator)."""

    def deco(factory: F) -> F:
        known = _FACTORIES[kind].get(name)
        if known is not None and known is not factory:
            raise ValueError(f"two {kind} adapters are registered as {name!r}")
        _FACTORIES[kind][name] = factory
        return factory

    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for module in VENDOR_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()
    _loaded = True


def known(kind: Kind) -> list[str]:
    _load()
    return sorted(_FACTORIES[kind])


def factory(kind: Kind, name: str) -> Factory:
    """The factory registered for ``name``; an unknown name raises UnknownAdapterError that
    lists the known ones."""
    _load()
    found = _FACTORIES[kind].get(name)
    if found is None:
        raise UnknownAdapterError(
            f"no {kind} adapter is called {name!r} (RETAIL_{kind.upper()}); known: {', '.join(known(kind))}"
        )
    return found


def create(kind: Kind, name: str, ctx: AdapterContext) -> Any:
    return factory(kind, name)(ctx)
