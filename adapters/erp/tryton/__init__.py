"""Tryton as the ERP, over JSON-RPC (docs/erp-tryton.md)."""
