"""Fuzzing the HTTP API from its own OpenAPI document: any input is answered 2xx, or 4xx with a
reason; never a 5xx.

Schemathesis generates requests (valid and invalid against the schema: bodies, query, path and
headers) for every operation of the app's OpenAPI document; each is sent in-process (httpx's
ASGI transport) to the real app, on the real store and the session's Temporal server (the
harness in tests/platform.py). Most go in with a key holding every scope, some with the
generated credentials (usually none or wrong: the 401 path). Hypothesis runs in a worker thread
and hands each request to the test's event loop, where the app and its Temporal client live.
Bounded by ``MAX_EXAMPLES`` per generation mode and a deadline on the whole run.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode
from temporalio.client import Client

from tests.platform import platform
from tests.seed import seed_catalog

MAX_EXAMPLES = 300
RUN_DEADLINE_S = 30.0
CREDENTIAL_HEADERS = ("authorization", "x-api-key")


def _request(case: Any, api_key: str, keep_generated_auth: bool) -> dict[str, Any]:
    headers = {str(k): str(v) for k, v in (case.headers or {}).items()}
    has_auth = any(k.lower() in CREDENTIAL_HEADERS for k in headers)
    if not (has_auth and keep_generated_auth):
        headers = {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}
        headers["Authorization"] = f"Bearer {api_key}"
    kwargs: dict[str, Any] = {
        "method": case.method,
        "url": case.formatted_path,
        "params": case.query or None,
        "headers": headers,
    }
    if not isinstance(case.body, NotSet):
        media = case.media_type or "application/json"
        headers.setdefault("Content-Type", media)
        body = case.body
        if isinstance(body, bytes):
            kwargs["content"] = body
        elif "json" in media:
            kwargs["content"] = json.dumps(body, default=str).encode()
        else:
            kwargs["content"] = str(body).encode("utf-8", "replace")
    return kwargs


async def test_no_input_makes_the_api_answer_5xx(client: Client, tmp_path: Path, database_url: str) -> None:
    async with platform(
        client, tmp_path, database_url, worker=False, simulators=False, seed=seed_catalog
    ) as p:
        raw = (await p.http.get("/openapi.json")).json()
        schema = schemathesis.openapi.from_dict(raw)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/v1/orders", "/v1/returns", "/v1/inventory/events"}
        loop = asyncio.get_running_loop()
        failures: list[str] = []
        seen: dict[int, int] = {}
        started = time.monotonic()

        def send(kwargs: dict[str, Any]) -> httpx.Response:
            return asyncio.run_coroutine_threadsafe(p.http.request(**kwargs), loop).result(60)

        def fuzz(mode: GenerationMode) -> None:
            cases = st.one_of(*(op.as_strategy(generation_mode=mode) for op in operations))

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=cases, keep_generated_auth=st.booleans())
            def check(case: Any, keep_generated_auth: bool) -> None:
                if time.monotonic() - started > RUN_DEADLINE_S:
                    return
                kwargs = _request(case, p.api_key, keep_generated_auth)
                try:
                    r = send(kwargs)
                except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError, ValueError):
                    reject()  # not sendable over HTTP at all (e.g. a newline in a header)
                seen[r.status_code] = seen.get(r.status_code, 0) + 1
                what = f"{kwargs['method']} {kwargs['url']} -> {r.status_code}: {r.text[:300]}"
                if r.status_code >= 500:
                    failures.append(what + f"\n  request: {json.dumps(kwargs, default=str)[:1500]}")
                elif r.status_code >= 400:
                    body = r.json()
                    problem = body.get("detail") if isinstance(body, dict) else None
                    if not (isinstance(problem, dict) and problem.get("reason") and problem.get("detail")):
                        failures.append(f"no reason: {what}")

            check()

        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            await asyncio.to_thread(fuzz, mode)
        print(f"fuzz: {sum(seen.values())} requests in {time.monotonic() - started:.1f}s, by status {seen}")
        assert not failures, "\n".join(failures[:20])
        assert sum(seen.values()) >= 100, seen
