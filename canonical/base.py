"""Shared base for canonical models: strict, closed and immutable by default."""

from pydantic import BaseModel, ConfigDict


class Canonical(BaseModel):
    """Strict (no silent coercion), closed (unknown fields are errors) and frozen."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
