"""Function keys for HTTP triggers, checked only when the host is started with ``--enforce-auth``.

``func start`` never checks keys: every HTTP function answers whatever its ``authLevel``, and so
does the emulator by default. With enforcement on, a request must carry a key the way clients
send one to Azure: the ``x-functions-key`` header, or else the ``code`` query parameter. A missing
or wrong key gets the host's bare 401. Which keys open which functions follows the host:

* ``anonymous``: no key needed;
* ``function``: the function's own key, the host key, or the master key;
* ``admin`` (and ``system``): the master key only.

The keys are app settings (local.settings.json ``Values`` or environment variables, the
environment winning): ``EMULATOR_MASTER_KEY`` (default ``emulator-master-key``),
``EMULATOR_HOST_KEY`` (default ``emulator-host-key``) and, for a key that opens one function only,
``EMULATOR_FUNCTION_KEY__<FunctionName>``.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from emulator.app._app_index import FunctionInfo

MASTER_KEY_SETTING = "EMULATOR_MASTER_KEY"
HOST_KEY_SETTING = "EMULATOR_HOST_KEY"
FUNCTION_KEY_PREFIX = "EMULATOR_FUNCTION_KEY__"
DEFAULT_MASTER_KEY = "emulator-master-key"
DEFAULT_HOST_KEY = "emulator-host-key"
KEY_HEADER = "x-functions-key"


@dataclass(frozen=True)
class FunctionKeys:
    master: str
    host: str
    #: Function name (case-folded) -> that function's own key.
    functions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, values: Mapping[str, str]) -> FunctionKeys:
        settings = {**values, **{k: v for k, v in os.environ.items() if v}}
        prefix = FUNCTION_KEY_PREFIX.lower()
        functions = {
            name[len(prefix) :].casefold(): key
            for name, key in settings.items()
            if name.lower().startswith(prefix) and key
        }
        return cls(
            master=settings.get(MASTER_KEY_SETTING) or DEFAULT_MASTER_KEY,
            host=settings.get(HOST_KEY_SETTING) or DEFAULT_HOST_KEY,
            functions=functions,
        )

    def allows(self, function: FunctionInfo, request: web.Request) -> bool:
        # A binding without authLevel gets the host's default, "function".
        level = str(function.trigger.get("authLevel") or "function").lower()
        if level == "anonymous":
            return True
        key = request.headers.get(KEY_HEADER) or request.query.get("code")
        if not key:
            return False
        accepted = [self.master]
        if level == "function":
            accepted.append(self.host)
            own = self.functions.get(function.name.casefold())
            if own:
                accepted.append(own)
        return any(hmac.compare_digest(key.encode(), candidate.encode()) for candidate in accepted)
