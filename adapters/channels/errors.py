"""Errors shared by the channel mappers (vendor payload -> canonical).

A payload that cannot be mapped is a data problem, not an outage: retrying cannot help, so
ingress refuses it (or parks it for an operator) with the exact field that is wrong.
"""

from __future__ import annotations


class MappingError(ValueError):
    """A channel payload that does not map to a valid canonical model.

    ``path`` locates the problem in the vendor's payload (``line_items[2].price``); an empty
    path means the payload as a whole (e.g. totals that do not add up).
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message
