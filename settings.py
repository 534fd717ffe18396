"""Configuration: environment variables with the RETAIL_ prefix (and DATABASE_URL).

Secrets come only from the environment (or files mounted into it) and are never logged.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Channels whose fulfillments reach the platform (Shopify fulfillments/create and /update).
CHANNELS_REPORTING_FULFILLMENTS = frozenset({"shopify"})


def _secret_list(value: Any) -> Any:
    """Old webhook secrets from the environment: a JSON list or a comma-separated string."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# Secrets still accepted during a rotation (RETAIL_<KIND>_WEBHOOK_SECRETS_OLD='old1,old2' or '["old1"]').
OldSecrets = Annotated[list[SecretStr], NoDecode, BeforeValidator(_secret_list)]


class FaultSettings(BaseSettings):
    """Fault injection for one builtin adapter (see docs/faults.md)."""

    model_config = SettingsConfigDict(extra="forbid")

    transient_rate: float = Field(
        0.0, ge=0, le=1, description="share of calls failing with a transient error"
    )
    rate_limit_rate: float = Field(0.0, ge=0, le=1, description="share of calls answered 'rate limited'")
    retry_after_s: float = Field(1.0, ge=0, description="the delay a rate-limited call asks for")
    latency_ms: int = Field(0, ge=0, description="added to every call")
    timeout_rate: float = Field(0.0, ge=0, le=1, description="share of calls that hang past their timeout")
    timeout_s: float = Field(30.0, ge=0, description="how long a 'timed out' call hangs")
    reject: list[str] = Field(
        default_factory=list,
        description="permanent rejections by rule, 'field=value' (e.g. 'sku=BAD-1', 'operation=capture')",
    )
    response_delay_ms: int = Field(
        0, ge=0, description="after the call took effect, delay the answer (a slow or lost response)"
    )
    response_delay_operations: list[str] = Field(
        default_factory=list, description="operations the response delay applies to; empty: all"
    )
    seed: int | None = Field(None, description="fixed seed for reproducible fault sequences")


class Faults(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid")

    erp: FaultSettings = FaultSettings()
    tax: FaultSettings = FaultSettings()
    payment: FaultSettings = FaultSettings()
    wms: FaultSettings = FaultSettings()
    carrier: FaultSettings = FaultSettings()
    channel: FaultSettings = FaultSettings()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RETAIL_", env_nested_delimiter="__", env_file=None, extra="ignore"
    )

    data_dir: Path = Field(Path(".data"), description="where the SQLite store and Temporal's database live")
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "RETAIL_DATABASE_URL"),
        description="SQLAlchemy URL; default: SQLite under data_dir",
    )

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    task_queue: str = "retail-orders"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_api_url: str | None = Field(
        None, description="where simulators post webhooks; default from host/port"
    )

    # The platform's own HTTP APIs (/v1/...): API keys with scopes (docs/api-keys.md). "off" is
    # for a laptop only: it is refused unless the API listens on a loopback address.
    api_auth: Literal["keys", "off"] = Field("keys", description="keys (default) or off (loopback only)")
    api_key_cache_s: float = Field(
        5.0, ge=0, description="a verified key is trusted this long; a revocation takes at most this"
    )
    api_idempotency_retention_s: float = Field(
        24 * 3600.0, gt=0, description="Idempotency-Key records are kept (and replayed) this long"
    )
    api_idempotency_lock_s: float = Field(
        60.0, gt=0, description="a request in progress holds its Idempotency-Key this long at most"
    )

    shopify_webhook_secret: SecretStr = SecretStr("shpss_sandbox_secret")
    wms_webhook_secret: SecretStr = SecretStr("wms_sandbox_secret")
    carrier_webhook_secret: SecretStr = SecretStr("carrier_sandbox_secret")

    # Webhook secret rotation: the previous secrets stay valid alongside the current one until
    # the given time (aware, or taken as UTC); without a time they stay valid until removed.
    shopify_webhook_secrets_old: OldSecrets = Field(default_factory=list)
    shopify_webhook_old_secrets_until: datetime | None = None
    wms_webhook_secrets_old: OldSecrets = Field(default_factory=list)
    wms_webhook_old_secrets_until: datetime | None = None
    carrier_webhook_secrets_old: OldSecrets = Field(default_factory=list)
    carrier_webhook_old_secrets_until: datetime | None = None

    # Sales channels routed through the same ingress (docs/adding-a-channel.md). Blank secrets
    # verify nothing: a channel's deliveries are refused (401) until its secret is configured.
    woocommerce_webhook_secret: SecretStr = Field(
        SecretStr(""), description="the WooCommerce webhook's secret, as WooCommerce shows it"
    )
    woocommerce_webhook_secrets_old: OldSecrets = Field(default_factory=list)
    woocommerce_webhook_old_secrets_until: datetime | None = None
    bigcommerce_webhook_secret: SecretStr = Field(
        SecretStr(""), description="the BigCommerce app's client secret (or a whsec_... secret)"
    )
    bigcommerce_webhook_secrets_old: OldSecrets = Field(default_factory=list)
    bigcommerce_webhook_old_secrets_until: datetime | None = None
    bigcommerce_api_url: str = "https://api.bigcommerce.com"
    bigcommerce_store_hash: str = Field("", description="the store whose orders are fetched")
    bigcommerce_access_token: SecretStr = Field(SecretStr(""), description="X-Auth-Token, orders read scope")
    bigcommerce_request_timeout_s: float = Field(5.0, gt=0, description="one BigCommerce API request")
    bigcommerce_fetch_timeout_s: float = Field(
        20.0, gt=0, description="fetching one order and its sub-resources, all requests together"
    )

    # Webhook ingress: every accepted delivery is kept in the inbox before it is acknowledged,
    # then relayed to Temporal (inline when possible, else by the relay loop with backoff).
    webhook_max_bytes: int = Field(1024 * 1024, gt=0, description="larger deliveries are refused (413)")
    order_api_wait_s: float = Field(
        10.0, gt=0, description="POST /v1/orders?wait=accepted waits this long for the ERP's acceptance"
    )
    webhook_inline_relay_timeout_s: float = Field(
        2.0, ge=0, description="how long a webhook request waits for Temporal before answering 'queued'"
    )
    webhook_relay_timeout_s: float = Field(10.0, gt=0, description="one relay attempt (start or signal)")
    webhook_relay_interval_s: float = Field(1.0, gt=0, description="how often the relay loop looks")
    webhook_relay_retry_initial_s: float = Field(1.0, gt=0)
    webhook_relay_retry_max_s: float = Field(60.0, gt=0)
    webhook_relay_lease_s: float = Field(
        60.0, gt=0, description="a claimed inbox row is left to its relay for this long"
    )
    webhook_relay_early_event_s: float = Field(
        900.0,
        ge=0,
        description="a channel's edit or fulfillment for an order not started yet is retried this long"
        " (the order's own webhook may come later) before it is rejected",
    )
    webhook_relay_batch: int = Field(100, gt=0)
    webhook_relay_concurrency: int = Field(10, gt=0, description="workflows relayed to at once")

    # Workflow timings: short in tests, realistic in production.
    activity_timeout_s: float = 30.0
    activity_max_attempts: int = Field(8, description="transient retries before a step needs an operator")
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    shipping_sla_s: float = Field(2 * 24 * 3600.0, description="escalate orders not shipped within this")
    fulfilled_by_channel: list[str] = Field(
        default_factory=list,
        description='channels that ship their own orders, e.g. ["shopify"]: nothing is released to a '
        "warehouse; the channel's fulfillments (Shopify fulfillments/create) are billed as the shipments",
    )

    @field_validator("fulfilled_by_channel")
    @classmethod
    def _channels_that_report_fulfillments(cls, value: list[str]) -> list[str]:
        # Another channel's orders would wait for fulfillments that never reach the platform.
        unknown = sorted(set(value) - CHANNELS_REPORTING_FULFILLMENTS)
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: only {', '.join(sorted(CHANNELS_REPORTING_FULFILLMENTS))} report"
                " their fulfillments to the platform"
            )
        return value

    # Builtin warehouse and carrier simulators.
    wms_pick_delay_s: float = 2.0
    wms_ship_delay_s: float = 2.0
    carrier_transit_delay_s: float = 3.0
    carrier_delivery_delay_s: float = 3.0
    simulator_poll_s: float = 0.5
    wms_return_receipt_delay_s: float = Field(
        5.0, ge=0, description="the builtin warehouse posts a return's receipt this long after expecting it"
    )
    wms_damaged_return_skus: list[str] = Field(
        default_factory=list, description="SKUs the builtin warehouse reports as damaged on return receipts"
    )

    default_location: str = "WH-EAST"
    address_check: bool = Field(
        True, description="check ship-to addresses first; failures wait in NeedsAttention for approval"
    )
    hold_above: dict[str, Decimal] = Field(
        default_factory=dict,
        description='orders totalling at least this (per currency, e.g. {"USD": "2000"}) wait for approval',
    )

    # Returns (ReturnToRefund): the return policy, per channel where it differs.
    returns_window_days: float = Field(30.0, gt=0, description="returns accepted until N days after delivery")
    returns_window_days_by_channel: dict[str, float] = Field(
        default_factory=dict, description='per-channel window, e.g. {"amazon": 30, "shopify": 60}'
    )
    returns_receipt_timeout_s: float = Field(
        30 * 24 * 3600.0, gt=0, description="an RMA not received within this expires (the channel is told)"
    )
    returns_refund_on_first_scan: bool = Field(
        False, description="refund when the carrier first scans the return, not on the warehouse's receipt"
    )
    returns_refund_shipping: Literal["never", "when_fully_returned", "always"] = Field(
        "when_fully_returned", description="when a return gives back the order's shipping"
    )
    returns_label: bool = Field(True, description="buy a prepaid return label for warehouse returns")

    # Which adapter serves each kind of system (adapters/registry.py); an unknown name stops the
    # worker at start with the known ones.
    erp: str = Field("builtin", description="the ERP adapter: builtin or tryton")
    tax: str = Field("builtin", description="the tax engine adapter")
    payment: str = Field("builtin", description="the payment adapter")
    wms: str = Field("builtin", description="the warehouse adapter")
    carrier: str = Field("builtin", description="the carrier adapter")
    channel_adapters: dict[str, str] = Field(
        default_factory=dict,
        description='a channel\'s adapter, e.g. {"shopify": "shopify_admin"}; default by what is configured',
    )

    # Tryton as the ERP (docs/erp-tryton.md): JSON-RPC at tryton_url. `retail dev` starts trytond
    # there (on a database of its own under data_dir) unless something already listens.
    tryton_url: str = Field("http://127.0.0.1:8128", description="Tryton's web address (JSON-RPC)")
    tryton_database: str = Field("retail", description="the Tryton database the platform books in")
    tryton_user: str = "admin"
    tryton_password: SecretStr = Field(SecretStr("admin"), description="the Tryton user's password")
    tryton_database_url: str | None = Field(
        None, description="postgresql://user@host:5432/ for the trytond the project starts; default SQLite"
    )
    tryton_template_dir: Path = Field(
        Path(".data/tryton-templates"),
        description="where the project keeps its Tryton template databases (kept across data dirs)",
    )
    tryton_timeout_s: float = Field(30.0, gt=0, description="one JSON-RPC call's timeout")
    tryton_max_concurrency: int = Field(8, ge=1, description="JSON-RPC calls in flight at once per worker")
    tryton_processes: int = Field(
        2, ge=1, description="trytond processes the project starts on PostgreSQL (SQLite serves with one)"
    )
    tryton_queue_worker: bool = Field(
        True, description="on PostgreSQL, a trytond-worker beside them runs Tryton's queued tasks"
    )
    tryton_company_currency: str = "USD"
    erp_stock_sync_every_s: float = Field(
        60.0, gt=0, description="how often stock moved inside the ERP (Tryton) is mirrored into the ledger"
    )

    # Inventory sync: one long-running workflow per channel pushes sellable stock.
    inventory_channels: list[str] = Field(
        default_factory=lambda: ["shopify"], description="channels whose stock the platform keeps in sync"
    )
    inventory_journal_channel_sales: bool = Field(
        False,
        description="on a compare-and-set mismatch, journal the channel's drop as a channel sale (only for "
        "channels whose sales never reach the platform as orders, e.g. POS-only stock)",
    )
    inventory_debounce_s: float = Field(1.0, description="coalesce bursts of stock changes this long")
    inventory_poll_s: float = Field(60.0, description="look for changes even without a nudge")

    # The Shopify Admin API (docs/sandbox-storefront.md): when set, the "shopify" channel is that
    # store (a real one, or the sandbox storefront) instead of the builtin channel.
    shopify_admin_url: str | None = Field(None, description="https://{shop}.myshopify.com or the sandbox")
    shopify_access_token: SecretStr = Field(SecretStr(""), description="X-Shopify-Access-Token")
    shopify_api_version: str = "2025-07"
    shopify_fetch_timeout_s: float = Field(
        20.0, gt=0, description="the relay's calls to the Admin API (a doorbell's order, a store item's SKU)"
    )
    shopify_refetch_orders: bool = Field(
        False,
        description="webhook as doorbell: the relay fetches each new order from the Admin API before "
        "starting it (for payloads that may be stale or trimmed); needs RETAIL_SHOPIFY_ADMIN_URL",
    )
    shopify_inventory_location: str | None = Field(
        None, description="the Shopify location sellable stock is published at (and read back from)"
    )
    shopify_inventory_api: Literal["graphql", "rest"] = Field(
        "graphql",
        description="graphql: inventorySetQuantities with compare-and-set and @idempotent; "
        "rest: inventory_levels/set.json, absolute and blind (the fallback)",
    )
    # The channel's own stores (docs/inventory.md, "Stores on Shopify POS"): Shopify location id ->
    # ledger location. Shopify POS owns their on-hand; each inventory_levels/update there becomes a
    # ledger cycle count. Updates at any other location are acknowledged and ignored.
    shopify_store_locations: dict[str, str] = Field(
        default_factory=dict,
        description="Shopify location id -> ledger location of stores whose stock Shopify POS keeps, "
        'e.g. {"71000000003": "STORE-1"}',
    )

    # Reconciliation (docs/reconciliation.md): Temporal Schedules compare the systems.
    reconcile_channels: list[str] = Field(
        default_factory=lambda: ["shopify"], description="channels whose orders and stock are reconciled"
    )
    reconcile_schedules: bool = Field(True, description="create/update the schedules at worker start")
    reconcile_schedule_prefix: str = Field("reconcile", description="schedule and workflow id prefix")
    reconcile_orders_every_s: float = Field(900.0, gt=0)
    reconcile_inventory_every_s: float = Field(3600.0, gt=0)
    reconcile_settlement_every_s: float = Field(86400.0, gt=0)
    reconcile_catchup_window_s: float = Field(
        3600.0, gt=0, description="runs missed while Temporal was down are made up within this"
    )
    reconcile_orders_overlap_s: float = Field(
        300.0, ge=0, description="each orders window starts this long before the previous one ended"
    )
    reconcile_settlement_overlap_s: float = Field(6 * 3600.0, ge=0)
    reconcile_lookback_s: float = Field(86400.0, gt=0, description="the first window (no watermark yet)")
    reconcile_settle_s: float = Field(
        120.0, ge=0, description="the newest seconds are left to webhooks and steps in flight"
    )
    reconcile_page_size: int = Field(250, gt=0, le=250)
    reconcile_pages_per_activity: int = Field(20, gt=0, description="pages one activity stages")

    # Polled channels (docs/adding-a-channel.md, "A polling channel"): no push, so a Temporal
    # Schedule per channel lists the orders updated in an overlapping window and imports them.
    poll_channels: list[str] = Field(
        default_factory=list, description='channels imported by polling, e.g. ["amazon", "adobe_commerce"]'
    )
    poll_schedule_prefix: str = Field("poll", description="schedule and workflow id prefix")
    poll_every_s: float = Field(300.0, gt=0, description="how often each polled channel is read")
    poll_every_s_by_channel: dict[str, float] = Field(
        default_factory=dict, description='per-channel interval, e.g. {"amazon": 600}'
    )
    poll_overlap_s: float = Field(
        600.0, ge=0, description="each window starts this long before the previous one ended"
    )
    poll_settle_s: float = Field(
        150.0, ge=0, description="the newest seconds are left to the next run (Amazon: at least 120)"
    )
    poll_lookback_s: float = Field(86400.0, gt=0, description="the first window (no watermark yet)")
    poll_page_size: int = Field(100, gt=0, le=300, description="orders per listing page")
    poll_request_timeout_s: float = Field(15.0, gt=0, description="one vendor API request")

    # Amazon SP-API (shared/contracts/amazon_sp_api.md): Login with Amazon credentials of one seller.
    amazon_endpoint: str = Field("https://sellingpartnerapi-na.amazon.com", description="the region's host")
    amazon_lwa_url: str = "https://api.amazon.com/auth/o2/token"
    amazon_restricted_data: bool = Field(
        True,
        description="ask for a Restricted Data Token (buyer name, street, phone: the app needs the "
        "Direct-to-Consumer Delivery role); without one, orders come without that PII",
    )
    amazon_marketplace_ids: list[str] = Field(default_factory=lambda: ["ATVPDKIKX0DER"])
    amazon_client_id: str = Field("", description="LWA client id; empty: the amazon channel is builtin")
    amazon_client_secret: SecretStr = SecretStr("")
    amazon_refresh_token: SecretStr = Field(SecretStr(""), description="the seller's Atzr|... token")
    amazon_seller_id: str = Field(
        "",
        description="the seller's selling_partner_id (Listings' sellerId); empty: MFN stock is not pushed "
        "to Amazon, only recorded",
    )
    amazon_product_type: str = Field(
        "PRODUCT", description="productType sent with quantity-only listing patches"
    )

    # Adobe Commerce / Magento 2 REST (shared/contracts/bigcommerce_adobe_commerce.md).
    adobe_commerce_url: str | None = Field(None, description="https://{host}; none: the channel is builtin")
    adobe_commerce_store_code: str = "default"
    adobe_commerce_token: SecretStr = Field(SecretStr(""), description="integration access token (Bearer)")
    adobe_commerce_notify_customer: bool = Field(
        False, description="Magento emails the customer about each shipment the platform creates"
    )

    worker_metrics_address: str = Field(
        "127.0.0.1:9464",
        description="host:port of the worker's Prometheus /metrics (SDK and business metrics); empty: off",
    )

    # Tracing (docs/observability.md): OpenTelemetry spans from the API through Temporal to each
    # activity. Off by default; "console" prints spans, "otlp" sends them over OTLP/HTTP.
    tracing: Literal["off", "console", "otlp"] = Field("off", description="where spans go; off: no tracer")
    tracing_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces; "
        "default: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT or http://localhost:4318/v1/traces",
    )
    tracing_service_name: str = Field("retail-connect", description="the resource's service.name")

    faults: Faults = Faults()

    @model_validator(mode="after")
    def _store_locations(self) -> Self:
        """Refuse store locations that cannot be right: see :func:`store_location_errors`."""
        errors = store_location_errors(self.shopify_store_locations, self.shopify_inventory_location)
        if errors:
            raise ValueError("RETAIL_SHOPIFY_STORE_LOCATIONS: " + "; ".join(errors))
        return self

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'retail.db').resolve()}"

    @property
    def api_url(self) -> str:
        return self.public_api_url or f"http://{self.api_host}:{self.api_port}"


def store_location_errors(stores: dict[str, str], published_at: str | None) -> list[str]:
    """What is wrong with a Shopify store-location mapping, as far as the settings can tell.

    Keys must be Shopify location ids and values ledger location names (at most 100 characters,
    each named once: two Shopify locations counting into one ledger position would overwrite each
    other's counts). The location the platform publishes stock at must not be a store: its
    inventory_levels/update deliveries are the platform's own pushes (and web orders), and taking
    them for counts would feed the ledger its own numbers. That location is a Shopify location
    name (the adapter looks names up) or an id; a name is taken to be the ledger name it maps to,
    as the Shopify adapter names locations."""
    errors: list[str] = []
    seen: dict[str, str] = {}
    for shopify_id, ledger in stores.items():
        if not shopify_id.isascii() or not shopify_id.isdigit():
            errors.append(f"key {shopify_id!r} is not a Shopify location id (digits)")
        name = ledger.strip()
        if not name or len(name) > 100 or name != ledger:
            errors.append(f"location {shopify_id} maps to {ledger!r}, not a ledger location name")
        elif name in seen:
            errors.append(f"locations {seen[name]} and {shopify_id} both map to {name!r}")
        seen.setdefault(name, shopify_id)
    if published_at is not None:
        published = published_at.strip()
        if published in stores or published in stores.values():
            errors.append(
                f"{published!r} is also RETAIL_SHOPIFY_INVENTORY_LOCATION, where the platform publishes "
                "sellable stock: its level changes are the platform's own pushes and web orders, not "
                "store counts; map only locations whose on-hand Shopify POS keeps"
            )
    return errors


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
