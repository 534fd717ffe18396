"""Workflow type names and the names of their queries and updates: how the client starts and
reads workflows without importing their code (``workflows`` sits above this package)."""

ORDER_TO_CASH = "OrderToCash"
RETURN_TO_REFUND = "ReturnToRefund"
INVENTORY_ADJUSTMENT = "InventoryAdjustment"
CHANNEL_INVENTORY_SYNC = "ChannelInventorySync"

# OrderToCash
ORDER_ACCEPTED = "accepted"  # update: the ERP's acceptance
ORDER_STATE = "state"  # query
ORDER_RETURN_CONTEXT = "return_context"  # query
ORDER_UPDATED = "order_updated"  # signal: a channel edit
