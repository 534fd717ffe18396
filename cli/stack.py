"""The whole platform in one process (plus Temporal's dev server): `retail dev` and `retail demo`."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import structlog
import uvicorn
from temporalio.client import Client

from activities.orders import Adapters
from activities.routing import build_adapters, start_adapters
from adapters.carrier.builtin import BuiltinCarrier
from adapters.faults import FaultInjector
from api.app import create_app
from api.auth import check_auth_setting
from backoffice.bootstrap import open_store
from cli.apikeys import mint_dev_key
from devserver import port_open, start_dev_server
from orchestration.client import connect, ensure_inventory_syncs
from sandboxes.carrier import CarrierSimulator
from sandboxes.wms import WmsSimulator
from services.tryton import TrytonServer, answers, from_settings
from settings import Settings
from store.db import Store
from worker import build_worker
from workflows.schedules import apply_schedules

log = structlog.get_logger("stack")


@dataclass
class Stack:
    settings: Settings
    store: Store
    client: Client
    api_key: str | None  # minted at start (every scope), None with RETAIL_API_AUTH=off
    adapters: Adapters

    @property
    def ui_url(self) -> str:
        host = self.settings.temporal_address.rsplit(":", 1)[0]
        return f"http://{host}:{self.settings.temporal_ui_port}"


async def run_simulators(
    settings: Settings,
    store: Store,
    stop: asyncio.Event,
    wms_extra_delay: dict[str, float] | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> None:
    """The builtin warehouse and carrier, reporting through the platform's webhook endpoints."""
    async with contextlib.AsyncExitStack() as stack:
        http: httpx.AsyncClient = (
            http_client
            if http_client is not None
            else await stack.enter_async_context(httpx.AsyncClient(base_url=settings.api_url, timeout=10))
        )
        carrier = BuiltinCarrier(store, FaultInjector("carrier", settings.faults.carrier))
        wms = WmsSimulator(store, carrier, http, settings, location_delays=wms_extra_delay or {})
        tracking = CarrierSimulator(store, http, settings)
        await asyncio.gather(wms.run(stop), tracking.run(stop))


def start_tryton(settings: Settings) -> TrytonServer | None:
    """With RETAIL_ERP=tryton and nothing answering at RETAIL_TRYTON_URL, start trytond there on
    a database of its own under the data dir (from the cached template: seconds after the
    first time). None when Tryton is not the ERP or already runs."""
    if settings.erp != "tryton" or answers(settings.tryton_url, settings.tryton_database):
        return None
    server = from_settings(settings)
    log.info("starting trytond", url=settings.tryton_url, database=settings.tryton_database)
    server.start()
    return server


@asynccontextmanager
async def running_stack(
    settings: Settings, *, persist: bool = True, wms_extra_delay: dict[str, float] | None = None
) -> AsyncIterator[Stack]:
    """Start Temporal's dev server (unless one already listens), the worker, the API and the
    simulators; stop them all on exit."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    check_auth_setting(settings)
    host, port = settings.temporal_address.rsplit(":", 1)
    server: subprocess.Popen[bytes] | None = None
    # Whatever started is stopped again if a later part fails to start.
    tryton = start_tryton(settings)
    try:
        if not port_open(host, int(port)):
            server = start_dev_server(
                host=host,
                port=int(port),
                ui_port=settings.temporal_ui_port,
                db_file=settings.data_dir / "temporal.db" if persist else None,
                namespace=settings.temporal_namespace,
                log=settings.data_dir / "temporal.log",
            )
        store = open_store(settings.store_url)
    except BaseException:
        _stop(tryton, server)
        raise
    # One command must be enough on a laptop, without switching authentication off: each start
    # mints a key with every scope (the previous one is revoked) and prints it.
    api_key = mint_dev_key(store) if settings.api_auth == "keys" else None
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        client = await connect(settings)
        adapters = build_adapters(settings, store)
        await start_adapters(adapters)
        worker = build_worker(client, settings, adapters)
        api = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, client),
                host=settings.api_host,
                port=settings.api_port,
                log_level="warning",
                lifespan="on",
            )
        )
        tasks.append(asyncio.create_task(worker.run()))
        await ensure_inventory_syncs(client, settings)
        if settings.reconcile_schedules:
            await apply_schedules(client, settings)
        tasks.append(asyncio.create_task(api.serve()))
        tasks.append(asyncio.create_task(run_simulators(settings, store, stop, wms_extra_delay)))
        while not api.started:
            await asyncio.sleep(0.05)
            for t in tasks:
                if t.done():
                    t.result()
        yield Stack(settings, store, client, api_key, adapters)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            api.should_exit = True
        for t in tasks[:1]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        store.dispose()
        _stop(tryton, server)


def _stop(tryton: TrytonServer | None, server: subprocess.Popen[bytes] | None) -> None:
    if tryton is not None:
        tryton.stop()
    if server is not None:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
