"""Input and output bindings of one invocation, converted as the Python worker and the host convert them.

Worker side (azure-functions-python-worker ``functions.py``/``bindings/meta.py``): a parameter annotated
``str`` or ``bytes`` (or ``Out[str]``/``Out[bytes]``) uses the worker's generic converter, any other
uses the converter ``azure.functions`` registers for the binding type (``queueTrigger`` ->
``func.QueueMessage``, ``blob`` -> ``func.InputStream``, ...), falling back to the generic one; trigger
metadata only reaches converters that support triggers; ``Out`` values left at None are not sent.

Host side: storage inputs are read and outputs written (see ``_storage_bindings``); outputs to
services the emulator does not provide (Twilio, SendGrid, Service Bus, ...) are recorded instead of
sent, logged, and kept on :attr:`Bindings.recorded_outputs`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

import azure.functions as func
from azure.functions import meta

from emulator.app._app_index import FunctionInfo
from emulator.app._dotnet import iso_json
from emulator.functions import _storage_bindings as storage
from emulator.functions._accounts import StorageAccounts
from emulator.functions._binding_expressions import (
    BindingData,
    BindingExpressionError,
    resolve,
    system_binding_data,
)

logger = logging.getLogger("emulator.bindings")

GENERIC = "generic"
# Input bindings the host's extensions provide rather than storage (resolved by the host callback).
EXTENSION_INPUTS = frozenset({"durableclient", "orchestrationclient"})
STORAGE_TYPES = frozenset({"blob", "queue", "table"})

T = TypeVar("T")


class Out(func.Out[T]):
    """The value holder the worker passes for an output binding parameter."""

    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, val: T) -> None:
        self._value = val

    def get(self) -> T:
        return self._value  # type: ignore[return-value]


@dataclass(frozen=True)
class RecordedOutput:
    """A value a function wrote to an output binding of a service the emulator does not provide."""

    function_name: str
    binding_name: str
    binding_type: str
    #: str, bytes, or the parsed JSON (dict, list, number) the worker sent.
    value: Any
    #: The binding's properties, with binding expressions and app settings resolved where possible.
    binding: Mapping[str, Any]
    invocation_id: str | None
    recorded_at: datetime

    def json(self) -> Any:
        """The value parsed as JSON (most of these bindings take a JSON object as a string)."""
        if isinstance(self.value, bytes | str):
            return json.loads(self.value)
        return self.value


@dataclass
class TriggerValue:
    """A trigger's value for one invocation: a ready object, or typed data for the worker's converter."""

    value: Any = None
    datum: meta.Datum | None = None
    #: Trigger metadata (raw values), sent to converters that support triggers.
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: What binding expressions of the other bindings can refer to.
    binding_data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class PreparedCall:
    function: FunctionInfo
    kwargs: dict[str, Any]
    outs: dict[str, Out[Any]]
    data: BindingData
    invocation_id: str | None


ExtensionInput = Callable[[Mapping[str, Any]], Any]
"""Returns the value of an input binding the host provides (durable client JSON); may be awaitable."""


# ---------------------------------------------------------------------------------------------
# The worker's type analysis and conversions


class GenericBinding:
    """The worker's ``bindings/generic.py``: str/bytes as they are, JSON as its text."""

    @classmethod
    def has_trigger_support(cls) -> bool:
        return False

    @classmethod
    def has_implicit_output(cls, bind_name: str | None = None) -> bool:
        return bind_name != "durableClient"

    @classmethod
    def encode(cls, obj: Any, *, expected_type: Any) -> meta.Datum:
        # The worker's order: a bool is caught by the int check first.
        if isinstance(obj, str):
            return meta.Datum(type="string", value=obj)
        if isinstance(obj, bytes | bytearray):
            return meta.Datum(type="bytes", value=bytes(obj))
        if obj is None:
            return meta.Datum(type=None, value=None)
        for kind, types in (("dict", dict), ("list", list), ("int", int), ("double", float)):
            if isinstance(obj, types):
                return meta.Datum(type=kind, value=obj)
        raise NotImplementedError

    @classmethod
    def decode(cls, data: meta.Datum, *, trigger_metadata: Any) -> Any:
        if data is None or data.type is None:
            return None
        if data.type in ("string", "bytes", "json"):
            return data.value
        raise ValueError(f'unexpected type of data received for the "generic" binding : {data.type!r}')


def converter_for(bind_type: str) -> Any:
    registered = func.get_binding_registry().get(bind_type)
    return registered if registered is not None else GenericBinding


def _has_implicit_output(binding_type: str) -> bool:
    converter = converter_for(binding_type)
    if converter is GenericBinding:
        return GenericBinding.has_implicit_output(binding_type)
    check = getattr(converter, "has_implicit_output", None)
    return bool(check()) if callable(check) else False


@dataclass(frozen=True)
class _Param:
    bind_type: str
    pytype: Any


@dataclass(frozen=True)
class _Signature:
    params: Mapping[str, _Param]
    return_type: Any
    names: frozenset[str]


_SIGNATURES: dict[int, tuple[FunctionInfo, _Signature]] = {}


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return dict(getattr(fn, "__annotations__", {}) or {})


def _signature(function: FunctionInfo) -> _Signature:
    cached = _SIGNATURES.get(id(function))
    if cached is not None and cached[0] is function:
        return cached[1]
    hints = _type_hints(function.user_function)
    try:
        names = frozenset(inspect.signature(function.user_function).parameters)
    except (TypeError, ValueError):
        names = frozenset()
    params: dict[str, _Param] = {}
    for binding in function.bindings:
        name = str(binding.get("name", ""))
        btype = str(binding.get("type", ""))
        if name == "$return":
            continue
        annotated = name in hints
        pytype = hints.get(name)
        origin = typing.get_origin(pytype)
        if isinstance(origin, type) and origin.__name__ == "Out":
            args = typing.get_args(pytype)
            pytype = args[0] if args else None
        if annotated and pytype in (str, bytes) and not _has_implicit_output(btype):
            params[name] = _Param(GENERIC, pytype)
        else:
            params[name] = _Param(btype, pytype if annotated else None)
    signature = _Signature(params=params, return_type=hints.get("return"), names=names)
    _SIGNATURES[id(function)] = (function, signature)
    return signature


_NO_EXPRESSIONS = frozenset({"httptrigger", "http", "durableclient", "orchestrationclient"})


def needs_binding_data(function: FunctionInfo) -> bool:
    """Whether any binding besides the trigger could use binding expressions (saves work per call)."""
    return any(
        binding is not function.trigger and str(binding.get("type", "")).lower() not in _NO_EXPRESSIONS
        for binding in function.bindings
    )


def metadata_datum(value: Any) -> meta.Datum:
    """A trigger metadata value as the host sends it: strings and integers typed, the rest JSON."""
    if isinstance(value, str):
        return meta.Datum(value, "string")
    if isinstance(value, int) and not isinstance(value, bool):
        return meta.Datum(value, "int")
    return meta.Datum(json.dumps(value, default=_json_default), "json")


def _json_default(value: Any) -> Any:
    return iso_json(value) if isinstance(value, datetime) else str(value)


def _decode(bind_type: str, datum: meta.Datum, metadata: Mapping[str, Any] | None) -> Any:
    converter = converter_for(bind_type)
    trigger_metadata = None
    if metadata is not None and converter.has_trigger_support():
        trigger_metadata = {key: metadata_datum(value) for key, value in metadata.items()}
    try:
        return converter.decode(datum, trigger_metadata=trigger_metadata)
    except NotImplementedError:
        raise TypeError(
            f"unable to decode incoming TypedData: unsupported combination of TypedData field "
            f"{datum.type!r} and expected binding type {bind_type}"
        ) from None


def _encode(bind_type: str, value: Any, pytype: Any) -> meta.Datum:
    try:
        datum: meta.Datum = converter_for(bind_type).encode(value, expected_type=pytype)
    except NotImplementedError:
        raise TypeError(
            f'unable to encode outgoing TypedData: unsupported type "{bind_type}" for Python type '
            f'"{type(value).__name__}"'
        ) from None
    return datum


def _raw_datum(value: Any) -> meta.Datum:
    if value is None:
        return meta.Datum(None, None)
    if isinstance(value, meta.Datum):
        return value
    if isinstance(value, str):
        return meta.Datum(value, "string")
    if isinstance(value, bytes | bytearray):
        return meta.Datum(bytes(value), "bytes")
    return meta.Datum(json.dumps(value), "json")


@dataclass(frozen=True)
class _OutputData:
    """An output value as the host receives it: ``string``, ``bytes``, ``json`` (text) or a primitive."""

    type: str
    value: Any

    @classmethod
    def of(cls, datum: meta.Datum) -> _OutputData | None:
        if datum.type is None or datum.value is None:
            return None
        if datum.type in ("dict", "list"):
            return cls("json", json.dumps(datum.value))
        return cls(str(datum.type), datum.value)

    def as_bytes(self) -> bytes:
        if isinstance(self.value, bytes):
            return self.value
        return self.as_text().encode("utf-8")

    def as_text(self) -> str:
        if isinstance(self.value, bytes):
            return self.value.decode("utf-8")
        if isinstance(self.value, bool):
            return "True" if self.value else "False"
        return str(self.value)

    def parsed(self) -> Any:
        """The value as the host's JToken: JSON text parsed, strings parsed when they are JSON."""
        if self.type in ("json", "string", "bytes"):
            return json.loads(self.as_text())
        return self.value

    def recorded(self) -> Any:
        return json.loads(self.value) if self.type == "json" else self.value


# ---------------------------------------------------------------------------------------------
# The binding layer


def _direction(binding: Mapping[str, Any]) -> str:
    return str(binding.get("direction", "in")).lower()


def _data_type(binding: Mapping[str, Any]) -> str:
    return str(binding.get("dataType", "")).lower()


class Bindings:
    """Binds inputs and writes outputs for every function of one host."""

    def __init__(
        self,
        accounts: StorageAccounts | None = None,
        *,
        queue_encoding: str = "base64",
        extension_input: Callable[[FunctionInfo, Mapping[str, Any]], Any] | None = None,
    ) -> None:
        self._accounts = accounts
        self.queue_encoding = queue_encoding
        self._extension_input = extension_input
        self.recorded_outputs: list[RecordedOutput] = []
        #: Called with (connection string, container, blob name) after an output binding wrote a blob.
        self.blob_written: list[Callable[[str, str, str], None]] = []
        #: Called with (connection string, queue name) after an output binding added queue messages.
        self.queue_written: list[Callable[[str, str], None]] = []
        self._warned: set[tuple[str, str]] = set()

    def attach_storage(self, accounts: StorageAccounts, *, queue_encoding: str) -> None:
        """Use ``accounts`` for storage bindings (the host resolves them when it starts)."""
        self._accounts = accounts
        self.queue_encoding = queue_encoding

    @property
    def accounts(self) -> StorageAccounts:
        if self._accounts is None:
            raise RuntimeError("This host has no storage account for blob, queue and table bindings.")
        return self._accounts

    async def prepare(
        self,
        function: FunctionInfo,
        trigger: TriggerValue,
        context: func.Context | None,
        *,
        extension_input: ExtensionInput | None = None,
    ) -> PreparedCall:
        """The keyword arguments for one call: trigger, inputs, ``Out`` holders and ``context``."""
        signature = _signature(function)
        data = BindingData(system_binding_data(function.name))
        for key, value in trigger.binding_data.items():
            data[key] = value
        kwargs: dict[str, Any] = {}
        outs: dict[str, Out[Any]] = {}
        trigger_name = str(function.trigger.get("name", ""))
        for binding in function.bindings:
            name = str(binding.get("name", ""))
            if _direction(binding) == "out":
                if name != "$return":
                    outs[name] = kwargs[name] = Out()
                continue
            param = signature.params.get(name, _Param(str(binding.get("type", "")), None))
            if name == trigger_name and binding.get("type") == function.trigger.get("type"):
                if trigger.datum is None:
                    kwargs[name] = trigger.value
                else:
                    kwargs[name] = _decode(param.bind_type, trigger.datum, trigger.metadata)
                continue
            datum = await self._read_input(function, binding, param, data, extension_input)
            kwargs[name] = _decode(param.bind_type, datum, None)
        if context is not None and "context" in signature.names and "context" not in kwargs:
            kwargs["context"] = context
        invocation_id = context.invocation_id if context is not None else None
        return PreparedCall(function, kwargs, outs, data, invocation_id)

    async def finish(
        self, call: PreparedCall, result: Any, *, return_is_trigger_output: bool = False
    ) -> None:
        """Write every output the function set (HTTP responses are the HTTP router's business)."""
        signature = _signature(call.function)
        for binding in call.function.bindings:
            if _direction(binding) != "out":
                continue
            name = str(binding.get("name", ""))
            btype = str(binding.get("type", ""))
            if btype.lower() == "http":
                continue
            if name == "$return":
                if return_is_trigger_output:
                    continue
                value, bind_type, pytype = result, btype, signature.return_type
            else:
                value = call.outs[name].get()
                param = signature.params.get(name, _Param(btype, None))
                bind_type, pytype = param.bind_type, param.pytype
            if value is None:
                continue
            data = _OutputData.of(_encode(bind_type, value, pytype))
            if data is not None:
                await self._write_output(call, binding, data)

    # -- inputs ---------------------------------------------------------------------------------

    async def _read_input(
        self,
        function: FunctionInfo,
        binding: Mapping[str, Any],
        param: _Param,
        data: BindingData,
        extension_input: ExtensionInput | None,
    ) -> meta.Datum:
        btype = str(binding.get("type", "")).lower()
        if btype in EXTENSION_INPUTS:
            resolver = extension_input
            if resolver is None and self._extension_input is not None:
                host_resolver = self._extension_input

                def resolver(b: Mapping[str, Any]) -> Any:
                    return host_resolver(function, b)

            value = resolver(binding) if resolver is not None else None
            if inspect.isawaitable(value):
                value = await value
            return _raw_datum(value)
        if btype == "blob":
            return await self._read_blob(binding, param, data)
        if btype == "table":
            return await self._read_table(binding, data)
        self._warn_once(
            function,
            binding,
            f"Function '{function.name}': input binding '{binding.get('name')}' of type "
            f"'{binding.get('type')}' is not emulated; the function gets None for it.",
        )
        return meta.Datum(None, None)

    async def _read_blob(self, binding: Mapping[str, Any], param: _Param, data: BindingData) -> meta.Datum:
        path = resolve(str(binding.get("path", "")), data)
        content = await storage.read_blob(self.accounts, binding.get("connection"), path)
        if content is None:
            return meta.Datum(None, None)
        data_type = _data_type(binding)
        if data_type == "string" or (data_type != "binary" and param.pytype is str):
            return meta.Datum(content.decode("utf-8", errors="replace"), "string")
        return meta.Datum(content, "bytes")

    async def _read_table(self, binding: Mapping[str, Any], data: BindingData) -> meta.Datum:
        def prop(key: str) -> str | None:
            raw = binding.get(key)
            return None if raw is None or raw == "" else resolve(str(raw), data)

        take = binding.get("take")
        value = await storage.read_entities(
            self.accounts,
            binding.get("connection"),
            resolve(str(binding.get("tableName", "")), data),
            partition_key=prop("partitionKey"),
            row_key=prop("rowKey"),
            query_filter=prop("filter"),
            take=int(take) if take else None,
        )
        return meta.Datum(None, None) if value is None else meta.Datum(json.dumps(value), "json")

    # -- outputs --------------------------------------------------------------------------------

    async def _write_output(self, call: PreparedCall, binding: Mapping[str, Any], data: _OutputData) -> None:
        btype = str(binding.get("type", "")).lower()
        connection = binding.get("connection")
        if btype == "blob":
            path = resolve(str(binding.get("path", "")), call.data)
            await storage.write_blob(self.accounts, connection, path, data.as_bytes())
            container, name = storage.split_blob_path(path)
            self._notify(self.blob_written, self.accounts.connection_string(connection), container, name)
        elif btype == "queue":
            queue = resolve(str(binding.get("queueName", "")), call.data).lower()
            messages = [storage.encode_queue_message(m, self.queue_encoding) for m in _queue_messages(data)]
            await storage.send_queue_messages(self.accounts, connection, queue, messages)
            self._notify(self.queue_written, self.accounts.connection_string(connection), queue)
        elif btype == "table":
            await self._write_table(call, binding, data)
        else:
            self._record(call, binding, data)

    async def _write_table(self, call: PreparedCall, binding: Mapping[str, Any], data: _OutputData) -> None:
        def key(name: str) -> str | None:
            raw = binding.get(name)
            return None if raw is None or raw == "" else resolve(str(raw), call.data)

        try:
            value = data.parsed()
        except ValueError as exc:
            raise storage.BindingWriteError(
                f"The value of table output '{binding.get('name')}' is not JSON: {exc}"
            ) from None
        items = value if isinstance(value, list) else [value]
        entities = [storage.build_entity(item, key("partitionKey"), key("rowKey")) for item in items]
        table = resolve(str(binding.get("tableName", "")), call.data)
        await storage.insert_entities(self.accounts, binding.get("connection"), table, entities)

    def _record(self, call: PreparedCall, binding: Mapping[str, Any], data: _OutputData) -> None:
        resolved: dict[str, Any] = {}
        for key, raw in binding.items():
            resolved[key] = raw
            if isinstance(raw, str) and key not in ("name", "type", "direction"):
                with contextlib.suppress(BindingExpressionError):
                    resolved[key] = resolve(raw, call.data)
        try:
            value = data.recorded()
        except ValueError:
            value = data.value
        record = RecordedOutput(
            function_name=call.function.name,
            binding_name=str(binding.get("name", "")),
            binding_type=str(binding.get("type", "")),
            value=value,
            binding=resolved,
            invocation_id=call.invocation_id,
            recorded_at=datetime.now(timezone.utc),
        )
        self.recorded_outputs.append(record)
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        logger.info(
            "Function '%s': output '%s' (%s) is not emulated; recorded instead of sent: %s",
            record.function_name,
            record.binding_name,
            record.binding_type,
            shown if len(shown) <= 2000 else shown[:2000] + "...",
        )

    def _warn_once(self, function: FunctionInfo, binding: Mapping[str, Any], message: str) -> None:
        key = (function.name, str(binding.get("name")))
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("%s", message)

    @staticmethod
    def _notify(callbacks: Iterable[Callable[..., None]], *args: Any) -> None:
        for callback in callbacks:
            try:
                callback(*args)
            except Exception:
                logger.debug("output notification failed", exc_info=True)


def _queue_messages(data: _OutputData) -> list[str | bytes]:
    """One message per element of a JSON array (IAsyncCollector), else the value itself."""
    if data.type == "bytes":
        return [data.value]
    if data.type != "json":
        return [data.as_text()]
    value = json.loads(data.value)
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, str) else json.dumps(item, separators=(",", ":")) for item in items]
