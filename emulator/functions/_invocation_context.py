"""The invocation context objects the Python worker passes as a function's ``context`` parameter."""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from emulator.app import _sdk as sdk


class _RpcException(sdk.RpcExceptionBase):
    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class TraceContext(sdk.TraceContextBase):
    def __init__(self, trace_parent: str, trace_state: str = "", attributes: Mapping[str, str] | None = None):
        self._trace_parent = trace_parent
        self._trace_state = trace_state
        self._attributes = dict(attributes or {})

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return self._attributes


class RetryContext(sdk.RetryContextBase):
    def __init__(self, retry_count: int = 0, max_retry_count: int = 0) -> None:
        self._retry_count = retry_count
        self._max_retry_count = max_retry_count

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self) -> sdk.RpcExceptionBase:
        return _RpcException()


class InvocationContext(func.Context):
    """The ``func.Context`` a function receives when it declares a ``context`` parameter."""

    def __init__(
        self,
        *,
        invocation_id: str,
        function_name: str,
        function_directory: str,
        trace_context: TraceContext | None = None,
        retry_context: RetryContext | None = None,
    ) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = trace_context or TraceContext(new_traceparent())
        self._retry_context = retry_context or RetryContext()
        # The worker gives each invocation a threading.local and sets invocation_id in the thread
        # that runs the function, so logging from user threads can be tied to the invocation.
        self._thread_local_storage = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> RetryContext:
        return self._retry_context

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local_storage


_TRACEPARENT_RE = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})")


def new_traceparent(incoming: str | None = None) -> str:
    """A W3C traceparent for a new span: a child of ``incoming`` when that is valid, else a new trace."""
    match = _TRACEPARENT_RE.fullmatch(incoming.strip().lower()) if incoming else None
    trace_id = match.group(1) if match else uuid.uuid4().hex
    flags = match.group(2) if match else "00"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"
