"""Entity-group transactions and row merges of the Table service, encoded directly.

The Tables SDK builds and parses a transaction's ``multipart/mixed`` body with the ``email``
package, which cost about half of the host's CPU in fan-outs (35 ms of Python per 100-entity
transaction against under 10 ms inside Azurite). History appends are the engine's hottest
write, so they use this encoder: the same OData ``$batch`` wire format, sent through the
TableClient's own pipeline (authentication, retries and transport stay the SDK's). Entities are
serialised by the SDK's own property conversion, so the rows are exactly what it would write.
Instances-row merges, the next hottest write, skip the SDK's generated serializer the same way.
It stays hand-written for that reason: measured about four times faster than the SDK's
transaction path for history appends.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import random
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline import AsyncPipeline
from azure.core.pipeline.policies import AsyncHTTPPolicy
from azure.core.pipeline.transport import AsyncHttpResponse, HttpRequest

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

#: Table service API version the requests speak.
_API_VERSION = "2019-02-02"
_STATUS_LINE = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)
_ETAG_HEADER = re.compile(rb"^ETag: *(.+?)\r?$", re.MULTILINE | re.IGNORECASE)
#: Multipart boundaries need only be unlikely in the body, not secret (no system call per batch).
_boundaries = random.Random()
#: Client request ids need only be unique per process (the pipeline's uuid1 per request is slow).
_REQUEST_IDS = (f"{os.getpid():x}-{n:x}" for n in itertools.count())


@dataclass(frozen=True)
class Operation:
    """One entity operation of a transaction."""

    #: ``upsert``: insert or replace; ``insert``: fails with 409 when the row exists;
    #: ``merge``: merge into an existing row whose ETag still matches ``etag``.
    kind: Literal["upsert", "insert", "merge"]
    entity: Mapping[str, Any]
    etag: str | None = None


class TransactionFailed(HttpResponseError):
    """The transaction stored nothing; ``status_code`` is the failing operation's status."""


async def submit_transaction(table: TableClient, operations: Sequence[Operation]) -> list[str | None]:
    """Apply ``operations`` (one partition, at most 100) atomically; the new ETag of each."""
    base = _table_url(table)
    changeset = f"changeset_{_boundaries.getrandbits(128):032x}"
    batch = f"batch_{_boundaries.getrandbits(128):032x}"
    parts: list[str] = []
    for number, operation in enumerate(operations):
        entity = operation.entity
        body = _entity_json(entity)
        if operation.kind == "insert":
            line = f"POST {base} HTTP/1.1"
            extra = ""
        else:
            method = "PUT" if operation.kind == "upsert" else "MERGE"
            line = f"{method} {base}{_row_path(entity)} HTTP/1.1"
            extra = f"If-Match: {operation.etag}\r\n" if operation.etag else ""
        parts.append(
            f"--{changeset}\r\n"
            "Content-Type: application/http\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: {number}\r\n"
            "\r\n"
            f"{line}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body.encode('utf-8'))}\r\n"
            f"x-ms-version: {_API_VERSION}\r\n"
            "DataServiceVersion: 3.0\r\n"
            "Accept: application/json;odata=minimalmetadata\r\n"
            f"{extra}"
            "\r\n"
            f"{body}\r\n"
        )
    payload = (
        f"--{batch}\r\n"
        f"Content-Type: multipart/mixed; boundary={changeset}\r\n"
        "\r\n" + "".join(parts) + f"--{changeset}--\r\n"
        "\r\n"
        f"--{batch}--\r\n"
    ).encode("utf-8")
    headers = {
        "x-ms-version": _API_VERSION,
        "DataServiceVersion": "3.0",
        "MaxDataServiceVersion": "3.0;NetFx",
        "Content-Type": f"multipart/mixed; boundary={batch}",
        "Accept": "application/json",
    }
    response = await _send(table, "POST", f"{_account_url(table)}/$batch", headers, payload)
    text = response.body()
    if response.status_code != 202:
        raise TransactionFailed(
            message=f"Transaction answered {response.status_code}: {_error_text(text)}", response=response
        )
    statuses = [int(s) for s in _STATUS_LINE.findall(text)]
    failed = next((s for s in statuses if not 200 <= s < 300), None)
    if failed is not None or len(statuses) != len(operations):
        error = TransactionFailed(
            message=f"Transaction failed with {failed}: {_error_text(text)}", response=response
        )
        error.status_code = failed or response.status_code
        raise error
    etags: list[str | None] = [m.decode("latin-1").strip() for m in _ETAG_HEADER.findall(text)]
    if len(etags) != len(operations):
        etags = [None] * len(operations)
    return etags


async def merge_entity(table: TableClient, entity: Mapping[str, Any], *, existing: bool = False) -> None:
    """Insert the row or merge ``entity``'s columns into it (the SDK's upsert, MERGE mode).

    With ``existing``, merge only into a row that exists (``If-Match: *``), else
    ``ResourceNotFoundError``: Azurite then looks the row up once instead of twice.
    """
    headers = {"If-Match": "*"} if existing else None
    response = await _send_row(table, "PATCH", _table_url(table) + _row_path(entity), entity, headers)
    if existing and response.status_code == 404:
        raise ResourceNotFoundError(
            message=f"The row does not exist: {_error_text(response.body())}", response=response
        )
    if response.status_code != 204:
        raise HttpResponseError(
            message=f"Merging a row answered {response.status_code}: {_error_text(response.body())}",
            response=response,
        )


async def insert_entity(table: TableClient, entity: Mapping[str, Any]) -> None:
    """Insert a new row; ``ResourceExistsError`` when it exists (the SDK's ``create_entity``)."""
    response = await _send_row(table, "POST", _table_url(table), entity, {"Prefer": "return-no-content"})
    if response.status_code == 409:
        raise ResourceExistsError(
            message=f"The row exists: {_error_text(response.body())}", response=response
        )
    if response.status_code not in (201, 204):
        raise HttpResponseError(
            message=f"Inserting a row answered {response.status_code}: {_error_text(response.body())}",
            response=response,
        )


async def _send_row(
    table: TableClient,
    method: str,
    url: str,
    entity: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
) -> AsyncHttpResponse:
    """One entity request (not a transaction) through the table client's pipeline."""
    all_headers = {
        "x-ms-version": _API_VERSION,
        "DataServiceVersion": "3.0",
        "Content-Type": "application/json",
        "Accept": "application/json",
        **(headers or {}),
    }
    return await _send(table, method, url, all_headers, _entity_json(entity).encode("utf-8"))


async def _send(
    table: TableClient, method: str, url: str, headers: dict[str, str], body: bytes
) -> AsyncHttpResponse:
    """The response, its body read, of one request through the table client's policies.

    The request is the transport's own kind, not ``azure.core.rest``'s: that one reaches the
    transport through a compatibility layer whose attribute look-ups cost more than the rest of
    the policies together.
    """
    request = HttpRequest(method, url, headers=headers)
    request.set_bytes_body(body)
    response = await _pipeline(table).run(request, request_id=next(_REQUEST_IDS))
    return cast("AsyncHttpResponse", response.http_response)


#: Policies of the SDK's pipeline these requests do without: nobody reads their user agent, they
#: are never redirected, their bodies are parsed here, and they are not worth a log or trace
#: span of their own. Each policy costs a coroutine and a few type checks per request.
_SKIPPED_POLICIES = frozenset(
    {
        "UserAgentPolicy",
        "ContentDecodePolicy",
        "AsyncRedirectPolicy",
        "CustomHookPolicy",
        "NetworkTraceLoggingPolicy",
        "DistributedTracingPolicy",
        "HttpLoggingPolicy",
    }
)
_pipelines: weakref.WeakKeyDictionary[Any, AsyncPipeline[HttpRequest, AsyncHttpResponse]] = (
    weakref.WeakKeyDictionary()
)


def _pipeline(table: TableClient) -> AsyncPipeline[HttpRequest, AsyncHttpResponse]:
    """The table client's pipeline without :data:`_SKIPPED_POLICIES`, made once per client.

    What stays is the SDK's own: request ids, date headers, proxies, authentication, retries and
    the transport with its connection pool. With the transport's request kind (see
    :func:`_send`), measured on merges and five-row transactions against Azurite: 0.12 to 0.24
    ms less CPU per request, of 0.7 to 1.3 ms.
    """
    client = table._client._client  # the TableClient's authenticated pipeline client
    lean = _pipelines.get(client)
    if lean is None:
        full = client._pipeline
        policies = []
        for runner in full._impl_policies:
            policy = getattr(runner, "_policy", runner)  # SansIO policies come wrapped
            if type(policy).__name__ in _SKIPPED_POLICIES:
                continue
            # A policy with its own send() is chained through its ``next``: a copy, so the
            # full pipeline's chain stays as it is.
            policies.append(copy.copy(policy) if isinstance(policy, AsyncHTTPPolicy) else policy)
        lean = AsyncPipeline(full._transport, policies)
        _pipelines[client] = lean
    return lean


#: ``json.dumps`` with options builds an encoder per call; a history transaction has up to 100 rows.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def _entity_json(entity: Mapping[str, Any]) -> str:
    # The SDK's entity-to-JSON conversion (private, pinned with the package in requirements).
    from azure.data.tables._serialize import _add_entity_properties

    return _COMPACT_JSON.encode(_add_entity_properties(entity))


def _account_url(table: TableClient) -> str:
    return table.url.split("?", 1)[0].rstrip("/")


def _table_url(table: TableClient) -> str:
    return f"{_account_url(table)}/{table.table_name}"


def _row_path(entity: Mapping[str, Any]) -> str:
    return f"(PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}')"


def _key(value: str) -> str:
    return quote(str(value).replace("'", "''"), safe="")


def _error_text(text: bytes) -> str:
    match = re.search(rb'"message"\s*:\s*\{[^}]*"value"\s*:\s*"([^"]*)"', text)
    return match.group(1).decode("utf-8", "replace") if match else text[:600].decode("utf-8", "replace")
