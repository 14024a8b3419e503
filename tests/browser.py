"""Headless Chromium driven with Playwright, for tests of the dashboard and of browsers' CORS.

Playwright drives the system's Chromium (``executable_path=``): nothing is downloaded, so
``playwright install`` is never needed. The small surface the tests use (navigate, evaluate,
wait for an expression, click, type, choose, screenshot, and what the page logged and
requested) is kept here, so the tests read the same whatever drives the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, ConsoleMessage, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page as PlaywrightPage

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: How Chromium logs a request answered with an HTTP error status (the network's log entries).
_FAILED_LOAD = "Failed to load resource: the server responded with a status of"


def chromium_path() -> Path | None:
    found = CHROMIUM if CHROMIUM.exists() else None
    return found or (Path(p) if (p := shutil.which("chromium")) else None)


class BrowserError(Exception):
    pass


class Page:
    """One tab: JavaScript evaluation, input, and what the page logged and requested."""

    def __init__(self, page: PlaywrightPage) -> None:
        self._page = page
        #: Console errors, uncaught exceptions and security (CSP) messages.
        self.errors: list[str] = []
        #: Requests answered with an HTTP error status.
        self.http_errors: list[str] = []
        #: Every URL the page requested.
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        if message.text.startswith(_FAILED_LOAD):
            # HTTP error answers are logged too: a test may expect them (e.g. 404 after a purge).
            self.http_errors.append(f"network: {message.text} ({message.location.get('url', '')})")
        else:
            self.errors.append(message.text)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises are awaited)."""
        try:
            return await self._page.evaluate(expression)
        except PlaywrightError as exc:
            raise BrowserError(exc.message) from exc

    async def wait_for(self, expression: str, timeout: float = 20.0, what: str | None = None) -> Any:
        """Poll until the expression is truthy; its value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(BrowserError):  # e.g. the element is not there yet
                value = await self.evaluate(expression)
                if value:
                    return value
            await asyncio.sleep(0.1)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what or expression} (last: {value!r})")

    async def navigate(self, url: str) -> None:
        await self._page.goto(url, wait_until="load")

    async def click(self, selector: str) -> None:
        await self._page.locator(selector).first.click()

    async def type_into(self, selector: str, text: str) -> None:
        """Replace a field's text as a user does (input events included)."""
        await self._page.locator(selector).first.fill(text)

    async def choose(self, selector: str, value: str) -> None:
        """Pick an option of a select, or tick a checkbox (value "on"), firing its change event."""
        field = self._page.locator(selector).first
        if await field.get_attribute("type") == "checkbox":
            await field.set_checked(value == "on")
        else:
            await field.select_option(value)

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page, not just the viewport."""
        path.parent.mkdir(parents=True, exist_ok=True)
        await self._page.screenshot(path=str(path), full_page=True)
        return path


class Browser:
    """A headless Chromium with one profile (Playwright's persistent context)."""

    def __init__(self, context: BrowserContext) -> None:
        self._context = context

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(
        cls, profile: Path, executable: Path = CHROMIUM, extra_flags: tuple[str, ...] = ()
    ) -> AsyncIterator[Browser]:
        """``extra_flags``: more command-line switches, e.g. ``--host-resolver-rules=...``."""
        profile.mkdir(parents=True, exist_ok=True)
        async with async_playwright() as playwright:
            try:
                context = await playwright.chromium.launch_persistent_context(
                    str(profile),
                    executable_path=str(executable),
                    headless=True,
                    args=[*FLAGS, *extra_flags],
                )
            except PlaywrightError as exc:
                raise BrowserError(f"Chromium did not start: {exc.message}") from exc
            try:
                yield cls(context)
            finally:
                await context.close()

    async def new_page(self, width: int = 1360, height: int = 900) -> Page:
        page = await self._context.new_page()
        await page.set_viewport_size({"width": width, "height": height})
        return Page(page)
