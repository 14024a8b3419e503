"""``start --debug``: a debugger attached over debugpy's protocol stops at a breakpoint in an activity.

The test is the client VS Code would be: Debug Adapter Protocol messages (JSON with a
``Content-Length`` header) over a socket to the port ``--debug`` names.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.host._azurite import free_port

pytestmark = pytest.mark.timeout(180)

ACTIVITY_FILE = """\
def shout(name: str) -> str:
    loud = name.upper()
    return loud + "!"
"""
BREAKPOINT_LINE = 2  # loud = name.upper()

FUNCTION_APP = """\
import azure.durable_functions as df
import azure.functions as func

from shout import shout

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="start/{name}")
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client) -> func.HttpResponse:
    instance_id = await client.start_new("Loud", None, req.route_params["name"])
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def Loud(context):
    return (yield context.call_activity("Shout", context.get_input()))


@app.activity_trigger(input_name="name")
def Shout(name: str) -> str:
    return shout(name)
"""


class DapClient:
    """A Debug Adapter Protocol client: requests in order, responses and events from a reader thread."""

    def __init__(self, port: int) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        self._socket.settimeout(None)
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._seq = 0
        self._seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, name="dap-reader", daemon=True).start()

    def _read(self) -> None:
        stream = self._socket.makefile("rb")
        with contextlib.suppress(OSError, ValueError):
            while True:
                length = 0
                while (line := stream.readline().strip()) != b"":
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                if length == 0:
                    return
                self._messages.put(json.loads(stream.read(length)))

    def send(self, command: str, **arguments: Any) -> int:
        self._seq += 1
        body = json.dumps({"seq": self._seq, "type": "request", "command": command, "arguments": arguments})
        data = body.encode()
        self._socket.sendall(b"Content-Length: %d\r\n\r\n" % len(data) + data)
        return self._seq

    def wait(self, kind: str, name: str, seq: int | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """The first response (to ``seq``) or event called ``name``, among those not taken yet."""
        key = "command" if kind == "response" else "event"

        def matches(message: dict[str, Any]) -> bool:
            return (
                message.get("type") == kind
                and message.get(key) == name
                and (seq is None or message.get("request_seq") == seq)
            )

        for message in self._seen:
            if matches(message):
                self._seen.remove(message)
                return message
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self._messages.get(timeout=left)
            except queue.Empty:
                break
            if matches(message):
                if kind == "response":
                    assert message["success"], message
                return message
            self._seen.append(message)
        raise TimeoutError(f"no {kind} '{name}' within {timeout} s; seen: {[m.get(key) for m in self._seen]}")

    def request(self, command: str, **arguments: Any) -> dict[str, Any]:
        return self.wait("response", command, self.send(command, **arguments))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.close()


@pytest.fixture
def debugged_host(tmp_path: Path, storage_connection: str) -> Iterator[tuple[str, int, Path]]:
    """``python -m emulator start --debug=PORT`` on a small app; its URL, debug port and activity file."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "function_app.py").write_text(FUNCTION_APP)
    (app / "shout.py").write_text(ACTIVITY_FILE)
    hub = f"Debug{uuid.uuid4().hex[:10]}"
    host_json = {"version": "2.0", "extensions": {"durableTask": {"hubName": hub}}}
    (app / "host.json").write_text(json.dumps(host_json))
    port, debug_port = free_port(), free_port()
    log = (tmp_path / "host.log").open("wb")
    command = [sys.executable, "-m", "emulator", "start", "--script-root", str(app), "--port", str(port)]
    process = subprocess.Popen(
        [*command, f"--debug={debug_port}"],
        env={**os.environ, "AzureWebJobsStorage": storage_connection},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_until_answering(f"http://127.0.0.1:{port}/admin/host/status", process, tmp_path / "host.log")
        yield f"http://127.0.0.1:{port}", debug_port, app / "shout.py"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the host and debugpy's adapter process
        process.wait(30)
        log.close()


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=2) as reply,
        ):
            if reply.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"the host did not answer on {url}: {log.read_text()}")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.loads(reply.read())


def test_an_attached_debugger_stops_at_a_breakpoint_in_an_activity(
    debugged_host: tuple[str, int, Path], tmp_path: Path
) -> None:
    base_url, debug_port, activity_file = debugged_host
    assert f"Debugger (debugpy) listening on 127.0.0.1:{debug_port}" in (tmp_path / "host.log").read_text()
    client = DapClient(debug_port)
    try:
        client.request(
            "initialize", clientID="tests", adapterID="debugpy", linesStartAt1=True, pathFormat="path"
        )
        attach = client.send("attach", justMyCode=True)
        client.wait("event", "initialized")
        breakpoints = client.request(
            "setBreakpoints",
            source={"path": str(activity_file)},
            breakpoints=[{"line": BREAKPOINT_LINE}],
        )
        assert breakpoints["body"]["breakpoints"][0]["verified"], breakpoints
        client.request("configurationDone")
        client.wait("response", "attach", attach)

        # A stop suspends every thread of the host, its event loop too: the reply of the HTTP starter
        # may come only after the debugger lets the host go on.
        replies: queue.Queue[Any] = queue.Queue()
        threading.Thread(
            target=lambda: replies.put(_get_json(f"{base_url}/api/start/hello")), daemon=True
        ).start()
        stopped = client.wait("event", "stopped", timeout=60)
        assert stopped["body"]["reason"] == "breakpoint"
        thread_id = stopped["body"]["threadId"]
        frames = client.request("stackTrace", threadId=thread_id, levels=1)["body"]["stackFrames"]
        assert Path(frames[0]["source"]["path"]).resolve() == activity_file.resolve()
        assert frames[0]["line"] == BREAKPOINT_LINE
        value = client.request("evaluate", expression="name", frameId=frames[0]["id"], context="watch")
        assert value["body"]["result"] == "'hello'"

        client.request("continue", threadId=thread_id)
        started = replies.get(timeout=30)
        deadline = time.monotonic() + 60
        while (status := _get_json(started["statusQueryGetUri"]))["runtimeStatus"] != "Completed":
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status["output"] == "HELLO!"
        client.request("disconnect", terminateDebuggee=False)
    finally:
        client.close()


def test_without_debugpy_the_host_says_how_to_get_it(tmp_path: Path) -> None:
    # A debugpy that cannot be imported stands for one that is not installed.
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "debugpy.py").write_text("raise ImportError('not installed')\n")
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "start", "--script-root", str(tmp_path), "--debug"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "--debug needs debugpy, which is not installed: pip install 'durable-functions-emulator[debug]'"
        in (done.stdout)
    )
    assert "Traceback" not in done.stdout + done.stderr
