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

import uvicorn

from adapters.channels.shopify.sandbox.app import create_sandbox_app
from adapters.channels.shopify.sandbox.shop import SandboxShop
from adapters.channels.shopify.sandbox.webhooks import WebhookDeliverer


class SandboxServer:
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
        self.shop = shop
        self.host = host
        self.port = port
        self.deliverer = deliverer
        self.startup_timeout_s = startup_timeout_s
        self._server = uvicorn.Server(
            uvicorn.Config(
                create_sandbox_app(shop), host=host, port=port, log_level=log_level, lifespan="off"
            )
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        """The base URL (``http://host:port``) once started."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._stop.clear()
        self._tasks.append(asyncio.create_task(self._server.serve()))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout_s
        while not self._server.started:
            task = self._tasks[0]
            if task.done():
                task.result()  # raises what stopped it (e.g. the port is taken)
                raise RuntimeError(f"the sandbox server on {self.host}:{self.port} stopped during start-up")
            if loop.time() > deadline:
                await self.stop()
                raise TimeoutError(f"the sandbox server did not start within {self.startup_timeout_s:g} s")
            await asyncio.sleep(0.02)
        for server in self._server.servers:
            for sock in server.sockets:
                self.port = int(sock.getsockname()[1])
                break
        if self.deliverer is not None:
            self._tasks.append(asyncio.create_task(self.deliverer.run(self._stop)))

    async def stop(self) -> None:
        self._stop.set()
        self._server.should_exit = True
        tasks, self._tasks = self._tasks, []
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

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
