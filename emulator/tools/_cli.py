"""``python -m emulator``: the command line, modelled on ``func start``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from emulator.app._app_index import format_function_listing
from emulator.app._settings import AppLoadError
from emulator.durable._worker import close_client_sessions
from emulator.host._azurite import AzuriteNotInstalledError, StorageConnection, connect_storage
from emulator.host._host import EmulatorHost, HostOptions
from emulator.host._reload import HostReloader
from emulator.host._stopping import (
    OVERDUE_SECONDS,
    STOP_GRACE_ENV_VAR,
    InvalidStopGraceError,
    exit_when_overdue,
    parse_stop_grace,
    stop_grace_from_environment,
)
from emulator.taskhub.azure import is_storage_error
from emulator.tools import _durable_cli
from emulator.tools._console import ConsoleWriter
from emulator.tools._debug import DEFAULT_DEBUG_PORT, DebuggerUnavailableError, listen_for_debugger

logger = logging.getLogger("emulator")
#: The cyclic collector's first threshold in a host (Python's default is 700); see
#: docs/performance.md, "Garbage collection". Set before the app is imported, so an app that
#: sets its own thresholds at import keeps them.
GC_YOUNG_THRESHOLD = 10_000
#: The console writer of this process (set by :func:`configure_logging`).
_console: ConsoleWriter | None = None


def configure_logging(verbose: bool) -> None:
    global _console
    writer = _console = ConsoleWriter(sys.stdout)
    writer.start()
    root = logging.getLogger()
    root.handlers[:] = [writer.handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # The Azure SDKs log every HTTP request at INFO: keep them for --verbose.
    for noisy in ("azure", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description="Run an Azure Durable Functions Python app locally, with its state in Azurite.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start the function app (like `func start`)")
    start.add_argument("--script-root", type=Path, default=Path.cwd(), help="the app folder (default: .)")
    start.add_argument("--port", type=int, default=7071, help="HTTP port on 127.0.0.1 (default: 7071)")
    start.add_argument("--verbose", action="store_true", help="log storage and history detail")
    start.add_argument(
        "--lease-seconds",
        type=float,
        default=None,
        help="how long queue messages stay leased to this host without renewal; a killed host's work "
        "reappears after this (default: host.json's controlQueueVisibilityTimeout, else 300)",
    )
    start.add_argument(
        "--stop-grace-seconds",
        default=None,
        help="on Ctrl+C or SIGTERM, how long to wait for work in flight and for storage before "
        f"exiting; what is cut off is redone by the next host (default: {STOP_GRACE_ENV_VAR}, else 5)",
    )
    start.add_argument(
        "--enforce-auth",
        action="store_true",
        help="require function keys for HTTP functions that are not anonymous (func start does not); "
        "keys: EMULATOR_HOST_KEY, EMULATOR_MASTER_KEY, EMULATOR_FUNCTION_KEY__<name>",
    )
    start.add_argument(
        "--debug",
        nargs="?",
        type=int,
        const=DEFAULT_DEBUG_PORT,
        default=None,
        metavar="PORT",
        help=f"listen for a debugger (VS Code's attach, through debugpy) on 127.0.0.1:PORT "
        f"(default: {DEFAULT_DEBUG_PORT}); needs the [debug] extra",
    )
    start.add_argument(
        "--watch",
        action="store_true",
        help="reload the app when its Python files, host.json, local.settings.json or a function.json "
        "change; the task hub, Azurite and the instances stay, and instances go on on the new code",
    )
    _add_browser_options(start)
    _durable_cli.add_parser(commands)
    # -- replay: offline replay of saved histories (emulator/tools/_replay_cli.py) --
    from emulator.tools import _replay_cli

    _replay_cli.add_parser(commands)
    # -- end replay --
    return parser


def _add_browser_options(start: argparse.ArgumentParser) -> None:
    start.add_argument(
        "--cors",
        default=None,
        help="origins allowed to call the app from a browser, separated by commas with no spaces, or '*' "
        "(like func start; default: Host.CORS in local.settings.json)",
    )
    start.add_argument(
        "--cors-credentials",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="allow cross-origin requests with cookies and the Authorization header "
        "(default: Host.CORSCredentials in local.settings.json)",
    )
    start.add_argument(
        "--allowed-hosts",
        action="append",
        default=[],
        metavar="NAMES",
        help="host names besides localhost, 127.0.0.1 and [::1] under which the management API and the "
        "dashboard answer (a container's or a tunnel's name; commas between several; also "
        "EMULATOR_ALLOWED_HOSTS)",
    )


async def _serve(
    options: HostOptions, host: EmulatorHost, clean_up: Callable[[], None], watch: bool = False
) -> None:
    try:
        await host.start()
    except BaseException:
        # Close what did start (the listener, storage clients) before the error is reported.
        with contextlib.suppress(Exception):
            await host.stop()
        await close_client_sessions()
        raise
    assert host.index is not None and host.settings is not None
    print()
    print(format_function_listing(host.index, host.base_url, host.settings.route_prefix))
    print()
    logger.info("Dashboard: %s/dashboard", host.base_url)
    logger.info(
        "Host started on %s (task hub '%s'). Press Ctrl+C to stop.", host.base_url, host.settings.hub_name
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    reloader = HostReloader(host)
    watching = asyncio.create_task(reloader.watch(stop)) if watch else None
    if watch:
        logger.info("Watching %s: a saved change reloads the app.", options.script_root)
    try:
        await stop.wait()
    finally:
        logger.info("Stopping the host...")
        exit_when_overdue(options.stop_grace_seconds + OVERDUE_SECONDS, clean_up)
        if watching is not None:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        await reloader.stop()
        await close_client_sessions()


def start(args: argparse.Namespace) -> int:
    script_root = args.script_root.resolve()
    if script_root.is_dir():
        # The Functions host starts the language worker in the app folder: user code opens its
        # data files relative to it, however the host was started. (A missing folder is reported
        # by the app loader.)
        os.chdir(script_root)
    try:
        grace = (
            stop_grace_from_environment()
            if args.stop_grace_seconds is None
            else parse_stop_grace(args.stop_grace_seconds, "--stop-grace-seconds")
        )
    except InvalidStopGraceError as exc:
        logger.error("%s", exc)
        return 1
    options = HostOptions(
        script_root=script_root,
        port=args.port,
        lease_seconds=args.lease_seconds,
        enforce_auth=args.enforce_auth,
        stop_grace_seconds=grace,
        cors=args.cors,
        cors_credentials=args.cors_credentials,
        allowed_hosts=tuple(args.allowed_hosts),
    )
    host = EmulatorHost(options)
    storage: StorageConnection | None = None
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)

    def clean_up() -> None:
        """What an overdue stop still does before the process ends: Azurite, the console."""
        if storage is not None:
            storage.close()
        if _console is not None:
            _console.stop()

    try:
        if args.debug is not None:
            listen_for_debugger(args.debug)
        host.load()
        assert host.settings is not None
        storage = connect_storage(
            host.settings.storage_connection_string(), script_root / "__azurite__", search_roots=[script_root]
        )
        options.connection_string = storage.connection_string
        asyncio.run(_serve(options, host, clean_up, watch=args.watch))
    except (AppLoadError, AzuriteNotInstalledError, DebuggerUnavailableError) as exc:
        logger.error("%s", exc)
        return 1
    except OSError as exc:
        logger.error("Could not start the host: %s", exc)
        return 1
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        logger.error(
            "Could not start the host: the storage account of %s did not answer (%s). "
            "Check the connection string, and that Azurite (or the account) is running.",
            host.settings.storage_connection_name if host.settings else "AzureWebJobsStorage",
            reason,
        )
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        if storage is not None:
            storage.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "durable":
        # Command output goes to stdout (JSON with --json): keep log lines on stderr, warnings only.
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s", force=True)
        return _durable_cli.run(args)
    if args.command == "replay":  # -- replay: runs no host and touches no storage --
        return int(args.run_replay(args))
    configure_logging(getattr(args, "verbose", False))
    if args.command == "start":
        return start(args)
    return 2
