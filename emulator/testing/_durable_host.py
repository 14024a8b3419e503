"""An emulator host under test, with the SDK's own durable client bound to it.

In-process hosts run on the shared background loop (:class:`BackgroundHost`) and can move
durable time; subprocess hosts (``python -m emulator start``) can be SIGKILLed and started again.
Both answer the same calls, made from synchronous test code: the SDK client's coroutines run on
the background loop, where its process-wide HTTP session lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import azure.durable_functions as df

from emulator.app._settings import AppSettings, load_settings
from emulator.client._client import RPC_PATH, ClientUrls, DurableClientService, InstanceNotFoundError
from emulator.functions._accounts import connection_label
from emulator.host._azurite import free_port
from emulator.host._host import HostOptions
from emulator.taskhub._interface import TaskHub
from emulator.taskhub.azure import open_task_hub
from emulator.testing._background import BackgroundHost, _WorkerLoop
from emulator.testing._memory_hubs import is_memory, memory_task_hub
from emulator.testing._subprocess import SubprocessHost
from emulator.testing._time_skip import next_timer

T = TypeVar("T")

#: host.json's task hub, overridden the way the Functions host allows (AzureFunctionsJobHost__...).
HUB_OVERRIDE = "AzureFunctionsJobHost__extensions__durableTask__hubName"
#: Messages of a killed subprocess host come back after this (the real default is 5 minutes).
SUBPROCESS_LEASE_SECONDS = 3.0
FINISHED = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
_POLL_SECONDS = 0.02
#: Where a host's task hub can live: Azure Storage (Azurite or an account) or this process's memory.
STORAGE_KINDS = ("azure", "memory")


@dataclass(frozen=True)
class HostConfig:
    """How to run a host; equal configs can share one running host."""

    script_root: Path
    subprocess: bool = False
    #: None: the app's own task hub (host.json).
    task_hub: str | None = None
    #: Where the task hub lives: "azure" or "memory"; None: the session's storage.
    storage: str | None = None
    #: Message lease; None: host.json's for in-process hosts, SUBPROCESS_LEASE_SECONDS for subprocesses.
    lease_seconds: float | None = None
    #: The crash switch (``point[:n]``, see emulator/durable/_crash.py); subprocess hosts only.
    crash_at: str | None = None
    enforce_auth: bool = False
    #: Extra environment of a subprocess host.
    env: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.subprocess and (self.crash_at or self.env):
            raise ValueError("crash_at= and env= need a subprocess host (subprocess=True)")
        if self.storage not in (None, *STORAGE_KINDS):
            raise ValueError(f"storage={self.storage!r}: choose one of {', '.join(STORAGE_KINDS)}")


class DurableHost:
    """A started emulator host for one app and the helpers a test drives it with."""

    def __init__(self, config: HostConfig, connection_string: str, log_path: Path | None = None) -> None:
        self.config = config
        self.connection_string = connection_string
        self.log_path = log_path
        self.settings: AppSettings = load_settings(config.script_root)
        self.hub_name = config.task_hub or self.settings.hub_name
        self.background: BackgroundHost | None = None
        self.process: SubprocessHost | None = None
        self._client: Any = None
        # Subprocess hosts: storage access of our own, on the shared loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._storage: TaskHub | None = None
        self._service: DurableClientService | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> DurableHost:
        if self.config.subprocess:
            self._start_subprocess()
        else:
            self._start_in_process()
        return self

    def _start_in_process(self) -> None:
        memory = is_memory(self.connection_string)
        options = HostOptions(
            script_root=self.config.script_root,
            port=free_port(),
            # On an in-memory task hub, bindings keep the app's own storage setting.
            connection_string=None if memory else self.connection_string,
            task_hub=memory_task_hub(self.hub_name, self.settings.partition_count) if memory else None,
            lease_seconds=self.config.lease_seconds,
            enforce_auth=self.config.enforce_auth,
        )
        background = BackgroundHost(options)
        # The override is read once, when the host loads its settings.
        with environment({HUB_OVERRIDE: self.config.task_hub} if self.config.task_hub else {}):
            background.host.load()
        self.background = background.start()
        assert background.host.client is not None
        self._service = background.host.client

    def _start_subprocess(self) -> None:
        if is_memory(self.connection_string):
            raise RuntimeError("A subprocess host cannot share this process's in-memory task hubs")
        env = dict(self.config.env)
        if self.config.task_hub:
            env[HUB_OVERRIDE] = self.config.task_hub
        lease = self.config.lease_seconds
        self.process = SubprocessHost(
            self.config.script_root,
            connection_string=self.connection_string,
            lease_seconds=SUBPROCESS_LEASE_SECONDS if lease is None else lease,
            crash_at=self.config.crash_at,
            enforce_auth=self.config.enforce_auth,
            env=env,
            log_path=self.log_path,
        )
        self._loop = _WorkerLoop.acquire()
        try:
            self._service = self._run(self._open_service(self.process.port))
            self.process.start()
        except BaseException:
            self.stop()
            raise

    async def _open_service(self, port: int) -> DurableClientService:
        storage = self._storage = open_task_hub(
            self.connection_string, self.hub_name, self.settings.partition_count
        )
        setting = self.settings.storage_connection_name
        return DurableClientService(
            storage=storage,
            index=None,
            leases=None,
            deliver=lambda message, handle: None,
            urls=ClientUrls(
                public_base=f"http://localhost:{port}", rpc_base=f"http://127.0.0.1:{port}{RPC_PATH}"
            ),
            connection_name=connection_label(setting),
        )

    def stop(self) -> None:
        """Stop the host (gracefully; see :meth:`kill` for a crash)."""
        if self.background is not None:
            self.background.stop()
        if self.process is not None:
            self.process.stop()
        if self._loop is not None:
            if self._storage is not None:
                with contextlib.suppress(Exception):
                    self._run(self._storage.close())
            self._loop = None
            _WorkerLoop.release()
        self._storage = None

    @property
    def alive(self) -> bool:
        """Started and not stopped, killed or crashed."""
        if self.background is not None:
            return self.background.running
        return self.process is not None and self.process.running

    def __enter__(self) -> DurableHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the SDK client ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self.background is not None:
            return self.background.base_url
        assert self.process is not None
        return self.process.base_url

    @property
    def client(self) -> Any:
        """The SDK's ``DurableOrchestrationClient``, bound to this host as a ``durable_client_input`` is.

        Its methods are coroutines: run them with :meth:`call`.
        """
        if self._client is None:
            assert self._service is not None, "the host is not started"
            self._client = df.DurableOrchestrationClient(json.dumps(self._service.binding_data()))
        return self._client

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        """Run a coroutine (e.g. a ``client`` call) on the host's loop and return its result."""
        if self.background is not None:
            return self.background.run(coro, timeout)
        return self._run(coro, timeout)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        assert self._loop is not None, "the host is not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- orchestrations ----------------------------------------------------------------------

    def start_orchestration(self, name: str, input: Any = None, *, instance_id: str | None = None) -> str:
        """Start an orchestration through the SDK client; return its instance id."""
        started: str = self.call(self.client.start_new(name, instance_id, input))
        return started

    def get_status(self, instance_id: str, *, show_history: bool = False) -> Any:
        """The SDK's ``DurableOrchestrationStatus`` of the instance (input included)."""
        return self.call(self.client.get_status(instance_id, show_history, show_history, True))

    def raise_event(self, instance_id: str, event_name: str, data: Any = None) -> None:
        """Send an event the way an HTTP client does: ``data`` as the JSON body of the instance's
        ``sendEventPostUri``. (The SDK client's ``raise_event`` JSON-encodes the data once more.)"""
        assert self._service is not None, "the host is not started"
        url = self._service.management_urls(instance_id, self.base_url)["sendEventPostUri"]
        request = urllib.request.Request(
            url.replace("{eventName}", urllib.parse.quote(event_name, safe="")),
            data=json.dumps(data).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60):
                pass
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"raising '{event_name}' answered {err.code}: {err.read().decode()}") from None

    def wait_for(self, instance_id: str, *, timeout: float = 60.0, skip_timers: bool = False) -> Any:
        """Wait until the instance has finished (Completed, Failed, Terminated); return its status.

        With ``skip_timers``, whenever the instance waits on durable timers and nothing else,
        durable time jumps to the next one (in-process hosts only), so timers cost no wall time.
        """
        if skip_timers:
            self._require_in_process("skip_timers")
        deadline = time.monotonic() + timeout
        while True:
            status = self.get_status(instance_id)
            runtime = getattr(status.runtime_status, "value", None)
            if runtime in FINISHED:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Instance '{instance_id}' is still {runtime or 'unknown'} after {timeout} s"
                    + (f"; custom status {status.custom_status!r}" if status.custom_status else "")
                    + self._log_hint()
                )
            if skip_timers and runtime == "Running":
                self.skip_timers(instance_id)
            time.sleep(_POLL_SECONDS)

    def run_orchestration(
        self,
        name: str,
        input: Any = None,
        *,
        instance_id: str | None = None,
        timeout: float = 60.0,
        skip_timers: bool = False,
    ) -> Any:
        """Start an orchestration and wait until it has finished; return its status."""
        started = self.start_orchestration(name, input, instance_id=instance_id)
        return self.wait_for(started, timeout=timeout, skip_timers=skip_timers)

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        """The instance's history (current execution) as ``durable get-history --json`` prints it."""
        assert self._service is not None, "the host is not started"
        events: list[dict[str, Any]] = self.call(self._service.get_history(instance_id))
        return events

    def save_history(self, instance_id: str, path: str | os.PathLike[str]) -> Path:
        """Write the instance's history as JSON, e.g. to keep it as a golden history for replay."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.history(instance_id), indent=1) + "\n", encoding="utf-8")
        return target

    # -- durable time ------------------------------------------------------------------------

    def now(self) -> datetime:
        """The host's durable time (wall-clock UTC plus whatever tests advanced it by)."""
        return self._require_in_process("now").host.clock.now()

    def advance_time(self, delta: timedelta | float) -> None:
        """Move durable time forward (a timedelta or seconds); timers due by then fire at once."""
        background = self._require_in_process("advance_time")
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)

        async def advance() -> None:
            background.host.advance_time(step)

        # Waited for, so the next read of the clock already sees the new time.
        background.run(advance(), 10)

    def skip_timers(self, instance_id: str) -> bool:
        """If the instance (with its sub-orchestrations) waits on timers only, move time to the next
        one and return True; else leave time alone and return False."""
        now = self.now()
        due = next_timer(self._history_or_none, instance_id, now)
        if due is None:
            return False
        self.advance_time(due - now + timedelta(milliseconds=1))
        return True

    def _history_or_none(self, instance_id: str) -> list[dict[str, Any]] | None:
        try:
            return self.history(instance_id)
        except InstanceNotFoundError:
            return None

    def _require_in_process(self, what: str) -> BackgroundHost:
        if self.background is None:
            raise RuntimeError(
                f"{what} needs an in-process host: a subprocess host keeps durable time of its own"
            )
        return self.background

    # -- crashes -----------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the host process: no clean-up, exactly like a crash."""
        self._require_subprocess("kill").kill()

    def wait_exit(self, timeout: float = 120.0) -> int:
        """Wait for the host process to end (e.g. killed by ``crash_at``); return its exit code."""
        return self._require_subprocess("wait_exit").wait_exit(timeout)

    def restart(self, *, crash_at: str | None = None) -> DurableHost:
        """Start the host process again on the same port and task hub, after a kill or a crash."""
        process = self._require_subprocess("restart")
        process.kill()
        process.crash_at = crash_at
        process.start()
        return self

    def kill_when(
        self,
        instance_id: str,
        condition: Callable[[list[dict[str, Any]]], bool],
        *,
        timeout: float = 60.0,
    ) -> list[dict[str, Any]]:
        """SIGKILL the host as soon as ``condition(history)`` holds for the instance; return that history.

        The history is polled, so the host may have moved on a little by the time it dies; for a
        kill at an exact point of the checkpoint order, start the host with ``crash_at=``.
        """
        process = self._require_subprocess("kill_when")
        deadline = time.monotonic() + timeout
        while True:
            events = self._history_or_none(instance_id) or []
            if condition(events):
                process.kill()
                return events
            if time.monotonic() > deadline:
                raise TimeoutError(f"The condition did not hold for instance '{instance_id}' in {timeout} s")
            time.sleep(_POLL_SECONDS / 2)

    def _require_subprocess(self, what: str) -> SubprocessHost:
        if self.process is None:
            raise RuntimeError(f"{what} needs a subprocess host (subprocess=True)")
        return self.process

    def log_text(self) -> str:
        """What a subprocess host printed (empty for in-process hosts, which log to this process)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _log_hint(self) -> str:
        return f" (host log: {self.log_path})" if self.log_path else ""


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for a while, then put back what was there."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
