"""Order-to-cash activities: one per external call, each a thin wrapper over a port."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from temporalio import activity

from activities import names
from activities.errors import adapter_errors
from activities.inventory import Ledger
from adapters.address.builtin import BuiltinAddressCheck
from adapters.address.port import AddressCheckPort
from adapters.carrier.port import CarrierPort
from adapters.channels.port import ChannelPort
from adapters.erp.port import ErpPort
from adapters.payment.port import PaymentPort
from adapters.tax.port import TaxPort
from adapters.wms.port import WmsPort
from canonical import Address, Customer, FulfillmentRequest, InvoiceAmounts, Money, Order, Shipment
from canonical.documents import (
    AddressCheck,
    Authorization,
    CancelAck,
    Capture,
    ChannelAck,
    CustomerRef,
    FulfillmentAck,
    FulfillmentCancel,
    InvoiceAck,
    PaymentRefund,
    PaymentVoid,
    SalesOrderAck,
    TaxCommit,
    TaxQuote,
    TaxVoid,
)
from orchestration.inventory_models import sync_workflow_id
from store.db import Store

log = structlog.get_logger("activities")


@dataclass
class Adapters:
    """The adapters one worker routes to. Channels are looked up by name, with a fallback."""

    erp: ErpPort
    tax: TaxPort
    payment: PaymentPort
    wms: WmsPort
    carrier: CarrierPort
    channels: dict[str, ChannelPort] = field(default_factory=dict)
    channel_factory: Callable[[str], ChannelPort] | None = None
    # The stock ledger and the store holding what channels were told (inventory sync).
    ledger: Ledger | None = None
    store: Store | None = None
    # Channels whose inventory sync hears about stock the ERP reserved, shipped or released.
    inventory_channels: list[str] = field(default_factory=list)
    address: AddressCheckPort = field(default_factory=BuiltinAddressCheck)

    def channel(self, name: str) -> ChannelPort:
        """The configured adapter for the channel, else one made by the factory (and kept)."""
        port = self.channels.get(name)
        if port is None:
            if self.channel_factory is None:
                raise LookupError(f"no channel adapter for {name!r}")
            port = self.channels[name] = self.channel_factory(name)
        return port


async def stock_moved(adapters: Adapters) -> None:
    """The ERP reserved, shipped, released or restocked stock: nudge each channel's inventory
    sync so the channels hear within seconds. Best effort: a lost nudge is caught by the sync's
    poll. Call from an activity."""
    if not adapters.inventory_channels:
        return
    client = activity.client()
    for channel in adapters.inventory_channels:
        try:
            await client.get_workflow_handle(sync_workflow_id(channel)).signal("ledger_changed")
        except Exception as exc:  # the sync is not running (yet): its poll catches up
            bind_activity_logger().debug("inventory sync not nudged", channel=channel, error=str(exc))


def bind_activity_logger() -> structlog.stdlib.BoundLogger:
    """The activity's logger, bound to the order's correlation ID (put in structlog's context by
    the worker's CorrelationInterceptor, from the workflow's CorrelationId search attribute) and
    to the workflow, run and activity IDs: every line can be traced to the webhook delivery."""
    info = activity.info()
    return log.bind(  # type: ignore[no-any-return]
        correlation_id=structlog.contextvars.get_contextvars().get("correlation_id"),
        workflow_id=info.workflow_id,
        run_id=info.workflow_run_id,
        activity=info.activity_type,
        activity_id=info.activity_id,
        attempt=info.attempt,
    )


class OrderActivities:
    def __init__(self, adapters: Adapters) -> None:
        self.a = adapters

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.check_address,
            self.resolve_customer,
            self.create_sales_order,
            self.allocate_backorders,
            self.update_sales_order,
            self.requote_tax,
            self.adjust_authorization,
            self.invoice_shipment,
            self.cancel_sales_order,
            self.quote_tax,
            self.commit_tax,
            self.void_tax,
            self.authorize_payment,
            self.capture_payment,
            self.void_payment,
            self.refund_payment,
            self.release_fulfillment,
            self.cancel_fulfillment,
            self.channel_fulfillment,
            self.channel_refund,
            self.channel_cancelled,
        ]

    # -- address --------------------------------------------------------------------
    @activity.defn(name=names.CHECK_ADDRESS)
    async def check_address(self, address: Address | None) -> AddressCheck:
        with adapter_errors():
            result = await self.a.address.check(address)
        bind_activity_logger().info("address checked", ok=result.ok, reasons=result.reasons)
        return result

    # -- ERP ------------------------------------------------------------------------
    @activity.defn(name=names.RESOLVE_CUSTOMER)
    async def resolve_customer(self, customer: Customer, address: Address | None) -> CustomerRef:
        with adapter_errors():
            ref = await self.a.erp.resolve_customer(customer, address)
        bind_activity_logger().info(
            "customer resolved", customer_id=ref.customer_id, matched_on=ref.matched_on
        )
        return ref

    @activity.defn(name=names.CREATE_SALES_ORDER)
    async def create_sales_order(self, order: Order, customer_id: str, key: str) -> SalesOrderAck:
        with adapter_errors():
            ack = await self.a.erp.create_sales_order(order, customer_id, key)
        # The workflow never imports adapters: it learns which ERP holds the order from here.
        ack = ack.model_copy(update={"backend": self.a.erp.name})
        bind_activity_logger().info(
            "sales order accepted", erp_order_id=ack.erp_order_id, created=ack.created, backend=ack.backend
        )
        await self._stock_moved()
        return ack

    @activity.defn(name=names.UPDATE_SALES_ORDER)
    async def update_sales_order(self, erp_order_id: str, order: Order, key: str) -> SalesOrderAck:
        with adapter_errors():
            ack = await self.a.erp.update_sales_order(erp_order_id, order, key)
        bind_activity_logger().info("sales order edited", erp_order_id=erp_order_id)
        await self._stock_moved()
        return ack.model_copy(update={"backend": self.a.erp.name})

    @activity.defn(name=names.ALLOCATE_BACKORDERS)
    async def allocate_backorders(self, erp_order_id: str) -> SalesOrderAck:
        with adapter_errors():
            ack = await self.a.erp.allocate_backorders(erp_order_id)
        await self._stock_moved()
        return ack

    @activity.defn(name=names.INVOICE_SHIPMENT)
    async def invoice_shipment(
        self, erp_order_id: str, shipment: Shipment, amounts: InvoiceAmounts, key: str
    ) -> InvoiceAck:
        with adapter_errors():
            ack = await self.a.erp.invoice_shipment(erp_order_id, shipment, amounts, key)
        bind_activity_logger().info("invoice posted", invoice_id=ack.invoice_id, total=str(ack.total))
        await self._stock_moved()
        return ack

    @activity.defn(name=names.CANCEL_SALES_ORDER)
    async def cancel_sales_order(self, erp_order_id: str, reason: str, key: str) -> CancelAck:
        with adapter_errors():
            ack = await self.a.erp.cancel_sales_order(erp_order_id, reason, key)
        await self._stock_moved()
        return ack

    async def _stock_moved(self) -> None:
        await stock_moved(self.a)

    # -- tax ------------------------------------------------------------------------
    @activity.defn(name=names.QUOTE_TAX)
    async def quote_tax(self, order: Order, document_code: str) -> TaxQuote:
        with adapter_errors():
            return await self.a.tax.quote(order, document_code)

    @activity.defn(name=names.REQUOTE_TAX)
    async def requote_tax(self, order: Order, document_code: str) -> TaxQuote:
        with adapter_errors():
            return await self.a.tax.requote(order, document_code)

    @activity.defn(name=names.COMMIT_TAX)
    async def commit_tax(self, document_code: str, invoice_code: str, amounts: InvoiceAmounts) -> TaxCommit:
        with adapter_errors():
            return await self.a.tax.commit(document_code, invoice_code, amounts)

    @activity.defn(name=names.VOID_TAX)
    async def void_tax(self, document_code: str) -> TaxVoid:
        with adapter_errors():
            return await self.a.tax.void(document_code)

    # -- payment --------------------------------------------------------------------
    @activity.defn(name=names.AUTHORIZE_PAYMENT)
    async def authorize_payment(self, amount: Money, reference: str | None, key: str) -> Authorization:
        with adapter_errors():
            auth = await self.a.payment.authorize(amount, reference, key)
        bind_activity_logger().info(
            "payment authorized", authorization_id=auth.authorization_id, amount=str(amount)
        )
        return auth

    @activity.defn(name=names.ADJUST_AUTHORIZATION)
    async def adjust_authorization(self, authorization_id: str, amount: Money, key: str) -> Authorization:
        with adapter_errors():
            auth = await self.a.payment.adjust_authorization(authorization_id, amount, key)
        bind_activity_logger().info(
            "authorization adjusted", authorization_id=authorization_id, amount=str(amount)
        )
        return auth

    @activity.defn(name=names.CAPTURE_PAYMENT)
    async def capture_payment(self, authorization_id: str, amount: Money, key: str) -> Capture:
        with adapter_errors():
            cap = await self.a.payment.capture(authorization_id, amount, key)
        bind_activity_logger().info("payment captured", capture_id=cap.capture_id, amount=str(amount))
        return cap

    @activity.defn(name=names.VOID_PAYMENT)
    async def void_payment(self, authorization_id: str, key: str) -> PaymentVoid:
        with adapter_errors():
            return await self.a.payment.void(authorization_id, key)

    @activity.defn(name=names.REFUND_PAYMENT)
    async def refund_payment(self, capture_id: str, amount: Money, key: str) -> PaymentRefund:
        with adapter_errors():
            return await self.a.payment.refund(capture_id, amount, key)

    # -- warehouse ------------------------------------------------------------------
    @activity.defn(name=names.RELEASE_FULFILLMENT)
    async def release_fulfillment(self, request: FulfillmentRequest) -> FulfillmentAck:
        with adapter_errors():
            ack = await self.a.wms.release(request)
        bind_activity_logger().info(
            "released to warehouse", fulfillment_id=ack.fulfillment_id, location=ack.location
        )
        return ack

    @activity.defn(name=names.CANCEL_FULFILLMENT)
    async def cancel_fulfillment(self, fulfillment_id: str, reason: str) -> FulfillmentCancel:
        with adapter_errors():
            return await self.a.wms.cancel(fulfillment_id, reason)

    # -- channel --------------------------------------------------------------------
    @activity.defn(name=names.CHANNEL_FULFILLMENT)
    async def channel_fulfillment(
        self, channel: str, external_order_id: str, shipment: Shipment, key: str
    ) -> ChannelAck:
        with adapter_errors():
            return await self.a.channel(channel).notify_fulfillment(external_order_id, shipment, key)

    @activity.defn(name=names.CHANNEL_REFUND)
    async def channel_refund(
        self, channel: str, external_order_id: str, amount: Money, reason: str, key: str
    ) -> ChannelAck:
        with adapter_errors():
            return await self.a.channel(channel).refund_payment(external_order_id, amount, reason, key)

    @activity.defn(name=names.CHANNEL_CANCELLED)
    async def channel_cancelled(
        self, channel: str, external_order_id: str, reason: str, key: str
    ) -> ChannelAck:
        with adapter_errors():
            return await self.a.channel(channel).notify_cancelled(external_order_id, reason, key)
