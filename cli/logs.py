"""Logging for the `retail` processes: structlog, JSON outside a terminal, readable inside one."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "INFO", *, quiet_activity_failures: bool = False) -> None:
    """Route structlog and stdlib logging (Temporal's SDK, uvicorn) through one renderer.

    ``quiet_activity_failures`` hides the SDK's traceback per failed attempt (the demo injects
    failures on purpose; their outcome is in each workflow's history)."""
    lvl = logging.getLevelName(level.upper())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    if quiet_activity_failures:
        logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
        logging.getLogger("temporalio.worker._activity").setLevel(logging.ERROR)
