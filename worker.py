"""Builds the Temporal worker: workflows, activities, data converter. `retail worker` runs it.

Scale out by running more processes (`docker compose up --scale worker=3`): they share the
task queue, and every activity is idempotent, so any worker may pick up any step.
"""

from __future__ import annotations

import asyncio

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.orders import Adapters, OrderActivities
from settings import Settings
from workflows.order_to_cash import OrderToCash

WORKFLOWS = [OrderToCash]

log = structlog.get_logger("worker")


def build_worker(client: Client, settings: Settings, adapters: Adapters) -> Worker:
    activities = OrderActivities(adapters)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities.all(),
        max_concurrent_activities=50,
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    from activities.routing import build_adapters
    from store.bootstrap import open_store
    from workflows.client import connect

    store = open_store(settings.store_url)
    client = await connect(settings)
    worker = build_worker(client, settings, build_adapters(settings, store))
    log.info("worker started", task_queue=settings.task_queue, temporal=settings.temporal_address)
    try:
        if stop is None:
            await worker.run()
        else:
            async with worker:
                await stop.wait()
    finally:
        store.dispose()
