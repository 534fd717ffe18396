"""The channel adapters shipped with the platform, registered by name: ``builtin`` (orders,
fulfilments and stock recorded in the store), ``shopify_admin`` (the Shopify Admin API),
``amazon`` and ``adobe_commerce`` (polled channels read and told over their APIs, with what a
vendor's API does not take recorded by the builtin channel: ``adapters/channels/polled.py``).

Which adapter serves a channel: ``RETAIL_CHANNEL_ADAPTERS`` names it (``{"shopify":
"shopify_admin"}``), else :func:`default_adapter` picks by what is configured.
"""

from __future__ import annotations

import httpx

from adapters.channels.adobe_commerce import AdobeCommerceClient, AdobeCommerceReader, AdobeCommerceWriter
from adapters.channels.amazon import AmazonClient, AmazonReader, AmazonWriter
from adapters.channels.builtin import BuiltinChannel
from adapters.channels.polled import PolledChannel
from adapters.channels.shopify.admin import ShopifyAdminChannel
from adapters.faults import FaultInjector
from adapters.registry import AdapterContext, register
from settings import Settings


def default_adapter(settings: Settings, channel: str) -> str:
    """The Shopify Admin API for "shopify" when its URL is set, a polled channel over its API when
    its credentials are, else the builtin channel."""
    named = settings.channel_adapters.get(channel)
    if named:
        return named
    if channel == "shopify" and settings.shopify_admin_url:
        return "shopify_admin"
    if channel == "amazon" and settings.amazon_client_id:
        return "amazon"
    if channel == "adobe_commerce" and settings.adobe_commerce_url:
        return "adobe_commerce"
    return "builtin"


@register("channel", "builtin")
def builtin(ctx: AdapterContext) -> BuiltinChannel:
    return BuiltinChannel(
        ctx.store, FaultInjector("channel", ctx.settings.faults.channel), channel=ctx.channel
    )


@register("channel", "shopify_admin")
def shopify_admin(ctx: AdapterContext) -> ShopifyAdminChannel:
    s = ctx.settings
    if not s.shopify_admin_url:
        raise ValueError("the shopify_admin channel adapter needs RETAIL_SHOPIFY_ADMIN_URL")
    return ShopifyAdminChannel(
        s.shopify_admin_url,
        s.shopify_access_token.get_secret_value(),
        s.shopify_api_version,
        name=ctx.channel,
        inventory_location=s.shopify_inventory_location,
        inventory_api=s.shopify_inventory_api,
    )


@register("channel", "amazon")
def amazon(ctx: AdapterContext) -> PolledChannel:
    """Amazon's SP-API. One HTTP client (and one vendor client: tokens, rate headers) serves the
    reader and the writer and lives as long as the adapter."""
    s = ctx.settings
    if not s.amazon_client_id:
        raise ValueError("the amazon channel adapter needs RETAIL_AMAZON_CLIENT_ID")
    client = AmazonClient(
        s.amazon_endpoint,
        list(s.amazon_marketplace_ids),
        s.amazon_client_id,
        s.amazon_client_secret.get_secret_value(),
        s.amazon_refresh_token.get_secret_value(),
        httpx.AsyncClient(timeout=s.poll_request_timeout_s),
        lwa_url=s.amazon_lwa_url,
        restricted_data=s.amazon_restricted_data,
    )
    writer = AmazonWriter(
        client, ctx.channel, seller_id=s.amazon_seller_id, product_type=s.amazon_product_type
    )
    return PolledChannel(
        AmazonReader(client, ctx.channel),
        builtin(ctx),
        fulfillment=writer,
        inventory=writer if writer.writes_inventory else None,
    )


@register("channel", "adobe_commerce")
def adobe_commerce(ctx: AdapterContext) -> PolledChannel:
    s = ctx.settings
    if not s.adobe_commerce_url:
        raise ValueError("the adobe_commerce channel adapter needs RETAIL_ADOBE_COMMERCE_URL")
    http = httpx.AsyncClient(timeout=s.poll_request_timeout_s)
    ac = AdobeCommerceClient(
        s.adobe_commerce_url, s.adobe_commerce_store_code, s.adobe_commerce_token.get_secret_value(), http
    )
    writer = AdobeCommerceWriter(ac, ctx.channel, notify_customer=s.adobe_commerce_notify_customer)
    return PolledChannel(
        AdobeCommerceReader(ac, ctx.channel), builtin(ctx), fulfillment=writer, cancellation=writer
    )
