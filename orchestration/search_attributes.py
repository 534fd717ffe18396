"""Custom search attributes: what operators filter on in the Temporal UI and `retail orders list`."""

from temporalio.common import SearchAttributeKey

ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
CHANNEL = SearchAttributeKey.for_keyword("Channel")
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
ATTENTION_REASON = SearchAttributeKey.for_keyword("AttentionReason")
CORRELATION_ID = SearchAttributeKey.for_keyword("CorrelationId")
RETURN_STATUS = SearchAttributeKey.for_keyword("ReturnStatus")
# The ERP adapter that holds the order (e.g. "builtin", "netsuite"): operators filter by backend.
ERP_BACKEND = SearchAttributeKey.for_keyword("ErpBackend")

ALL = [ORDER_ID, CHANNEL, ORDER_STATUS, ATTENTION_REASON, CORRELATION_ID, RETURN_STATUS, ERP_BACKEND]
