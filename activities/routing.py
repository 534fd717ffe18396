"""Which adapter serves which system: the builtin (embedded default) ones, the Shopify Admin API
for the "shopify" channel when RETAIL_SHOPIFY_ADMIN_URL is set, and the polled channels ("amazon"
with RETAIL_AMAZON_CLIENT_ID, "adobe_commerce" with RETAIL_ADOBE_COMMERCE_URL) read and told over
their APIs, with what a vendor's API does not take recorded by the builtin channel
(``adapters/channels/polled.py`` says which operation goes where).

Vendor adapters plug in here by configuration; workflows never know which one runs.
"""

from __future__ import annotations

import httpx

from activities.orders import Adapters
from adapters.address.builtin import BuiltinAddressCheck
from adapters.carrier.builtin import BuiltinCarrier
from adapters.channels.adobe_commerce import AdobeCommerceClient, AdobeCommerceReader, AdobeCommerceWriter
from adapters.channels.amazon import AmazonClient, AmazonReader, AmazonWriter
from adapters.channels.builtin import BuiltinChannel
from adapters.channels.polled import PolledChannel
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


def polled_channel(settings: Settings, store: Store, name: str) -> PolledChannel | None:
    """A polled channel's reader and writers over its API when it is configured, else None. One
    HTTP client (and one vendor client: tokens, rate headers) serves both sides and lives as long
    as the adapter (``Adapters`` keeps one per channel)."""
    timeout = settings.poll_request_timeout_s
    recorded = BuiltinChannel(store, FaultInjector("channel", settings.faults.channel), channel=name)
    if name == "amazon" and settings.amazon_client_id:
        client = AmazonClient(
            settings.amazon_endpoint,
            list(settings.amazon_marketplace_ids),
            settings.amazon_client_id,
            settings.amazon_client_secret.get_secret_value(),
            settings.amazon_refresh_token.get_secret_value(),
            httpx.AsyncClient(timeout=timeout),
            lwa_url=settings.amazon_lwa_url,
            restricted_data=settings.amazon_restricted_data,
        )
        writer = AmazonWriter(
            client, name, seller_id=settings.amazon_seller_id, product_type=settings.amazon_product_type
        )
        return PolledChannel(
            AmazonReader(client, name),
            recorded,
            fulfillment=writer,
            inventory=writer if writer.writes_inventory else None,
        )
    if name == "adobe_commerce" and settings.adobe_commerce_url:
        token = settings.adobe_commerce_token.get_secret_value()
        http = httpx.AsyncClient(timeout=timeout)
        ac = AdobeCommerceClient(settings.adobe_commerce_url, settings.adobe_commerce_store_code, token, http)
        ac_writer = AdobeCommerceWriter(ac, name, notify_customer=settings.adobe_commerce_notify_customer)
        return PolledChannel(
            AdobeCommerceReader(ac, name), recorded, fulfillment=ac_writer, cancellation=ac_writer
        )
    return None


def channel_adapter(settings: Settings, store: Store, name: str) -> ChannelPort:
    """The Shopify Admin API for "shopify" when it is configured, a polled channel over its API
    when configured, else the builtin channel."""
    polled = polled_channel(settings, store, name) if name in ("amazon", "adobe_commerce") else None
    if polled is not None:
        return polled
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
        erp=BuiltinErp(
            store, FaultInjector("erp", f.erp), never_allocate_from=settings.shopify_store_locations.values()
        ),
        address=BuiltinAddressCheck(),
        tax=BuiltinTax(store, FaultInjector("tax", f.tax)),
        payment=BuiltinPayment(store, FaultInjector("payment", f.payment)),
        wms=BuiltinWms(store, FaultInjector("wms", f.wms)),
        carrier=BuiltinCarrier(store, FaultInjector("carrier", f.carrier)),
        channel_factory=lambda name: channel_adapter(settings, store, name),
        ledger=InventoryLedger(store, store_shelves=settings.shopify_store_locations.values()),
        store=store,
        inventory_channels=list(settings.inventory_channels),
    )
