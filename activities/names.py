"""Activity names, shared by the activities and the workflows that call them by name.

Workflows call activities by name so that they never import adapters, HTTP or the database.
"""

RESOLVE_CUSTOMER = "erp.resolve_customer"
CREATE_SALES_ORDER = "erp.create_sales_order"
ALLOCATE_BACKORDERS = "erp.allocate_backorders"
INVOICE_SHIPMENT = "erp.invoice_shipment"
CANCEL_SALES_ORDER = "erp.cancel_sales_order"
QUOTE_TAX = "tax.quote"
COMMIT_TAX = "tax.commit"
VOID_TAX = "tax.void"
AUTHORIZE_PAYMENT = "payment.authorize"
CAPTURE_PAYMENT = "payment.capture"
VOID_PAYMENT = "payment.void"
REFUND_PAYMENT = "payment.refund"
RELEASE_FULFILLMENT = "wms.release"
CANCEL_FULFILLMENT = "wms.cancel"
CHANNEL_FULFILLMENT = "channel.notify_fulfillment"
CHANNEL_REFUND = "channel.refund_payment"
CHANNEL_CANCELLED = "channel.notify_cancelled"

INVENTORY_APPLY = "inventory.apply"
INVENTORY_PENDING = "inventory.pending_for_channel"
INVENTORY_PUSH = "inventory.push_to_channel"

RECONCILE_ORDERS_WINDOW = "reconcile.orders_window"
RECONCILE_ORDERS_STAGE = "reconcile.orders_stage"
RECONCILE_ORDERS_COMPARE = "reconcile.orders_compare"
RECONCILE_INVENTORY_PAGE = "reconcile.inventory_page"
RECONCILE_INVENTORY_RECORD = "reconcile.inventory_record"
RECONCILE_SETTLEMENT = "reconcile.settlement"
