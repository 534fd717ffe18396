"""Problem responses: every rejection says why, and bad input is never a 500."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException


def problem(
    status: int, reason: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> HTTPException:
    return HTTPException(
        status_code=status, detail={"reason": reason, "detail": detail, **extra}, headers=headers
    )
