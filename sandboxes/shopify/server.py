"""Serve the sandbox storefront with uvicorn inside this process (for ``retail dev``/the demo).

::

    shop = SandboxShop()
    async with SandboxServer(shop, port=8010, deliverer=deliverer) as server:
        ...  # server.url is http://127.0.0.1:8010; webhooks go out in the background

``port=0`` picks a free port (read it back from ``server.url``).
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from sandboxes.app_server import AppServer
from sandboxes.shopify.app import create_sandbox_app
from sandboxes.shopify.shop import SandboxShop
from sandboxes.shopify.webhooks import WebhookDeliverer


class SandboxServer(AppServer):
    """The sandbox's Admin API on ``host:port``, plus its webhook deliverer when given one."""

    def __init__(
        self,
        shop: SandboxShop,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        deliverer: WebhookDeliverer | None = None,
        log_level: str = "warning",
        startup_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            create_sandbox_app(shop),
            host=host,
            port=port,
            startup_timeout_s=startup_timeout_s,
            log_level=log_level,
        )
        self.shop = shop
        self.deliverer = deliverer
        self._stop = asyncio.Event()
        self._delivering: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().__aenter__()
        if self.deliverer is not None:
            self._stop.clear()
            self._delivering = asyncio.create_task(self.deliverer.run(self._stop))

    async def stop(self) -> None:
        self._stop.set()
        if self._delivering is not None:
            task, self._delivering = self._delivering, None
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(task, return_exceptions=True)
        await super().__aexit__(None, None, None)

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def serve_sandbox(
    shop: SandboxShop,
    *,
    host: str = "127.0.0.1",
    port: int = 8010,
    deliverer: WebhookDeliverer | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or the task is cancelled)."""
    stop = stop or asyncio.Event()
    async with SandboxServer(shop, host=host, port=port, deliverer=deliverer):
        await stop.wait()


def run_sandbox(
    shop: SandboxShop, *, host: str = "127.0.0.1", port: int = 8010, deliverer: WebhookDeliverer | None = None
) -> None:
    """Serve in the foreground until Ctrl-C."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_sandbox(shop, host=host, port=port, deliverer=deliverer))
