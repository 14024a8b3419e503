"""Azurite (the local Azure Storage emulator) as a child process.

The emulator keeps all durable state in Azure Storage. Locally that is Azurite, found in a
``node_modules`` (the emulator repository's, the app's: :func:`search_places`) or installed on first
use into a per-user cache (emulator/host/_azurite_install.py). :func:`connect_storage` applies the
same rule as ``func start``: a development-storage connection string (``UseDevelopmentStorage=true``) means
"Azurite on 127.0.0.1 ports 10000-10002"; if it is already running there it is used, otherwise it
is started with its data kept on disk.

Flags that matter (measured with Azurite 3.37):

* ``--skipApiVersionCheck``: the current blob and queue SDKs send an API version newer than
  Azurite accepts; without the flag every blob and queue call fails.
* ``--location`` (disk persistence) rather than ``--inMemoryPersistence``: in memory, Azurite's
  periodic clean-up of queue messages freezes the process for tens of seconds under load.
* The binary is started directly (not through ``npx``) in its own process group, so stopping it
  stops everything it started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

from emulator.host._azurite_install import (
    AZURITE_VERSION,
    AzuriteNotInstalledError,
    cache_dir,
    install_azurite,
    launcher_in,
)

logger = logging.getLogger("emulator.azurite")

DEV_ACCOUNT_NAME = "devstoreaccount1"
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

#: The repository that contains the ``emulator`` package (its ``node_modules`` holds Azurite).
REPO_ROOT = Path(__file__).resolve().parents[2]

LOG_FILE_NAME = "azurite.log"
_LOG_TAIL_LINES = 40
_PORT_CHECK_TIMEOUT = 0.5
_AUTO_PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class AzuriteEndpoints:
    """Where the three Azurite services listen."""

    host: str = "127.0.0.1"
    blob_port: int = 10000
    queue_port: int = 10001
    table_port: int = 10002

    @property
    def ports(self) -> tuple[int, int, int]:
        return (self.blob_port, self.queue_port, self.table_port)

    def _url(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}/{DEV_ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """An explicit connection string for the development account on these ports."""
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={DEV_ACCOUNT_NAME};"
            f"AccountKey={DEV_ACCOUNT_KEY};"
            f"BlobEndpoint={self._url(self.blob_port)};"
            f"QueueEndpoint={self._url(self.queue_port)};"
            f"TableEndpoint={self._url(self.table_port)}"
        )

    def listening_ports(self) -> list[int]:
        """The ports (blob, queue, table order) that accept TCP connections right now."""
        return [port for port in self.ports if _port_accepts(self.host, port)]

    def all_listening(self) -> bool:
        """True when all three ports accept TCP connections."""
        return all(_port_accepts(self.host, port) for port in self.ports)

    def any_listening(self) -> bool:
        """True when at least one of the three ports accepts TCP connections."""
        return any(_port_accepts(self.host, port) for port in self.ports)

    def describe(self) -> str:
        return f"blob {self.blob_port}, queue {self.queue_port}, table {self.table_port}"


def _port_accepts(host: str, port: int, timeout: float = _PORT_CHECK_TIMEOUT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _free_endpoints() -> AzuriteEndpoints:
    """Three distinct free loopback ports (the sockets are held together so they differ)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(3):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    return AzuriteEndpoints(blob_port=ports[0], queue_port=ports[1], table_port=ports[2])


def _parse_connection_string(connection_string: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    for segment in connection_string.split(";"):
        key, sep, value = segment.partition("=")
        if not sep or not key.strip():
            continue
        settings[key.strip().lower()] = value.strip()
    return settings


def client_options(connection_string: str) -> dict[str, Any]:
    """Options for the async storage clients of an account.

    Against a loopback endpoint the clients skip reading proxy settings and ``~/.netrc`` from the
    environment: aiohttp does that lookup on every request, which cost about a tenth of the
    host's CPU. A remote account keeps the environment's proxy settings.
    """
    settings = _parse_connection_string(connection_string)
    endpoints = [v for k, v in settings.items() if k.endswith("endpoint")]
    local = is_development_storage(connection_string) or (
        bool(endpoints) and all(urlsplit(e).hostname in ("127.0.0.1", "localhost", "::1") for e in endpoints)
    )
    return {"use_env_settings": False} if local else {}


def storage_endpoints(connection_string: str) -> tuple[str, dict[str, str]]:
    """The account name and the blob, queue and table endpoints a connection string names: explicit
    ``BlobEndpoint=...`` settings, else ``<protocol>://<account>.<service>.<EndpointSuffix>``."""
    settings = _parse_connection_string(connection_string)
    account = settings.get("accountname", "")
    protocol = settings.get("defaultendpointsprotocol", "https")
    suffix = settings.get("endpointsuffix", "core.windows.net")
    endpoints = {}
    for service in ("blob", "queue", "table"):
        explicit = settings.get(f"{service}endpoint")
        if explicit or account:
            endpoints[service] = explicit or f"{protocol}://{account}.{service}.{suffix}"
    return account, endpoints


def describe_storage(connection_string: str) -> str:
    """``account 'name' (blob URL, queue URL, table URL)``, for the log: never the key or a SAS."""
    account, endpoints = storage_endpoints(connection_string)
    urls = ", ".join(f"{service} {url.split('?', 1)[0]}" for service, url in endpoints.items())
    return f"account '{account or '(none named)'}' ({urls or 'no endpoints named'})"


def is_development_storage(connection_string: str) -> bool:
    """True for ``UseDevelopmentStorage=true`` (any case, whitespace and a trailing ``;`` tolerated).

    ``DevelopmentStorageProxyUri`` is not supported: such a string still means Azurite on the
    default loopback ports.
    """
    value = _parse_connection_string(connection_string).get("usedevelopmentstorage")
    return value is not None and value.lower() == "true"


def search_places(search_roots: Sequence[Path] = ()) -> list[Path]:
    """The folders whose ``node_modules/.bin`` may hold the Azurite launcher, in the order tried.

    The emulator's own folder (a source checkout's ``node_modules``), then each of ``search_roots``
    (the function app's folder) and the current directory with the folders above them, the way
    Node.js resolves ``node_modules``, and last the per-user cache the emulator installs into.
    """
    places: list[Path] = []
    starts = [Path(root).resolve() for root in (*search_roots, Path.cwd())]
    for folder in (REPO_ROOT, *(up for start in starts for up in (start, *start.parents)), cache_dir()):
        if folder not in places:
            places.append(folder)
    return places


def find_azurite_executable(search_roots: Sequence[Path] = ()) -> Path | None:
    """The Azurite launcher in the first of :func:`search_places` that has one, else an ``azurite`` on
    ``PATH``, else None."""
    for folder in search_places(search_roots):
        found = launcher_in(folder)
        if found is not None:
            return found
    on_path = shutil.which("azurite")
    return Path(on_path) if on_path else None


def looked_in(search_roots: Sequence[Path] = ()) -> str:
    """The places :func:`find_azurite_executable` looks in, for an error message."""
    starts = ", ".join(str(Path(root).resolve()) for root in (*search_roots, Path.cwd()))
    return (
        f"looked for node_modules/.bin/azurite in {REPO_ROOT}, in {starts} and the folders above them, "
        f"in the cache {cache_dir()}, and for azurite on PATH"
    )


def find_or_install_azurite(search_roots: Sequence[Path] = ()) -> Path:
    """The Azurite launcher :func:`find_azurite_executable` finds, else the pinned Azurite installed
    with npm into the per-user cache (see emulator/host/_azurite_install.py)."""
    found = find_azurite_executable(search_roots)
    if found is not None:
        if shutil.which("node") is None:
            raise missing_azurite_error(search_roots)
        return found
    try:
        return install_azurite()
    except AzuriteNotInstalledError as exc:
        raise AzuriteNotInstalledError(f"{exc} (Azurite not found: {looked_in(search_roots)})") from None


def missing_azurite_error(search_roots: Sequence[Path] = ()) -> AzuriteNotInstalledError:
    """How to install Azurite by hand, and where it was looked for."""
    in_app = f"`npm install azurite@{AZURITE_VERSION}` in your function app directory"
    # Only a source checkout has a `dev` script; an installed package lives in site-packages.
    if (REPO_ROOT / "dev").is_file() and (REPO_ROOT / "package.json").is_file():
        install = f"run `./dev setup` in the emulator repository ({REPO_ROOT}), or {in_app}"
    else:
        install = f"run {in_app} (or put an `azurite` command on PATH)"
    where = looked_in(search_roots)
    if shutil.which("node") is None:
        return AzuriteNotInstalledError(
            "Node.js was not found on PATH, and Azurite (the local Azure Storage emulator) runs on it. "
            "Install Node.js 18+ (https://nodejs.org or your package manager), then install Azurite: "
            f"{install} ({where})."
        )
    return AzuriteNotInstalledError(
        f"Azurite is not installed ({where}). {install[0].upper()}{install[1:]}; "
        "Node.js 18+ is required (https://nodejs.org or your package manager)."
    )


def _read_tail(path: Path, offset: int = 0, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace").strip()
    return "\n".join(text.splitlines()[-lines:])


#: Preloaded into the Azurite this module starts: its row lookups by the key with fewer candidates.
LOOKUP_ORDER_SCRIPT = Path(__file__).with_name("azurite_lookups.js")


def _with_lookup_order(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with :data:`LOOKUP_ORDER_SCRIPT` required by Node.

    Azurite finds a table row through its RowKey index first, which in the Durable Task layout
    means walking one row per instance of the task hub for every row written: 4,000 instances
    made a 5-row history transaction cost 8.7 ms of Azurite's CPU instead of 1.5 ms. The script
    (its comment says how) makes the same lookup go through whichever index has fewer candidates,
    the PartitionKey's unless one instance's history fills the table; the answers are the same.
    docs/performance.md has the figures.
    """
    env = dict(environ)
    require = f'--require "{LOOKUP_ORDER_SCRIPT}"'
    env["NODE_OPTIONS"] = f"{env['NODE_OPTIONS']} {require}" if env.get("NODE_OPTIONS") else require
    return env


@dataclass
class AzuriteServer:
    """A running Azurite child process."""

    endpoints: AzuriteEndpoints
    process: subprocess.Popen[bytes]
    location: Path
    log_path: Path
    _log_file: IO[bytes] | None = field(default=None, repr=False)
    _log_offset: int = field(default=0, repr=False)

    @classmethod
    def start(
        cls,
        location: Path,
        endpoints: AzuriteEndpoints | None = None,
        *,
        executable: Path | None = None,
        search_roots: Sequence[Path] = (),
        ready_timeout: float = 30.0,
        ordered_lookups: bool = True,
    ) -> AzuriteServer:
        """Start Azurite with its data in ``location`` and wait until all three services answer.

        With ``endpoints`` None, three free loopback ports are chosen. Without ``executable``, Azurite
        is looked for where :func:`search_places` says and installed with npm when it is not found.
        Raises :class:`AzuriteNotInstalledError` when it can be neither found nor installed and
        :class:`RuntimeError`
        when it exits early or does not answer within ``ready_timeout`` seconds.
        ``ordered_lookups`` False leaves Azurite's row lookups as they are (see
        :func:`_with_lookup_order`): the benchmark's floors compare the two.
        """
        if executable is None:
            executable = find_or_install_azurite(search_roots)
        else:
            executable = Path(executable)
            if not executable.is_file():
                raise AzuriteNotInstalledError(
                    f"Azurite executable {executable} does not exist. " + str(missing_azurite_error())
                )
        executable = executable.absolute()
        location = Path(location).absolute()
        location.mkdir(parents=True, exist_ok=True)

        if endpoints is not None:
            busy = endpoints.listening_ports()
            if busy:
                raise RuntimeError(
                    f"Cannot start Azurite on {endpoints.host}: port(s) {_join(busy)} already in use."
                )
            return cls._launch(executable, location, endpoints, ready_timeout, ordered_lookups)

        # Free ports can be taken by someone else before Azurite binds them: retry with new ones.
        for attempt in range(1, _AUTO_PORT_ATTEMPTS + 1):
            chosen = _free_endpoints()
            try:
                return cls._launch(executable, location, chosen, ready_timeout, ordered_lookups)
            except _AddressInUseError:
                if attempt == _AUTO_PORT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _launch(
        cls,
        executable: Path,
        location: Path,
        endpoints: AzuriteEndpoints,
        ready_timeout: float,
        ordered_lookups: bool,
    ) -> AzuriteServer:
        host = endpoints.host
        args = [
            str(executable),
            "--silent",
            "--location",
            str(location),
            "--blobHost",
            host,
            "--queueHost",
            host,
            "--tableHost",
            host,
            "--blobPort",
            str(endpoints.blob_port),
            "--queuePort",
            str(endpoints.queue_port),
            "--tablePort",
            str(endpoints.table_port),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]
        # Without: only the benchmark, to show what the script saves.
        env = _with_lookup_order(os.environ) if ordered_lookups else None
        log_path = location / LOG_FILE_NAME
        log_file = log_path.open("ab")
        log_offset = log_file.tell()
        try:
            if sys.platform == "win32":
                process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=location,
                    env=env,
                    creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,
                )
            else:
                process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=location,
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            log_file.close()
            raise RuntimeError(f"Could not run Azurite ({executable}): {exc}") from exc

        server = cls(
            endpoints=endpoints,
            process=process,
            location=location,
            log_path=log_path,
            _log_file=log_file,
            _log_offset=log_offset,
        )
        server._wait_ready(ready_timeout)
        return server

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                self.stop()
                tail = self.log_tail()
                message = (
                    f"Azurite exited with code {code} while starting ({self.endpoints.describe()} "
                    f"on {self.endpoints.host}). Log {self.log_path}:\n{tail or '(empty)'}"
                )
                if "EADDRINUSE" in tail:
                    raise _AddressInUseError(message)
                raise RuntimeError(message)
            if self.endpoints.all_listening():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(
                    f"Azurite did not answer on {self.endpoints.host} ({self.endpoints.describe()}) "
                    f"within {timeout:g} s. Log {self.log_path}:\n{self.log_tail() or '(empty)'}"
                )
            time.sleep(0.05)

    @property
    def connection_string(self) -> str:
        return self.endpoints.connection_string

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines Azurite wrote since this server was started."""
        return _read_tail(self.log_path, self._log_offset, lines)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.process.returncode is not None:
            return  # already reaped: the process group id may belong to someone else now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if sys.platform == "win32":
                if sig == signal.SIGTERM:
                    self.process.terminate()
                else:
                    self.process.kill()
            else:
                os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Azurite: SIGTERM to its process group, then SIGKILL after ``timeout``. Idempotent."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL if sys.platform != "win32" else signal.SIGTERM)
                self.process.wait()
        self._close_log()

    def kill(self) -> None:
        """Kill Azurite at once (SIGKILL to its process group), as a crash would."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGKILL if sys.platform != "win32" else signal.SIGTERM)
            self.process.wait()
        self._close_log()

    def pause(self) -> None:
        """Freeze Azurite (SIGSTOP, POSIX only): connections are still accepted, nothing answers."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused Azurite go on (SIGCONT)."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGCONT)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> AzuriteServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _AddressInUseError(RuntimeError):
    """Azurite could not bind one of its ports."""


def _join(ports: Sequence[int]) -> str:
    return ", ".join(str(port) for port in ports)


@dataclass
class StorageConnection:
    """The storage account the host uses, and the Azurite it started for it (if any)."""

    connection_string: str
    server: AzuriteServer | None = None

    def close(self) -> None:
        """Stop Azurite if it was started for this connection."""
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> StorageConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect_storage(
    connection_string: str,
    data_dir: Path,
    *,
    search_roots: Sequence[Path] = (),
    endpoints: AzuriteEndpoints | None = None,
) -> StorageConnection:
    """Resolve the app's storage connection string the way ``func start`` does.

    * Not development storage: returned unchanged, nothing is started.
    * Development storage with Azurite already answering on 127.0.0.1:10000-10002: that Azurite is
      used, through an explicit connection string for those ports.
    * Development storage with none of those ports in use: Azurite is started on them, its data
      kept in ``data_dir``; :meth:`StorageConnection.close` stops it.
    * Development storage with only some of those ports in use: :class:`RuntimeError`.

    ``endpoints`` replaces the default ports (10000-10002).
    """
    if not is_development_storage(connection_string):
        logger.info("Storage: %s, from the connection string", describe_storage(connection_string))
        return StorageConnection(connection_string, None)

    endpoints = endpoints or AzuriteEndpoints()
    busy = endpoints.listening_ports()
    if len(busy) == len(endpoints.ports):
        logger.info(
            "Storage: the Azurite already running on %s, %s",
            endpoints.host,
            describe_storage(endpoints.connection_string),
        )
        return StorageConnection(endpoints.connection_string, None)
    if busy:
        free = [port for port in endpoints.ports if port not in busy]
        raise RuntimeError(
            "The storage connection string is UseDevelopmentStorage=true, which needs Azurite on "
            f"{endpoints.host} ({endpoints.describe()}), but port(s) {_join(busy)} are in use by "
            f"another program while {_join(free)} {'is' if len(free) == 1 else 'are'} free. "
            "Stop the program using those ports (or start a complete Azurite on them), "
            "or set AzureWebJobsStorage to an explicit connection string."
        )

    data_dir = Path(data_dir)
    logger.info("Starting Azurite (%s) in %s", endpoints.describe(), data_dir)
    server = AzuriteServer.start(data_dir, endpoints, search_roots=search_roots)
    logger.info(
        "Storage: Azurite started by the emulator, %s; its data in %s, its log %s",
        describe_storage(server.connection_string),
        server.location,
        server.log_path,
    )
    return StorageConnection(server.connection_string, server)
