"""The hosts of a test session: shared ones by configuration, and ones a test starts for itself."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulator.app._settings import load_settings
from emulator.taskhub.azure import open_task_hub
from emulator.testing._background import _WorkerLoop
from emulator.testing._durable_host import DurableHost, HostConfig
from emulator.testing._memory_hubs import MEMORY_CONNECTION, forget_memory_task_hub, is_memory

HOST_OPTIONS = (
    "script_root",
    "subprocess",
    "task_hub",
    "storage",
    "lease_seconds",
    "crash_at",
    "enforce_auth",
    "env",
)


class HostOptionError(ValueError):
    """A host configuration the chosen storage cannot run; the message is one line for the user."""


def session_hub_name() -> str:
    """A fresh task hub name, valid for Azure tables, queues and containers (a letter, then 3-45
    letters and digits in all)."""
    return f"test{uuid.uuid4().hex[:8]}"


class DurableHosts:
    """Hosts of one test session: shared ones by configuration, and owned ones.

    With ``session_hubs``, each app's shared host runs on a task hub of this session's own
    (:func:`session_hub_name`) instead of the app's, so a development host on the same app and
    storage takes none of its work; :meth:`close` deletes the task hubs made up here.
    ``azure_connection`` gives Azure Storage to hosts that ask for ``storage="azure"`` when the
    session's own storage is in memory.
    """

    def __init__(
        self,
        connection_string: str,
        default_root: Path,
        log_dir: Path,
        *,
        session_hubs: bool = False,
        azure_connection: Callable[[], str] | None = None,
    ) -> None:
        self.connection_string = connection_string
        self.default_root = default_root
        self.log_dir = log_dir
        self.session_hubs = session_hubs
        self._azure_connection = azure_connection
        self._shared: dict[Path, DurableHost] = {}
        self._owned: list[DurableHost] = []
        self._numbers = itertools.count(1)
        self._session_hubs: dict[Path, str] = {}
        self._generated: set[str] = set()
        #: Task hubs named here, to delete at the end: (connection string, name, partition count).
        self._made: set[tuple[str, str, int]] = set()

    def config(self, script_root: str | os.PathLike[str] | None = None, **options: Any) -> HostConfig:
        unknown = set(options) - set(HOST_OPTIONS)
        if unknown:
            raise TypeError(f"unknown host option(s) {sorted(unknown)}; known: {', '.join(HOST_OPTIONS)}")
        root = Path(script_root) if script_root else self.default_root
        if not root.is_absolute():
            root = self.default_root / root
        env = options.pop("env", None) or {}
        return HostConfig(script_root=root.resolve(), env=tuple(sorted(dict(env).items())), **options)

    def session_hub(self, script_root: str | os.PathLike[str] | None = None) -> str | None:
        """The task hub this session made up for the app's shared host, if it has one yet."""
        return self._session_hubs.get(self.config(script_root).script_root)

    def shared(self, script_root: str | os.PathLike[str] | None = None, **options: Any) -> DurableHost:
        """The running host for this configuration, started (or restarted after a kill) if needed.

        One app has one shared host at a time, on the app's own task hub (or the session's, with
        ``session_hubs``): asking for another configuration of the same app stops the previous one.
        """
        config = self.config(script_root, **options)
        if self.session_hubs and config.task_hub is None:
            hub = self._session_hubs.setdefault(config.script_root, session_hub_name())
            self._generated.add(hub)
            config = dataclasses.replace(config, task_hub=hub)
        host = self._shared.get(config.script_root)
        if host is not None and host.config == config and host.alive:
            return host
        if host is not None:
            host.stop()
            del self._shared[config.script_root]
        host = self._launch(config)
        self._shared[config.script_root] = host
        return host

    def start(self, script_root: str | os.PathLike[str] | None = None, **options: Any) -> DurableHost:
        """A new host of the caller's own; a fresh task hub unless ``task_hub=`` names one."""
        config = self.config(script_root, **options)
        if config.task_hub is None:
            # Fresh hub: no leftovers of earlier tests, and no other host of the app takes its work.
            base = load_settings(config.script_root).hub_name[:30]
            fresh = f"{base}T{uuid.uuid4().hex[:10]}"
            self._generated.add(fresh)
            config = dataclasses.replace(config, task_hub=fresh)
        host = self._launch(config)
        self._owned.append(host)
        return host

    def connection_for(self, config: HostConfig) -> str:
        """The storage connection of a host of this configuration (the session's unless it asks)."""
        if config.storage == "memory" or (config.storage is None and is_memory(self.connection_string)):
            connection = MEMORY_CONNECTION
        elif not is_memory(self.connection_string):
            connection = self.connection_string
        elif self._azure_connection is None:
            raise HostOptionError("storage='azure' needs Azure Storage, and this session has none")
        else:
            connection = self._azure_connection()
        if config.subprocess and is_memory(connection):
            raise HostOptionError(
                "subprocess=True (and crash_at=) needs Azure Storage: a host in another process cannot "
                "share this process's in-memory task hub (use --task-hub=azure or storage='azure')"
            )
        return connection

    def _launch(self, config: HostConfig) -> DurableHost:
        connection = self.connection_for(config)
        log_path = self.log_dir / f"host-{next(self._numbers)}.log" if config.subprocess else None
        host = DurableHost(config, connection, log_path)
        if config.task_hub in self._generated:
            self._made.add((connection, config.task_hub, host.settings.partition_count))
        return host.start()

    def stop(self, host: DurableHost) -> None:
        host.stop()
        if host in self._owned:
            self._owned.remove(host)

    def stop_all(self) -> None:
        for host in [*self._owned, *self._shared.values()]:
            host.stop()
        self._owned.clear()
        self._shared.clear()

    def close(self) -> None:
        """Stop every host and delete the task hubs made up for this session."""
        self.stop_all()
        made, self._made = self._made, set()
        if not made:
            return
        loop = _WorkerLoop.acquire()
        try:
            for connection, name, partition_count in sorted(made):
                if is_memory(connection):
                    forget_memory_task_hub(name)
                    continue
                with contextlib.suppress(Exception):  # best effort: the session is over
                    asyncio.run_coroutine_threadsafe(
                        _delete_task_hub(connection, name, partition_count), loop
                    ).result(60)
        finally:
            _WorkerLoop.release()


async def _delete_task_hub(connection_string: str, name: str, partition_count: int) -> None:
    hub = open_task_hub(connection_string, name, partition_count)
    try:
        await hub.delete()
    finally:
        await hub.close()


class DurableHostFactory:
    """``durable_host_factory(script_root=None, *, subprocess=False, **options)``: a new host."""

    def __init__(self, hosts: DurableHosts) -> None:
        self._hosts = hosts
        self.started: list[DurableHost] = []

    def __call__(
        self, script_root: str | os.PathLike[str] | None = None, *, subprocess: bool = False, **options: Any
    ) -> DurableHost:
        host = self._hosts.start(script_root, subprocess=subprocess, **options)
        self.started.append(host)
        return host

    def stop_all(self) -> None:
        for host in self.started:
            self._hosts.stop(host)
        self.started.clear()
