"""Run ``python -m emulator start`` in a child process, to kill it the hard way and start again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from emulator.durable._crash import ENV_VAR as CRASH_ENV_VAR
from emulator.host._azurite import free_port


class SubprocessHost:
    """An emulator host in its own process: started, waited for, stopped or SIGKILLed."""

    def __init__(
        self,
        script_root: Path,
        *,
        connection_string: str,
        port: int | None = None,
        lease_seconds: float | None = None,
        crash_at: str | None = None,
        enforce_auth: bool = False,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        watch: bool = False,
    ) -> None:
        self.script_root = Path(script_root)
        self.port = port or free_port()
        self.connection_string = connection_string
        self.lease_seconds = lease_seconds
        self.crash_at = crash_at
        self.enforce_auth = enforce_auth
        self.extra_env = dict(env or {})
        self.log_path = log_path
        #: ``start --watch``: the host reloads the app when its files change.
        self.watch = watch
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60.0) -> SubprocessHost:
        env = dict(os.environ)
        env.update(self.extra_env)
        # The app's activities use the same storage as the host, like AzureWebJobsStorage on Azure.
        env["AzureWebJobsStorage"] = self.connection_string
        env.pop(CRASH_ENV_VAR, None)
        if self.crash_at:
            env[CRASH_ENV_VAR] = self.crash_at
        command = [sys.executable, "-m", "emulator", "start", "--script-root", str(self.script_root)]
        command += ["--port", str(self.port)]
        if self.lease_seconds is not None:
            command += ["--lease-seconds", str(self.lease_seconds)]
        if self.enforce_auth:
            command.append("--enforce-auth")
        if self.watch:
            command.append("--watch")
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"The emulator host exited with code {self.process.returncode} while starting"
                )
            if self._answers():
                return self
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"The emulator host did not answer on port {self.port} within {timeout} s")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/admin/host/status", timeout=2) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_exit(self, timeout: float = 120.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no lease hand-back, exactly like a crash."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> SubprocessHost:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
