"""The builtin back office: the books of the embedded ERP, tax engine, payment provider,
warehouse, carrier and recorded channel that the builtin adapters keep, apart from the
platform's own state in ``store``. They share the store's database and its one migration
history (``store/migrations``), and nothing in ``store`` reads them."""
