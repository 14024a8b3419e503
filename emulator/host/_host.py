"""The emulator host: one object that wires the stages a request travels through.

load settings and index the app -> HTTP (triggers and the durable API) -> client operations ->
orchestration episodes and activity execution -> task hub storage. Data flows one way; the
only loops back are queue messages, which is also how work survives a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from emulator.app._app_index import AppIndex, FunctionInfo, load_app
from emulator.app._settings import AppLoadError, AppSettings, load_settings
from emulator.client._client import RPC_PATH, ClientUrls, DurableClientService
from emulator.client._durable_http import DurableHttpApi
from emulator.client._task_hubs import TaskHubClients
from emulator.durable._replay_check import enabled as replay_check_enabled
from emulator.durable._timers import DurableClock
from emulator.functions._accounts import StorageAccounts, connection_label
from emulator.functions._bindings import Bindings, RecordedOutput
from emulator.functions._invocations import InvocationLog
from emulator.functions.triggers import TriggerListeners, queues_options
from emulator.host._durable_runtime import DurableRuntime, RuntimeOptions
from emulator.host._host_identity import host_identity
from emulator.host._stopping import DEFAULT_STOP_GRACE_SECONDS, StopDeadline
from emulator.http._auth import FunctionKeys
from emulator.http._http_limits import MAX_REQUEST_BODY_BYTES, host_limits, parser_limits, quiet_parse_errors
from emulator.http._http_triggers import HttpTriggerRouter
from emulator.http._origin_guard import guard_route, install_browser_rules
from emulator.taskhub._interface import TaskHub
from emulator.taskhub._storage_outage import StorageHealth, retrying
from emulator.taskhub.azure import import_storage_clients, is_storage_error, open_task_hub

logger = logging.getLogger("emulator.host")


@dataclass
class HostOptions:
    script_root: Path
    port: int = 7071
    #: Interface to listen on: loopback only, like ``func start``.
    bind: str = "127.0.0.1"
    #: Overrides the app's storage connection setting (tests pass their Azurite here).
    connection_string: str | None = None
    #: The task hub to run on instead of the app's in Azure Storage (tests pass an in-memory one:
    #: ``emulator.taskhub.memory``); bindings and triggers still use the storage connection.
    task_hub: TaskHub | None = None
    #: How long a message stays leased to this host without renewal; None: host.json's
    #: controlQueueVisibilityTimeout, else the real default of 5 minutes.
    lease_seconds: float | None = None
    #: Longest pause between polls of an idle queue; new work is handed over without polling.
    max_poll_interval: float = 1.0
    #: Enforce function keys on HTTP triggers (``func start`` does not; opt in to test them).
    enforce_auth: bool = False
    #: Longest wait for in-flight work and hand-backs when stopping (see ``_stopping``).
    stop_grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS
    #: ``--cors`` / ``--cors-credentials``: override local.settings.json's Host.CORS / CORSCredentials.
    cors: str | None = None
    cors_credentials: bool | None = None
    #: ``--allowed-hosts``: host names (comma-separated lists) the management API answers under.
    allowed_hosts: tuple[str, ...] = ()


class EmulatorHost:
    """A running Functions host for one app and its task hub."""

    def __init__(self, options: HostOptions) -> None:
        self.options = options
        self.invocations = InvocationLog()
        self.settings: AppSettings | None = None
        self.index: AppIndex | None = None
        #: The Values of local.settings.json that :meth:`load` put into the environment.
        self.exported_settings: tuple[str, ...] = ()
        self.storage: TaskHub | None = None
        self.client: DurableClientService | None = None
        #: Whether the task hub's storage answers (None until the back end starts).
        self.storage_health: StorageHealth | None = None
        self._runner: web.AppRunner | None = None
        #: The durable back end (None until it starts).
        self.runtime: DurableRuntime | None = None
        #: Durable time; tests move it forward with :meth:`advance_time`.
        self.clock = DurableClock()
        #: Input and output bindings of every function; storage is attached in :meth:`start`.
        self.bindings = Bindings(extension_input=self._resolve_input)
        #: Timer, queue and blob trigger listeners (None until started).
        self.triggers: TriggerListeners | None = None
        self._accounts: StorageAccounts | None = None
        #: Done once everything has started (see :meth:`start`).
        self._ready: asyncio.Future[None] | None = None
        self._durable_api: DurableHttpApi | None = None

    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.options.port}"

    @property
    def recorded_outputs(self) -> list[RecordedOutput]:
        """What functions wrote to output bindings of services the emulator does not provide."""
        return list(self.bindings.recorded_outputs)

    def load(self) -> AppIndex:
        """Read settings and index the app (raises AppLoadError with a readable message)."""
        settings = load_settings(self.options.script_root)
        skipped = settings.apply_to_environment()
        self.exported_settings = tuple(name for name in settings.values if name and name not in skipped)
        for name in skipped:
            logger.info(
                "Skipping '%s' from local settings as it's already defined in current environment variables.",
                name,
            )
        if settings.storage_provider_notice:
            logger.info("%s", settings.storage_provider_notice)
        self.settings = settings
        self.index = load_app(self.options.script_root)
        return self.index

    async def start(self, announce: bool = True) -> None:
        """Start every stage; ``announce``: log that the host started (a reload logs its own line)."""
        if self.index is None:
            self.load()
        assert self.settings is not None and self.index is not None
        settings, index = self.settings, self.index
        # HTTP first: a function with no binding but HTTP answers while the durable back end
        # starts; the durable API, the host status and functions with other bindings wait for it.
        ready = self._ready = asyncio.get_running_loop().create_future()
        await self._start_http(settings, index)
        try:
            await self._start_back_end_or_say_why(settings, index)
        except BaseException as exc:
            ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError("the host stopped"))
            ready.exception()  # retrieved: requests that wait for it report it themselves
            raise
        ready.set_result(None)
        assert self.storage is not None
        if announce:
            logger.info(
                "Host started: task hub '%s' with %d partitions",
                self.storage.name,
                self.storage.partition_count,
            )

    async def _until_ready(self) -> None:
        if self._ready is not None and not self._ready.done():
            await asyncio.shield(self._ready)

    async def _start_http(self, settings: AppSettings, index: AppIndex) -> None:
        quiet_parse_errors()
        app = web.Application(client_max_size=MAX_REQUEST_BODY_BYTES, middlewares=[host_limits])
        # -- browsers: CORS and the origin guard (emulator/http/_origin_guard.py) --------------
        cli = self.options
        install_browser_rules(
            app, settings, cors=cli.cors, credentials=cli.cors_credentials, allowed_hosts=cli.allowed_hosts
        )

        async def durable_api(request: web.Request) -> web.StreamResponse:
            await self._until_ready()
            assert self._durable_api is not None
            return await self._durable_api.handle(request)

        guard_route(app, DurableHttpApi.add_routes(app, durable_api))  # browsers: see _origin_guard
        # -- dashboard (emulator/http/_dashboard.py): before the HTTP trigger catch-all below ----------
        from emulator.http._dashboard import add_dashboard_routes

        add_dashboard_routes(app)
        # -- end of dashboard --------------------------------------------------------------------
        app.router.add_get("/admin/host/status", self._host_status)
        app.router.add_get("/admin/host/ping", self._host_ping)
        # v1 functions get their own folder as function_directory; the router finds it from the code.
        router = HttpTriggerRouter(
            index.http_functions,
            settings.route_prefix,
            self.invocations,
            script_root=index.script_root if index.model == "v2" else None,
            bindings=self.bindings,
        )
        prefix = f"/{settings.route_prefix}" if settings.route_prefix else ""
        keys = self._function_keys(settings)

        async def http_trigger(request: web.Request) -> web.StreamResponse:
            rest = router.path_after_prefix(request.raw_path)
            found = None if rest is None else router.match(request.method, rest)
            if found is not None:
                if keys is not None and not keys.allows(found[0], request):
                    return web.Response(status=401)
                if not _http_only(found[0]):
                    await self._until_ready()  # the durable client or storage bindings
            return await router.handle(request, self._resolve_input)

        if prefix:
            app.router.add_route("*", prefix, http_trigger)
        app.router.add_route("*", prefix + "/{tail:.*}", http_trigger)
        # Requests still in flight when the host stops are cancelled once the grace period is over.
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=self.options.stop_grace_seconds, **parser_limits()
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.options.bind, self.options.port).start()

    async def _start_back_end_or_say_why(self, settings: AppSettings, index: AppIndex) -> None:
        """Start the durable back end; a failure the caller has no message for becomes one.

        Storage errors and closed ports have their own messages; anything else (a connection
        string the storage SDKs cannot parse, say) must stop the host with a line that says why.
        """
        try:
            await self._start_back_end(settings, index)
        except Exception as exc:
            if isinstance(exc, AppLoadError | OSError) or is_storage_error(exc):
                raise
            setting = settings.storage_connection_name
            raise AppLoadError(
                f"Could not start the durable back end on the storage of '{setting}' "
                f"(task hub '{settings.hub_name}'): {type(exc).__name__}: {exc}"
            ) from exc

    async def _start_back_end(self, settings: AppSettings, index: AppIndex) -> None:
        # The storage SDKs take a third of a second to import: on a thread, so that the
        # listener keeps answering meanwhile.
        await asyncio.to_thread(import_storage_clients)
        connection_string = self.options.connection_string or settings.storage_connection_string()
        storage = self.storage = self.options.task_hub or open_task_hub(
            connection_string, settings.hub_name, settings.partition_count
        )
        await storage.create()
        health = self.storage_health = StorageHealth(storage)

        runtime = self.runtime = DurableRuntime(
            storage=storage,
            health=health,
            index=index,
            invocations=self.invocations,
            clock=self.clock,
            bindings=self.bindings,
            owner=host_identity(self.options.port),
            options=RuntimeOptions(
                lease_seconds=self._lease_seconds(settings),
                max_concurrent_orchestrations=settings.max_concurrent_orchestrations,
                max_concurrent_activities=settings.max_concurrent_activities,
                # Orchestrations stay in memory between episodes unless host.json turns this off.
                extended_sessions=settings.extended_sessions,
                # ...and are checked against replays from the start unless the app setting says not to.
                replay_check=replay_check_enabled(settings.values),
                max_poll_interval=self.options.max_poll_interval,
            ),
        )
        self.client = DurableClientService(
            storage=retrying(storage, health),
            index=index,
            leases=runtime.leases,
            deliver=runtime.route,
            urls=ClientUrls(
                public_base=self.base_url, rpc_base=f"http://127.0.0.1:{self.options.port}{RPC_PATH}"
            ),
            connection_name=connection_label(settings.storage_connection_name),
            runs_here=runtime.runs_here,
            checkpoint_written=runtime.orchestrations.checkpoint_written,
            forget=runtime.forget_instance,
            reload=runtime.orchestrations.reload,
        )

        hubs = TaskHubClients(
            self.client,
            accounts=StorageAccounts(settings.storage_connection_name, connection_string),
            own_connection_string=connection_string,
            partition_count=settings.partition_count,
        )
        self._durable_api = DurableHttpApi(self.client, hubs)

        await runtime.start()

        # -- timer, queue and blob triggers; storage for input and output bindings ------------------
        self._accounts = StorageAccounts(settings.storage_connection_name, connection_string)
        queues = queues_options(settings.host_json)
        self.bindings.attach_storage(self._accounts, queue_encoding=queues.message_encoding)
        self.triggers = TriggerListeners(
            index=index,
            host_json=settings.host_json,
            accounts=self._accounts,
            bindings=self.bindings,
            invocations=self.invocations,
            extension_input=self._resolve_input,
            blob_scan_interval=timedelta(seconds=self.options.max_poll_interval),
        )
        await self.triggers.start()
        # -- end of triggers ---------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop within the grace period, whatever storage does (see ``_stopping``).

        First nothing new is taken on, then in-flight work is abandoned (it is redone from its
        checkpoints), then partitions and leased messages are handed back as far as storage
        answers in time, and last the clients are closed.
        """
        deadline = StopDeadline(self.options.stop_grace_seconds)
        # -- timer, queue and blob triggers (first: in-flight invocations may still use the host) ---
        if self.triggers is not None:
            await deadline.run("stopping the triggers", self.triggers.stop())
            self.triggers = None
        if self._accounts is not None:
            await deadline.run("closing the binding clients", self._accounts.close(), local=True)
            self._accounts = None
        # -- end of triggers ---------------------------------------------------------------------
        if self.runtime is not None:
            await self.runtime.stop_taking_work(deadline)
        if self._runner is not None:
            await deadline.run("the HTTP requests in flight", self._runner.cleanup(), local=True)
        if self.runtime is not None:
            await self.runtime.close(deadline)
        if self.storage is not None:
            await deadline.run("closing the storage clients", self.storage.close(), local=True)
        deadline.report()

    def _lease_seconds(self, settings: AppSettings) -> float:
        if self.options.lease_seconds is not None:
            return self.options.lease_seconds
        timeout = settings.control_queue_visibility_timeout
        return timeout.total_seconds() if timeout is not None else 300.0

    # -- admin routes (as the Functions host answers them) ------------------------------------

    async def _host_status(self, request: web.Request) -> web.Response:
        await self._until_ready()
        status: dict[str, Any] = {"id": self.settings.hub_name if self.settings else "", "state": "Running"}
        outage = self.storage_health.not_answering if self.storage_health is not None else None
        if outage is not None:
            # The host's own error state, with the reason in "errors" as the host lists them.
            status.update(state="Error", errors=[outage])
        return web.json_response(status)

    async def _host_ping(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    def _function_keys(self, settings: AppSettings) -> FunctionKeys | None:
        if not self.options.enforce_auth:
            return None
        keys = FunctionKeys.from_settings(settings.values)
        logger.info(
            "Function keys are enforced (--enforce-auth): HTTP functions that are not anonymous need the "
            "x-functions-key header or the code query parameter. Host key: %s, master key: %s "
            "(set EMULATOR_HOST_KEY / EMULATOR_MASTER_KEY to change them).",
            keys.host,
            keys.master,
        )
        return keys

    # -- bindings ---------------------------------------------------------------------------

    def _resolve_input(
        self, function: FunctionInfo, binding: Mapping[str, Any], request: web.Request | None = None
    ) -> Any:
        # The binding JSON does not depend on the request, so non-HTTP triggers pass none.
        # "orchestrationClient" is the binding's name in older v1 apps.
        if str(binding.get("type", "")).lower() in ("durableclient", "orchestrationclient"):
            assert self.client is not None
            return json.dumps(self.client.binding_data(binding.get("taskHub")))
        logger.warning(
            "Function '%s': input binding '%s' of type '%s' is not supported yet; it gets None",
            function.name,
            binding.get("name"),
            binding.get("type"),
        )
        return None

    def advance_time(self, delta: timedelta) -> None:
        """Move durable time forward: timers due by then fire now (call on the host's loop)."""
        self.clock.advance(delta)


def _http_only(function: FunctionInfo) -> bool:
    """True for a function whose only bindings are its HTTP trigger and HTTP output."""
    return all(str(b.get("type", "")).lower() in ("httptrigger", "http") for b in function.bindings)
