"""ERP adapters: the system of record for orders, stock, customers and finance."""
