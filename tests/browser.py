"""Headless Chromium driven over the DevTools protocol (CDP), for tests of the dashboard.

A small client instead of a browser automation package: Chromium is started with
``--remote-debugging-port=0`` (it picks a free loopback port and writes it to
``DevToolsActivePort`` in the profile), and commands go over one WebSocket with aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_path() -> Path | None:
    found = CHROMIUM if CHROMIUM.exists() else None
    return found or (Path(p) if (p := shutil.which("chromium")) else None)


class BrowserError(Exception):
    pass


class Page:
    """One tab: commands, JavaScript evaluation, and what the page logged and requested."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self._browser = browser
        self.session_id = session_id
        #: Console errors, uncaught exceptions and security (CSP) messages.
        self.errors: list[str] = []
        #: Requests answered with an HTTP error status.
        self.http_errors: list[str] = []
        #: Every URL the page requested.
        self.requests: list[str] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self._browser.send(method, params, self.session_id)

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            # HTTP error answers are logged too: a test may expect them (e.g. 404 after a purge).
            target = self.http_errors if entry["source"] == "network" else self.errors
            target.append(f"{entry['source']}: {entry['text']} ({entry.get('url', '')})")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises are awaited)."""
        reply = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details["text"])
        return reply["result"].get("value")

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
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'", what=f"{url} to load")

    async def click(self, selector: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    async def type_into(self, selector: str, text: str) -> None:
        """Focus a field, clear it and type as a user does (input events included)."""
        field = f"document.querySelector({json.dumps(selector)})"
        await self.evaluate(f"(() => {{ const e = {field}; e.focus(); e.select(); }})()")
        await self.send("Input.insertText", text=text)

    async def choose(self, selector: str, value: str) -> None:
        """Pick an option of a select, or tick a checkbox (value "on"), firing its change event."""
        field, chosen = json.dumps(selector), json.dumps(value)
        await self.evaluate(
            f"""(() => {{
                const e = document.querySelector({field});
                if (e.type === "checkbox") e.checked = {chosen} === "on"; else e.value = {chosen};
                e.dispatchEvent(new Event("change", {{bubbles: true}}));
            }})()"""
        )

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page, not just the viewport."""
        size = await self.evaluate(
            "({width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight})"
        )
        shot = await self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


class Browser:
    """A headless Chromium process and its DevTools connection."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._http: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(
        cls, profile: Path, executable: Path = CHROMIUM, extra_flags: tuple[str, ...] = ()
    ) -> AsyncIterator[Browser]:
        """``extra_flags``: more command-line switches, e.g. ``--host-resolver-rules=...``."""
        profile.mkdir(parents=True, exist_ok=True)
        log_path = profile.parent / f"{profile.name}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                str(executable),
                *FLAGS,
                *extra_flags,
                f"--user-data-dir={profile}",
                "about:blank",
                stdout=log,
                stderr=log,
                # Its own process group, so its renderer and helper processes can be stopped with it.
                start_new_session=True,
            )
        browser = cls(process, log_path)
        try:
            await browser._connect(profile / "DevToolsActivePort")
            yield browser
        finally:
            await browser.close()

    async def _connect(self, port_file: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise BrowserError(f"Chromium did not start; its log:\n{self.log_path.read_text()[-3000:]}")
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self._http = aiohttp.ClientSession()
        self._socket = await self._http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._socket is not None
        async for message in self._socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    if "error" in data:
                        future.set_exception(BrowserError(f"{data['error']}"))
                    else:
                        future.set_result(data.get("result", {}))
            elif (page := self._pages.get(data.get("sessionId", ""))) is not None:
                page._event(data["method"], data.get("params", {}))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrowserError("the DevTools connection closed"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        assert self._socket is not None, "not connected"
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        await self._socket.send_str(json.dumps(message))
        return await asyncio.wait_for(future, 30)

    async def new_page(self, width: int = 1360, height: int = 900) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        self._pages[page.session_id] = page
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.send(f"{domain}.enable")
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        return page

    async def close(self) -> None:
        if self._socket is not None and not self._socket.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send("Browser.close"), 5)
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # helpers left behind by the browser
