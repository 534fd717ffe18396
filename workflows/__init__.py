"""Deterministic orchestration: the business processes, their state machines and compensation.

Workflows only call activities (by name); they never import adapters, HTTP or the database."""
