"""Logging for the `retail` processes: structlog, JSON outside a terminal, readable inside one.

Every line passes ``redact_secrets``: values under keys that name a secret or card data
(``secret``, ``token``, ``authorization``, ``password``, ``hmac``, ``signature``, ``card``,
``cvv``...) are replaced, at any depth, and bearer/basic credentials inside strings are masked.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "[REDACTED]"

# Any part of the key containing one of these marks it sensitive ("shopify_webhook_secret",
# "X-Shopify-Hmac-Sha256", "credit_card_number", "accessToken").
_SENSITIVE_PARTS = ("secret", "token", "password", "passwd", "hmac", "card", "cookie", "credential")
# Whole words only: "pan" must not hide "company", nor "cvc" anything else.
_SENSITIVE_WORDS = frozenset({"signature", "cvv", "cvc", "cvv2", "pan", "pwd", "apikey", "pin"})
# Keys ending so ("Authorization", "Proxy-Authorization", "api_key"); "authorization_id" (a
# payment authorization's id) is not a credential and stays readable.
_SENSITIVE_ENDINGS = ("authorization", "api_key", "private_key", "secret_key")
_CREDENTIAL_IN_TEXT = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")
_MAX_DEPTH = 8


def is_sensitive(key: str) -> bool:
    norm = re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")
    return (
        any(part in norm for part in _SENSITIVE_PARTS)
        or bool(_SENSITIVE_WORDS.intersection(norm.split("_")))
        or norm.endswith(_SENSITIVE_ENDINGS)
    )


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, str):
        return _CREDENTIAL_IN_TEXT.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
    if isinstance(value, dict):
        return {k: REDACTED if is_sensitive(str(k)) else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, depth + 1) for v in value)
    return value


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no secrets or card data in logs."""
    for key, value in list(event_dict.items()):
        if key.startswith("_"):  # structlog's own (_record, _from_structlog)
            continue
        event_dict[key] = REDACTED if is_sensitive(key) else _scrub(value)
    return event_dict


def _drop_color_message(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict.pop("color_message", None)  # uvicorn's ANSI copy of the message
    return event_dict


def configure_logging(level: str = "INFO", *, quiet_activity_failures: bool = False) -> None:
    """Route structlog and stdlib logging (Temporal's SDK, uvicorn) through one renderer.

    Stdlib records keep their ``extra`` fields (the workflows' correlation_id, reason, step; the
    SDK's temporal_workflow/temporal_activity details).

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
        redact_secrets,
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
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), _drop_color_message, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    # One line per HTTP request to a vendor (Tryton's JSON-RPC: dozens per order) drowns what
    # matters; the adapters log their own outcomes.
    logging.getLogger("httpx").setLevel(max(lvl, logging.WARNING))
    if quiet_activity_failures:
        logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
        logging.getLogger("temporalio.worker._activity").setLevel(logging.ERROR)
