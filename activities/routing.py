"""Which adapter serves which system, by configuration (``adapters/registry.py``):
``RETAIL_ERP``, ``RETAIL_TAX``, ``RETAIL_PAYMENT``, ``RETAIL_WMS``, ``RETAIL_CARRIER`` name the
adapter of each kind (``builtin`` by default), ``RETAIL_CHANNEL_ADAPTERS`` the adapter of a
channel (else the one its configuration implies). Every name is checked here, at start: an
unknown one stops the worker with the list of known ones.

Vendor adapters plug in here by configuration; workflows never know which one runs.
"""

from __future__ import annotations

from activities.orders import Adapters
from adapters import registry
from adapters.channels.factories import default_adapter
from adapters.channels.port import ChannelPort
from adapters.erp.inventory import InventoryLedger
from adapters.registry import AdapterContext
from settings import Settings
from store.db import Store


def channel_adapter(settings: Settings, store: Store, name: str) -> ChannelPort:
    """The adapter configured for channel ``name``."""
    port: ChannelPort = registry.create(
        "channel", default_adapter(settings, name), AdapterContext(settings, store, channel=name)
    )
    return port


def check_names(settings: Settings) -> None:
    """Every configured adapter name is a registered one (UnknownAdapterError otherwise)."""
    for kind in ("erp", "tax", "payment", "wms", "carrier"):
        registry.factory(kind, getattr(settings, kind))
    for name in settings.channel_adapters.values():
        registry.factory("channel", name)


def build_adapters(settings: Settings, store: Store) -> Adapters:
    check_names(settings)
    ctx = AdapterContext(settings, store)
    return Adapters(
        erp=registry.create("erp", settings.erp, ctx),
        tax=registry.create("tax", settings.tax, ctx),
        payment=registry.create("payment", settings.payment, ctx),
        wms=registry.create("wms", settings.wms, ctx),
        carrier=registry.create("carrier", settings.carrier, ctx),
        channel_factory=lambda name: channel_adapter(settings, store, name),
        ledger=InventoryLedger(store, store_shelves=settings.shopify_store_locations.values()),
        store=store,
        inventory_channels=list(settings.inventory_channels),
    )


async def start_adapters(adapters: Adapters) -> None:
    """Let each adapter that talks to a server check it before the worker takes work: log in,
    read its setup (the Tryton ERP: wrong credentials stop the worker here, with the reason)."""
    for port in (adapters.erp, adapters.tax, adapters.payment, adapters.wms, adapters.carrier):
        start = getattr(port, "start", None)
        if start is not None:
            await start()
