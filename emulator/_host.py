"""The emulator host: one object that wires the stages a request travels through.

load settings and index the app -> HTTP (triggers and the durable API) -> client operations ->
orchestration episodes and activity execution -> task hub storage. Data flows one way; the
only loops back are queue messages, which is also how work survives a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from emulator._activities import ActivityDispatcher, CompletionSender
from emulator._app_index import AppIndex, FunctionInfo, load_app
from emulator._client import RPC_PATH, ClientUrls, DurableClientService
from emulator._durable_http import DurableHttpApi
from emulator._http_triggers import HttpTriggerRouter
from emulator._invocations import InvocationLog
from emulator._leases import LeaseKeeper
from emulator._orchestrations import OrchestrationDispatcher
from emulator._settings import AppSettings, load_settings
from emulator._storage import TaskHubStorage
from emulator._timers import DurableClock, TimerScheduler

logger = logging.getLogger("emulator.host")


@dataclass
class HostOptions:
    script_root: Path
    port: int = 7071
    #: Interface to listen on: loopback only, like ``func start``.
    bind: str = "127.0.0.1"
    #: Overrides the app's storage connection setting (tests pass their Azurite here).
    connection_string: str | None = None
    #: How long a message stays leased to this host without renewal (the real default: 5 min).
    lease_seconds: float = 300.0
    #: Longest pause between polls of an idle queue; new work is handed over without polling.
    max_poll_interval: float = 1.0


class EmulatorHost:
    """A running Functions host for one app and its task hub."""

    def __init__(self, options: HostOptions) -> None:
        self.options = options
        self.invocations = InvocationLog()
        self.settings: AppSettings | None = None
        self.index: AppIndex | None = None
        self.storage: TaskHubStorage | None = None
        self.client: DurableClientService | None = None
        self._runner: web.AppRunner | None = None
        self._background: list[asyncio.Task[None]] = []
        self._wake: list[asyncio.Event] = []
        self._work_wake = asyncio.Event()
        self._leases: LeaseKeeper | None = None
        self._orchestrations: OrchestrationDispatcher | None = None
        self._activities: ActivityDispatcher | None = None
        self._completions: CompletionSender | None = None
        self._timers: TimerScheduler | None = None
        #: Durable time; tests move it forward with :meth:`advance_time`.
        self.clock = DurableClock()

    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.options.port}"

    def load(self) -> AppIndex:
        """Read settings and index the app (raises AppLoadError with a readable message)."""
        settings = load_settings(self.options.script_root)
        for name in settings.apply_to_environment():
            logger.info(
                "Skipping '%s' from local settings as it's already defined in current environment variables.",
                name,
            )
        self.settings = settings
        self.index = load_app(self.options.script_root)
        return self.index

    async def start(self) -> None:
        if self.index is None:
            self.load()
        assert self.settings is not None and self.index is not None
        settings, index = self.settings, self.index
        connection_string = self.options.connection_string or settings.storage_connection_string()
        storage = self.storage = TaskHubStorage(
            connection_string, settings.hub_name, settings.partition_count
        )
        await storage.create_task_hub()

        leases = self._leases = LeaseKeeper(storage, self.options.lease_seconds)
        orchestrations = self._orchestrations = OrchestrationDispatcher(
            storage=storage,
            index=index,
            invocations=self.invocations,
            leases=leases,
            clock=self.clock,
            max_concurrent=settings.max_concurrent_orchestrations,
        )
        timers = self._timers = TimerScheduler(self.clock, leases, orchestrations.deliver)
        completions = self._completions = CompletionSender(storage, leases, orchestrations.deliver)
        activities = self._activities = ActivityDispatcher(
            storage=storage,
            index=index,
            invocations=self.invocations,
            leases=leases,
            completions=completions,
            clock=self.clock,
            max_concurrent=settings.max_concurrent_activities,
        )
        self._wake = [asyncio.Event() for _ in range(storage.partition_count)]
        orchestrations.connect(activities.submit, timers.schedule)
        self.client = DurableClientService(
            storage=storage,
            index=index,
            leases=leases,
            deliver=orchestrations.deliver,
            urls=ClientUrls(
                public_base=self.base_url, rpc_base=f"http://127.0.0.1:{self.options.port}{RPC_PATH}"
            ),
            connection_name=_connection_label(settings.storage_connection_name),
        )

        app = web.Application(client_max_size=64 * 1024 * 1024)
        DurableHttpApi(self.client).add_routes(app)
        router = HttpTriggerRouter(
            index.http_functions, settings.route_prefix, self.invocations, script_root=index.script_root
        )
        prefix = f"/{settings.route_prefix}" if settings.route_prefix else ""

        async def http_trigger(request: web.Request) -> web.StreamResponse:
            return await router.handle(request, self._resolve_input)

        if prefix:
            app.router.add_route("*", prefix, http_trigger)
        app.router.add_route("*", prefix + "/{tail:.*}", http_trigger)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.options.bind, self.options.port).start()

        leases.start()
        completions.start()
        timers.start()
        for partition in range(storage.partition_count):
            self._spawn(self._poll_control(partition), f"poll-control-{partition:02d}")
        self._spawn(self._poll_work(), "poll-workitems")
        logger.info(
            "Host started: task hub '%s' with %d partitions", storage.hub_name, storage.partition_count
        )

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._timers is not None:
            await self._timers.stop()
        if self._completions is not None:
            await self._completions.stop()
        if self._activities is not None:
            await self._activities.close()
        if self._orchestrations is not None:
            await self._orchestrations.close()
        if self._leases is not None:
            await self._leases.stop()
            await self._leases.release_all()
        if self.storage is not None:
            await self.storage.close()

    def _spawn(self, coro: Any, name: str) -> None:
        self._background.append(asyncio.create_task(coro, name=name))

    # -- bindings ---------------------------------------------------------------------------

    def _resolve_input(self, function: FunctionInfo, binding: Mapping[str, Any], request: web.Request) -> Any:
        if str(binding.get("type", "")).lower() == "durableclient":
            assert self.client is not None
            return json.dumps(self.client.binding_data(binding.get("taskHub")))
        logger.warning(
            "Function '%s': input binding '%s' of type '%s' is not supported yet; it gets None",
            function.name,
            binding.get("name"),
            binding.get("type"),
        )
        return None

    # -- polling: timers and recovery -------------------------------------------------------

    def advance_time(self, delta: timedelta) -> None:
        """Move durable time forward: timers due by then fire now (call on the host's loop)."""
        self.clock.advance(delta)

    async def _poll_control(self, partition: int) -> None:
        assert self.storage is not None and self._orchestrations is not None
        interval = 0.05
        while True:
            try:
                batch = await self.storage.receive_control(partition, self.options.lease_seconds)
            except Exception as exc:
                logger.warning("Could not read control queue %d (%s); retrying", partition, exc)
                batch = []
                interval = self.options.max_poll_interval
            for message, handle in batch:
                # Recovered timer messages wait in memory for their fire time.
                assert self._timers is not None
                self._timers.route(message, handle)
            if batch:
                interval = 0.05
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake[partition].wait(), interval)
            self._wake[partition].clear()
            interval = min(interval * 2, self.options.max_poll_interval)

    async def _poll_work(self) -> None:
        assert self.storage is not None and self._activities is not None
        interval = 0.05
        while True:
            try:
                works = await self.storage.receive_work(self.options.lease_seconds)
            except Exception as exc:
                logger.warning("Could not read the work-item queue (%s); retrying", exc)
                works = []
                interval = self.options.max_poll_interval
            if works:
                self._activities.submit(works)
                interval = 0.05
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._work_wake.wait(), interval)
            self._work_wake.clear()
            interval = min(interval * 2, self.options.max_poll_interval)


def _connection_label(setting_name: str) -> str:
    # Management URLs name the connection "Storage" for the default AzureWebJobsStorage setting.
    return "Storage" if setting_name == "AzureWebJobsStorage" else setting_name
