"""Thin Temporal activities: pick the adapter, call it, turn its errors into retry decisions."""
