"""The binding layer without storage: expressions, the worker's conversions, recorded outputs, and the
shapes the storage extensions give values (queue fan-out, table entities, blob paths)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.data.tables import EdmType, EntityProperty

from emulator.app._app_index import FunctionInfo
from emulator.app._settings import AppLoadError
from emulator.app._trigger_kinds import not_emulated_reason
from emulator.functions._binding_expressions import (
    BindingData,
    BindingExpressionError,
    resolve,
    system_binding_data,
)
from emulator.functions._bindings import Bindings, Out, TriggerValue, _OutputData, _queue_messages
from emulator.functions._invocation_context import InvocationContext
from emulator.functions._storage_bindings import (
    BindingWriteError,
    build_entity,
    encode_queue_message,
    split_blob_path,
)
from emulator.functions.triggers.blob import BlobPathPattern
from emulator.functions.triggers.hostid import host_id, stable_hash
from emulator.functions.triggers.queue import (
    RandomizedBackoff,
    ReceivedMessage,
    poison_queue_name,
    queue_trigger_value,
    queues_options,
)

# -- binding expressions -------------------------------------------------------------------------


def test_expressions_read_binding_data_case_insensitively_and_through_json() -> None:
    data = BindingData(
        {"queueTrigger": "order-1", "order": {"Customer": {"id": 42}}, "payload": '{"a": "b"}'}
    )
    assert resolve("out/{QUEUETRIGGER}.txt", data) == "out/order-1.txt"
    assert resolve("{order.customer.id}", data) == "42"
    assert resolve("{payload.a}", data) == "b"
    assert resolve("{{literal}}-{queueTrigger}", data) == "{literal}-order-1"


def test_built_in_expressions() -> None:
    data = BindingData(system_binding_data("MyFunction"))
    assert uuid.UUID(resolve("{rand-guid}", data))
    assert re.fullmatch(r"[0-9a-f]{32}", resolve("{rand-guid:N}", data))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z", resolve("{datetime}", data))
    assert re.fullmatch(r"\d{4}/\d{2}", resolve("{datetime:yyyy/MM}", data))
    assert resolve("{sys.methodname}", data) == "MyFunction"
    # sys.randguid is fixed for the invocation; rand-guid is new each time.
    assert resolve("{sys.randguid}", data) == resolve("{sys.randguid}", data)
    assert resolve("{rand-guid}", data) != resolve("{rand-guid}", data)


def test_app_settings_and_missing_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPUT_CONTAINER", "archive")
    assert resolve("%OUTPUT_CONTAINER%/{name}", BindingData({"name": "a.txt"})) == "archive/a.txt"
    with pytest.raises(BindingExpressionError, match="No value for named parameter 'name'"):
        resolve("x/{name}", BindingData())
    with pytest.raises(BindingExpressionError, match="NOT_DEFINED_ANYWHERE"):
        resolve("%NOT_DEFINED_ANYWHERE%", BindingData())
    with pytest.raises(BindingExpressionError, match="not a string or number"):
        resolve("{obj}", BindingData({"obj": {"a": 1}}))


# -- the worker's conversions --------------------------------------------------------------------


def function_info(fn: Any, *bindings: Mapping[str, Any]) -> FunctionInfo:
    trigger = bindings[0]
    return FunctionInfo(
        name=fn.__name__,
        trigger_type=str(trigger["type"]),
        trigger=trigger,
        bindings=tuple(bindings),
        user_function=fn,
        is_async=False,
        durable_name=fn.__name__,
        python_name=fn.__name__,
    )


QUEUE_TRIGGER = {"direction": "IN", "type": "queueTrigger", "name": "msg", "queueName": "orders"}


def queue_message_value(text: str) -> TriggerValue:
    inserted = datetime(2024, 5, 1, 10, 15, tzinfo=timezone.utc)
    message = ReceivedMessage("id-1", "receipt", 2, inserted, inserted, inserted, text, text.encode())
    return queue_trigger_value(message, "")


async def test_a_queue_trigger_becomes_a_queue_message_with_its_metadata() -> None:
    def handler(msg: func.QueueMessage) -> None: ...

    fn = function_info(handler, QUEUE_TRIGGER)
    call = await Bindings().prepare(fn, queue_message_value('{"orderId": 7}'), None)
    msg = call.kwargs["msg"]
    assert isinstance(msg, func.QueueMessage)
    assert (msg.id, msg.dequeue_count, msg.pop_receipt) == ("id-1", 2, "receipt")
    assert msg.insertion_time == datetime(2024, 5, 1, 10, 15, tzinfo=timezone.utc)
    assert msg.get_json() == {"orderId": 7}
    # JSON message properties and the built-ins are binding data for the other bindings.
    assert resolve("{orderId}-{queueTrigger}", call.data) == '7-{"orderId": 7}'


async def test_a_str_annotation_gets_the_generic_converter() -> None:
    def handler(msg: str) -> None: ...

    call = await Bindings().prepare(function_info(handler, QUEUE_TRIGGER), queue_message_value("plain"), None)
    assert call.kwargs["msg"] == "plain"


async def test_out_parameters_and_context() -> None:
    out = {"direction": "OUT", "type": "queue", "name": "outbox", "queueName": "x"}

    def handler(msg: func.QueueMessage, outbox: func.Out[str], context: func.Context) -> None: ...

    context = InvocationContext(invocation_id="inv-1", function_name="handler", function_directory="/app")
    call = await Bindings().prepare(
        function_info(handler, QUEUE_TRIGGER, out), queue_message_value("a"), context
    )
    assert isinstance(call.kwargs["outbox"], Out) and call.kwargs["context"] is context
    assert call.invocation_id == "inv-1"


async def test_unemulated_outputs_are_recorded_with_resolved_properties() -> None:
    sendgrid = {"direction": "OUT", "type": "sendGrid", "name": "mail", "to": "{email}", "from": "shop@x.org"}
    http_trigger = {"direction": "IN", "type": "httpTrigger", "name": "req"}

    def handler(req: func.HttpRequest, mail: func.Out[str]) -> None: ...

    bindings = Bindings()
    fn = function_info(handler, http_trigger, sendgrid)
    call = await bindings.prepare(fn, TriggerValue(value=None, binding_data={"email": "a@b.c"}), None)
    call.outs["mail"].set(json.dumps({"subject": "Hi"}))
    await bindings.finish(call, None)
    (record,) = bindings.recorded_outputs
    assert (record.function_name, record.binding_name, record.binding_type) == ("handler", "mail", "sendGrid")
    assert record.json() == {"subject": "Hi"}
    assert record.binding["to"] == "a@b.c"


async def test_an_output_left_unset_is_not_sent_and_unencodable_values_fail() -> None:
    twilio = {"direction": "OUT", "type": "twilioSms", "name": "sms"}

    def handler(req: Any, sms: func.Out[str]) -> None: ...

    bindings = Bindings()
    fn = function_info(handler, {"direction": "IN", "type": "httpTrigger", "name": "req"}, twilio)
    call = await bindings.prepare(fn, TriggerValue(), None)
    await bindings.finish(call, None)
    assert bindings.recorded_outputs == []
    call.outs["sms"].set(object())
    with pytest.raises(TypeError, match="unable to encode outgoing TypedData"):
        await bindings.finish(call, None)


# -- what the storage extensions do with values --------------------------------------------------


def test_queue_outputs_fan_out_json_arrays_only() -> None:
    assert _queue_messages(_OutputData("json", json.dumps(["a", {"b": 1}]))) == ["a", '{"b":1}']
    assert _queue_messages(_OutputData("string", '["not", "split"]')) == ['["not", "split"]']
    assert _queue_messages(_OutputData("bytes", b"\x00\x01")) == [b"\x00\x01"]
    assert encode_queue_message("hi", "base64") == "aGk=" and encode_queue_message("hi", "none") == "hi"


def test_table_entities_take_keys_from_the_json_or_the_binding() -> None:
    entity = build_entity(
        {"rowKey": "r1", "Count": 3, "When": "2024-05-01T10:00:00Z", "Ok": True}, "p", "ignored"
    )
    assert (entity["PartitionKey"], entity["RowKey"], entity["Ok"]) == ("p", "r1", True)
    assert entity["Count"] == EntityProperty(3, EdmType.INT64)
    assert entity["When"] == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    with pytest.raises(BindingWriteError, match="no RowKey"):
        build_entity({"a": 1}, "p", None)
    with pytest.raises(BindingWriteError, match="invalid"):
        build_entity({"a": 1}, "p", "a/b")
    with pytest.raises(BindingWriteError, match="only string, number"):
        build_entity({"nested": {"a": 1}}, "p", "r")


def test_blob_paths_and_trigger_patterns() -> None:
    assert split_blob_path("container/a/b.txt") == ("container", "a/b.txt")
    with pytest.raises(BindingWriteError):
        split_blob_path("container-only")
    pattern = BlobPathPattern.parse("uploads/{name}.{ext}")
    assert pattern.match("a.b.json") == {"name": "a.b", "ext": "json"}
    assert pattern.match("noext") is None
    assert BlobPathPattern.parse("uploads/{name}.json").match("dir/x.json") == {"name": "dir/x"}
    with pytest.raises(ValueError, match="container name"):
        BlobPathPattern.parse("{container}/x")


# -- queue options, names and polling ------------------------------------------------------------


def test_queue_options_defaults_and_validation() -> None:
    options = queues_options({})
    assert (options.batch_size, options.max_dequeue_count, options.message_encoding) == (16, 5, "base64")
    custom = queues_options({"extensions": {"queues": {"batchSize": 4, "maxPollingInterval": "00:00:02"}}})
    assert custom.batch_size == 4 and custom.max_polling_interval.total_seconds() == 2
    with pytest.raises(AppLoadError, match="batchSize"):
        queues_options({"extensions": {"queues": {"batchSize": 33}}})
    with pytest.raises(AppLoadError, match="maxPollingInterval"):
        queues_options({"extensions": {"queues": {"maxPollingInterval": "00:00:00.050"}}})


def test_poison_queue_names_and_backoff() -> None:
    assert poison_queue_name("orders") == "orders-poison"
    assert poison_queue_name("orders-poison") is None
    assert poison_queue_name("q" * 60) is None
    backoff = RandomizedBackoff(timedelta(milliseconds=100), timedelta(seconds=1))
    delays = [backoff.next_delay(False) for _ in range(10)]
    assert delays[0] == pytest.approx(0.1) and delays[-1] == 1.0 and delays == sorted(delays)
    assert backoff.next_delay(True) == pytest.approx(0.1)


def test_host_id_is_stable_per_script_root(monkeypatch: pytest.MonkeyPatch) -> None:
    assert stable_hash("") == 23 and stable_hash("ab") == (23 * 31 + 97) * 31 + 98
    first = host_id(Path("/apps/one"))
    assert first == host_id(Path("/apps/one")) != host_id(Path("/apps/two"))
    assert len(first) <= 32 and first == first.lower()
    monkeypatch.setenv("AzureFunctionsWebHost__hostid", "my-host")
    assert host_id(Path("/apps/one")) == "my-host"


def test_which_triggers_are_not_emulated() -> None:
    assert not_emulated_reason({"type": "queueTrigger"}) is None
    assert "serviceBusTrigger" in (not_emulated_reason({"type": "serviceBusTrigger"}) or "")
    assert not_emulated_reason({"type": "blobTrigger", "source": "EventGrid"}) is not None
