"""Serve an in-process vendor fake (an ASGI app) with uvicorn on a local port, for tests, the
demo and ``retail dev``: the platform then reaches it over real HTTP like the vendor's API.

::

    async with AppServer(create_amazon_app(sandbox)) as server:
        ...  # server.url is http://127.0.0.1:<port>
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

import uvicorn


class AppServer:
    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 10.0,
        log_level: str = "warning",
    ) -> None:
        self.host, self.port = host, port
        self.startup_timeout_s = startup_timeout_s
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> AppServer:
        self._task = asyncio.create_task(self._server.serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout_s
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError(f"the server on {self.host}:{self.port} stopped during start-up")
            if loop.time() > deadline:
                await self.__aexit__(None, None, None)
                raise TimeoutError(f"the server did not start within {self.startup_timeout_s:g} s")
            await asyncio.sleep(0.02)
        for server in self._server.servers:
            for sock in server.sockets:
                self.port = int(sock.getsockname()[1])
                break
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(self._task, return_exceptions=True)
