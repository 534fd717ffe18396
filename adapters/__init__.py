"""Adapters to external systems: one folder per kind, a Protocol (port) per kind, the builtin
implementation (embedded default) and vendor ones. Vendor <-> canonical mapping lives here."""
