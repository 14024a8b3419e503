"""The hosts of a test session: shared ones by configuration, and ones a test starts for itself."""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path
from typing import Any

from emulator.app._settings import load_settings
from emulator.testing._durable_host import DurableHost, HostConfig

HOST_OPTIONS = ("script_root", "subprocess", "task_hub", "lease_seconds", "crash_at", "enforce_auth", "env")


class DurableHosts:
    """Hosts of one test session on one storage account: shared ones by configuration, and owned ones."""

    def __init__(self, connection_string: str, default_root: Path, log_dir: Path) -> None:
        self.connection_string = connection_string
        self.default_root = default_root
        self.log_dir = log_dir
        self._shared: dict[Path, DurableHost] = {}
        self._owned: list[DurableHost] = []
        self._numbers = itertools.count(1)

    def config(self, script_root: str | os.PathLike[str] | None = None, **options: Any) -> HostConfig:
        unknown = set(options) - set(HOST_OPTIONS)
        if unknown:
            raise TypeError(f"unknown host option(s) {sorted(unknown)}; known: {', '.join(HOST_OPTIONS)}")
        root = Path(script_root) if script_root else self.default_root
        if not root.is_absolute():
            root = self.default_root / root
        env = options.pop("env", None) or {}
        return HostConfig(script_root=root.resolve(), env=tuple(sorted(dict(env).items())), **options)

    def shared(self, script_root: str | os.PathLike[str] | None = None, **options: Any) -> DurableHost:
        """The running host for this configuration, started (or restarted after a kill) if needed.

        One app has one shared host at a time, on the app's own task hub: asking for another
        configuration of the same app stops the previous one.
        """
        config = self.config(script_root, **options)
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
            config = self.config(script_root, **{**options, "task_hub": f"{base}T{uuid.uuid4().hex[:10]}"})
        host = self._launch(config)
        self._owned.append(host)
        return host

    def _launch(self, config: HostConfig) -> DurableHost:
        log_path = self.log_dir / f"host-{next(self._numbers)}.log" if config.subprocess else None
        return DurableHost(config, self.connection_string, log_path).start()

    def stop(self, host: DurableHost) -> None:
        host.stop()
        if host in self._owned:
            self._owned.remove(host)

    def stop_all(self) -> None:
        for host in [*self._owned, *self._shared.values()]:
            host.stop()
        self._owned.clear()
        self._shared.clear()


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
