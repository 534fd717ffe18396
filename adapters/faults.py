"""Fault injection for builtin adapters, from configuration (RETAIL_FAULTS__<KIND>__...).

Used by the tests and the demo to prove that retries, rate limits, timeouts and permanent
rejections are handled. See docs/faults.md.
"""

from __future__ import annotations

import asyncio
import random

from adapters.errors import PermanentError, RateLimitedError, TransientError
from settings import FaultSettings


class FaultInjector:
    def __init__(self, system: str, config: FaultSettings | None = None) -> None:
        self.system = system
        self.config = config or FaultSettings()
        self._rng = random.Random(self.config.seed)
        self._rules = [self._parse(r) for r in self.config.reject]

    def heal(self) -> None:
        """Stop the rejection rules: the fix an operator made before retrying."""
        self._rules = []

    @staticmethod
    def _parse(rule: str) -> tuple[str, str]:
        field, sep, value = rule.partition("=")
        if not sep or not field.strip():
            raise ValueError(f"fault rule {rule!r}: expected 'field=value'")
        return field.strip(), value.strip()

    async def before(self, operation: str, **attrs: str | None) -> None:
        """Call at the start of every adapter operation; may sleep or raise."""
        c = self.config
        facts = {"operation": operation, **{k: v for k, v in attrs.items() if v is not None}}
        for field, value in self._rules:
            if facts.get(field) == value:
                raise PermanentError(
                    f"{self.system} rejected {operation}: {field}={value} (injected rule)",
                    reason="injected_rejection",
                    system=self.system,
                )
        if c.latency_ms:
            await asyncio.sleep(c.latency_ms / 1000)
        if c.timeout_rate and self._rng.random() < c.timeout_rate:
            await asyncio.sleep(c.timeout_s)
            raise TransientError(f"{self.system} {operation} timed out (injected)", system=self.system)
        if c.rate_limit_rate and self._rng.random() < c.rate_limit_rate:
            raise RateLimitedError(
                f"{self.system} {operation}: rate limited (injected)",
                retry_after=c.retry_after_s,
                system=self.system,
            )
        if c.transient_rate and self._rng.random() < c.transient_rate:
            raise TransientError(f"{self.system} {operation}: unavailable (injected)", system=self.system)

    async def after(self, operation: str) -> None:
        """Call once the operation took effect: a delayed answer is how a worker ends up dying
        (or timing out) after the vendor already acted, the case idempotency keys exist for."""
        c = self.config
        if c.response_delay_ms and (
            not c.response_delay_operations or operation in c.response_delay_operations
        ):
            await asyncio.sleep(c.response_delay_ms / 1000)
