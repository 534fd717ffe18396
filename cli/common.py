"""Shared CLI plumbing: settings, a Temporal client, running coroutines."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from temporalio.client import Client

from orchestration.client import connect
from settings import Settings, get_settings

T = TypeVar("T")


def settings() -> Settings:
    return get_settings()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def temporal_client() -> Client:
    """A client for the configured Temporal; an unreachable server is a clear error, not a traceback."""
    s = settings()
    try:
        return await connect(s)
    except Exception as exc:  # connection refused, DNS, TLS, unknown namespace...
        raise fail(f"cannot reach Temporal at {s.temporal_address}: {exc}") from exc


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def workflow_id(order: str) -> str:
    """Accept an order key (shopify-1001) or a workflow id (order-shopify-1001)."""
    return order if order.startswith("order-") else f"order-{order}"
