"""Running a triggered function the way the host and the worker do, for every non-HTTP trigger."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from emulator.app._app_index import FunctionInfo
from emulator.functions._bindings import Bindings, TriggerValue
from emulator.functions._invocation_context import InvocationContext
from emulator.functions._invocations import InvocationLog
from emulator.functions._user_code import call_function, function_directory, log_function_failure


class FunctionRunner:
    """Binds, invokes and flushes one function invocation; failures are logged, not raised."""

    def __init__(
        self,
        bindings: Bindings,
        invocations: InvocationLog,
        script_root: Path | None,
        extension_input: Callable[[FunctionInfo, Mapping[str, Any]], Any],
    ) -> None:
        self.bindings = bindings
        self._invocations = invocations
        #: v2 apps: the script root; v1 apps: None (each function's own folder).
        self._script_root = script_root
        self._extension_input = extension_input

    async def run(self, function: FunctionInfo, trigger: TriggerValue, reason: str) -> bool:
        """True when the function and its output bindings succeeded."""
        try:
            with self._invocations.invoke(function.name, reason=reason) as record:
                context = InvocationContext(
                    invocation_id=record.invocation_id,
                    function_name=function.name,
                    function_directory=function_directory(function, self._script_root),
                )

                def extension_input(binding: Mapping[str, Any]) -> Any:
                    return self._extension_input(function, binding)

                call = await self.bindings.prepare(
                    function, trigger, context, extension_input=extension_input
                )
                result = await call_function(function, call.kwargs, context)
                await self.bindings.finish(call, result)
            return True
        except Exception as exc:
            log_function_failure(function, exc)
            return False
