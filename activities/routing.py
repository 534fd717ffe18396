"""Which adapter serves which system: the builtin (embedded default) ones for now.

Vendor adapters plug in here by configuration; workflows never know which one runs.
"""

from __future__ import annotations

from activities.orders import Adapters
from adapters.carrier.builtin import BuiltinCarrier
from adapters.channels.builtin import BuiltinChannel
from adapters.erp.builtin import BuiltinErp
from adapters.erp.inventory import InventoryLedger
from adapters.faults import FaultInjector
from adapters.payment.builtin import BuiltinPayment
from adapters.tax.builtin import BuiltinTax
from adapters.wms.builtin import BuiltinWms
from settings import Settings
from store.db import Store


def build_adapters(settings: Settings, store: Store) -> Adapters:
    f = settings.faults
    return Adapters(
        erp=BuiltinErp(store, FaultInjector("erp", f.erp)),
        tax=BuiltinTax(store, FaultInjector("tax", f.tax)),
        payment=BuiltinPayment(store, FaultInjector("payment", f.payment)),
        wms=BuiltinWms(store, FaultInjector("wms", f.wms)),
        carrier=BuiltinCarrier(store, FaultInjector("carrier", f.carrier)),
        channel_factory=lambda name: BuiltinChannel(store, FaultInjector("channel", f.channel), channel=name),
        ledger=InventoryLedger(store),
        store=store,
        inventory_channels=list(settings.inventory_channels),
    )
