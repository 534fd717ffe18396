"""Which adapter serves which system: the builtin (embedded default) ones, and the Shopify Admin
API for the "shopify" channel when RETAIL_SHOPIFY_ADMIN_URL is set.

Vendor adapters plug in here by configuration; workflows never know which one runs.
"""

from __future__ import annotations

from activities.orders import Adapters
from adapters.address.builtin import BuiltinAddressCheck
from adapters.carrier.builtin import BuiltinCarrier
from adapters.channels.builtin import BuiltinChannel
from adapters.channels.port import ChannelPort
from adapters.channels.shopify.admin import ShopifyAdminChannel
from adapters.erp.builtin import BuiltinErp
from adapters.erp.inventory import InventoryLedger
from adapters.faults import FaultInjector
from adapters.payment.builtin import BuiltinPayment
from adapters.tax.builtin import BuiltinTax
from adapters.wms.builtin import BuiltinWms
from settings import Settings
from store.db import Store


def channel_adapter(settings: Settings, store: Store, name: str) -> ChannelPort:
    """The Shopify Admin API for "shopify" when it is configured, else the builtin channel."""
    if name == "shopify" and settings.shopify_admin_url:
        return ShopifyAdminChannel(
            settings.shopify_admin_url,
            settings.shopify_access_token.get_secret_value(),
            settings.shopify_api_version,
            name=name,
            inventory_location=settings.shopify_inventory_location,
            inventory_api=settings.shopify_inventory_api,
        )
    return BuiltinChannel(store, FaultInjector("channel", settings.faults.channel), channel=name)


def build_adapters(settings: Settings, store: Store) -> Adapters:
    f = settings.faults
    return Adapters(
        erp=BuiltinErp(store, FaultInjector("erp", f.erp)),
        address=BuiltinAddressCheck(),
        tax=BuiltinTax(store, FaultInjector("tax", f.tax)),
        payment=BuiltinPayment(store, FaultInjector("payment", f.payment)),
        wms=BuiltinWms(store, FaultInjector("wms", f.wms)),
        carrier=BuiltinCarrier(store, FaultInjector("carrier", f.carrier)),
        channel_factory=lambda name: channel_adapter(settings, store, name),
        ledger=InventoryLedger(store),
        store=store,
        inventory_channels=list(settings.inventory_channels),
    )
