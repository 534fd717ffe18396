"""Address checks before an order is processed: the port and the builtin validator."""
