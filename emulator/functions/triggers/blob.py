"""Blob triggers, after the storage blobs extension's container scan and shared blob-trigger queue.

Each watched container is listed periodically (and at once when an output binding of this host wrote
to it). A new or changed blob that matches a function's path pattern gets a receipt
``azure-webjobs-hosts/blobreceipts/<host id>/Host.Functions.<name>/<etag>/<container>/<blob>`` and a
message in the host queue ``azure-webjobs-blobtrigger-<host id>``; that queue is processed like a queue
trigger, so a failing blob is retried up to ``extensions.blobs.poisonBlobThreshold`` (default 5) times
and then moved to ``webjobs-blobtrigger-poison``. A receipt per blob version (ETag) makes every version
trigger once, across restarts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions import meta

from emulator.app._app_index import FunctionInfo
from emulator.app._config import get_ci, get_path_ci
from emulator.app._dotnet import iso_json
from emulator.functions._binding_expressions import resolve_app_settings
from emulator.functions._bindings import TriggerValue
from emulator.functions._storage_bindings import encode_queue_message
from emulator.functions.triggers._runner import FunctionRunner
from emulator.functions.triggers.hostid import HOSTS_CONTAINER, function_id
from emulator.functions.triggers.queue import (
    MIN_POLLING_INTERVAL,
    QueueListener,
    QueuesOptions,
    RandomizedBackoff,
    ReceivedMessage,
)

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient, ContainerClient
    from azure.storage.queue.aio import QueueClient

logger = logging.getLogger("emulator.triggers.blob")

POISON_QUEUE = "webjobs-blobtrigger-poison"
TRIGGER_SOURCE = "LogsAndContainerScan"
_INCOMPLETE = "Incomplete"


def quoted_etag(etag: Any) -> str:
    """ETags as the blob properties header has them (quoted); listings give them bare."""
    text = str(etag)
    return text if text.startswith('"') else f'"{text}"'


def blob_trigger_queue_name(host_id: str) -> str:
    return f"azure-webjobs-blobtrigger-{host_id}"


@dataclass(frozen=True)
class BlobPathPattern:
    """``container/{name}.json``: a literal container and a blob name pattern with parameters."""

    container: str
    blob_pattern: str
    regex: re.Pattern[str]
    parameters: tuple[str, ...]

    @classmethod
    def parse(cls, path: str) -> BlobPathPattern:
        container, _, blob = resolve_app_settings(path).strip("/").partition("/")
        if not container or "{" in container:
            raise ValueError(
                f"Invalid blob trigger path '{path}': it must start with a container name without binding "
                f"expressions, e.g. 'samples/{{name}}'."
            )
        names: list[str] = []
        pieces: list[str] = []
        for token in re.split(r"(\{[^{}]*\})", blob):
            if token.startswith("{") and token.endswith("}"):
                names.append(token[1:-1].strip())
                pieces.append(f"(?P<p{len(names) - 1}>.*)")
            else:
                pieces.append(re.escape(token))
        regex = re.compile("".join(pieces) if blob else ".*", re.DOTALL)
        return cls(container, blob, regex, tuple(names))

    def match(self, blob_name: str) -> dict[str, str] | None:
        found = self.regex.fullmatch(blob_name)
        if found is None:
            return None
        return {name: found.group(f"p{index}") for index, name in enumerate(self.parameters)}

    def __str__(self) -> str:
        return f"{self.container}/{self.blob_pattern}"


@dataclass(frozen=True)
class BlobsOptions:
    """host.json ``extensions.blobs``: concurrency and retries of blob-triggered functions."""

    max_degree_of_parallelism: int
    poison_blob_threshold: int = 5

    @classmethod
    def read(cls, host_json: Mapping[str, Any]) -> BlobsOptions:
        section = get_path_ci(host_json, "extensions", "blobs")
        dop = get_ci(section, "maxDegreeOfParallelism")
        poison = get_ci(section, "poisonBlobThreshold")
        return cls(
            max_degree_of_parallelism=int(dop) if dop is not None else 8 * (os.cpu_count() or 1),
            poison_blob_threshold=int(poison) if poison is not None else 5,
        )

    def queue_options(self, queues: QueuesOptions) -> QueuesOptions:
        batch = max(1, min(self.max_degree_of_parallelism, 32))
        return QueuesOptions(
            batch_size=batch,
            new_batch_threshold=max(self.max_degree_of_parallelism - batch, 0),
            max_polling_interval=queues.max_polling_interval,
            visibility_timeout=queues.visibility_timeout,
            max_dequeue_count=max(self.poison_blob_threshold, 1),
            message_encoding=queues.message_encoding,
        )


@dataclass(frozen=True)
class BlobFunction:
    function: FunctionInfo
    pattern: BlobPathPattern
    connection_string: str
    service: BlobServiceClient


def _properties_json(props: Any) -> dict[str, Any]:
    """The BlobProperties the host puts in trigger metadata (``Properties``), as Newtonsoft writes them."""
    settings = props.content_settings
    md5 = settings.content_md5 if settings is not None else None
    blob_type = str(getattr(props.blob_type, "value", props.blob_type) or "BlockBlob").replace("Blob", "")
    return {
        "LastModified": iso_json(props.last_modified) if props.last_modified else None,
        "CreatedOn": iso_json(props.creation_time) if props.creation_time else None,
        "BlobType": blob_type,
        "ContentLength": props.size,
        "ContentType": settings.content_type if settings else None,
        "ContentEncoding": settings.content_encoding if settings else None,
        "ContentLanguage": settings.content_language if settings else None,
        "ContentDisposition": settings.content_disposition if settings else None,
        "CacheControl": settings.cache_control if settings else None,
        "ContentHash": base64.b64encode(md5).decode("ascii") if md5 else None,
        "ETag": quoted_etag(props.etag),
    }


class ContainerScanner:
    """Lists one container, remembering each blob's ETag so unchanged blobs cost nothing."""

    def __init__(
        self, service: BlobServiceClient, container: str, max_interval: timedelta, found: Any
    ) -> None:
        self.container = container
        self._client: ContainerClient = service.get_container_client(container)
        self._seen: dict[str, str] = {}
        self._backoff = RandomizedBackoff(MIN_POLLING_INTERVAL, max_interval)
        self._found = found
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"blob-scan-{self.container}")

    def notify(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            changed = False
            try:
                async for props in self._client.list_blobs():
                    etag = quoted_etag(props.etag)
                    if self._seen.get(props.name) == etag:
                        continue
                    try:
                        await self._found(self.container, props.name, etag, props)
                    except Exception as exc:  # retried on the next scan
                        logger.warning(
                            "Could not queue blob '%s/%s' for its trigger (%s)",
                            self.container,
                            props.name,
                            exc,
                        )
                        continue
                    self._seen[props.name] = etag
                    changed = True
            except ResourceNotFoundError:
                pass  # the container does not exist yet
            except (HttpResponseError, OSError) as exc:
                logger.warning("Could not list blob container '%s' (%s); retrying", self.container, exc)
            delay = self._backoff.next_delay(changed)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()


class BlobTriggers:
    """All blob-triggered functions of a host: scanners, receipts and the shared trigger queue."""

    def __init__(
        self,
        functions: list[BlobFunction],
        *,
        host_id: str,
        host_blobs: BlobServiceClient,
        host_queue: QueueClient,
        poison_queues: Mapping[str, QueueClient],
        options: QueuesOptions,
        runner: FunctionRunner,
        scan_interval: timedelta,
    ) -> None:
        self._functions = {function_id(f.function.name): f for f in functions}
        self._host_id = host_id
        self._receipts = host_blobs.get_container_client(HOSTS_CONTAINER)
        self._queue = host_queue
        self._poison_queues = poison_queues
        self._options = options
        self._runner = runner
        self._scanners: dict[tuple[str, str], ContainerScanner] = {}
        for f in functions:
            key = (f.connection_string, f.pattern.container)
            if key not in self._scanners:
                self._scanners[key] = ContainerScanner(
                    f.service, f.pattern.container, scan_interval, self._found
                )
        # One poison queue serves every blob account the emulator sees (the host account's).
        poison = next(iter(poison_queues.values()), None)
        self._listener = QueueListener("blob triggers", host_queue, poison, options, self._execute)

    async def start(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self._queue.create_queue()
        self._listener.start()
        for scanner in self._scanners.values():
            scanner.start()

    async def stop(self) -> None:
        for scanner in self._scanners.values():
            await scanner.stop()
        await self._listener.stop()

    def blob_written(self, connection_string: str, container: str, name: str) -> None:
        scanner = self._scanners.get((connection_string, container))
        if scanner is not None:
            scanner.notify()

    # -- scan: receipts and queue messages ---------------------------------------------------------

    async def _found(self, container: str, name: str, etag: str, props: Any) -> None:
        for fid, f in self._functions.items():
            if f.pattern.container == container and f.pattern.match(name) is not None:
                await self._claim(fid, f, container, name, etag, props)

    async def _claim(
        self, fid: str, f: BlobFunction, container: str, name: str, etag: str, props: Any
    ) -> None:
        receipt = self._receipts.get_blob_client(
            f"blobreceipts/{self._host_id}/{fid}/{etag}/{container}/{name}"
        )
        try:
            existing = await receipt.get_blob_properties()
            if _INCOMPLETE not in (existing.metadata or {}):
                return  # this version was already handed to the function
        except ResourceNotFoundError:
            if not await self._create_receipt(receipt):
                return
        blob_type = str(getattr(props.blob_type, "value", props.blob_type) or "BlockBlob")
        message = {
            "Type": "BlobTrigger",
            "FunctionId": fid,
            "BlobType": blob_type,
            "ContainerName": container,
            "BlobName": name,
            "ETag": etag,
        }
        text = encode_queue_message(json.dumps(message), self._options.message_encoding)
        await self._queue.send_message(text)
        self._listener.notify()
        with contextlib.suppress(ResourceNotFoundError):
            await receipt.set_blob_metadata({})

    async def _create_receipt(self, receipt: Any) -> bool:
        for _ in range(2):
            try:
                await receipt.upload_blob(b"", metadata={_INCOMPLETE: _INCOMPLETE}, overwrite=False)
                return True
            except ResourceExistsError:
                return False
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    await self._receipts.create_container()
        return False

    # -- the blob trigger queue --------------------------------------------------------------------

    async def _execute(self, message: ReceivedMessage) -> bool:
        try:
            payload = json.loads((message.body or b"").decode("utf-8"))
            fid = str(payload["FunctionId"])
        except (ValueError, KeyError, TypeError):
            logger.warning("Ignoring an invalid blob trigger message '%s'", message.id)
            return True
        f = self._functions.get(fid)
        if f is None:
            logger.debug("No blob-triggered function '%s' for message '%s'", fid, message.id)
            return True
        container, name = str(payload.get("ContainerName")), str(payload.get("BlobName"))
        blob = f.service.get_blob_client(container, name)
        try:
            props = await blob.get_blob_properties()
        except ResourceNotFoundError:
            return True  # deleted since: nothing to do
        if quoted_etag(props.etag) != payload.get("ETag"):
            return True  # changed since: the newer version has its own receipt
        content = await (await blob.download_blob()).readall()
        return await self._runner.run(
            f.function,
            self._trigger_value(f, container, name, content, props, blob.url),
            reason=f"New blob detected({TRIGGER_SOURCE}): {container}/{name}",
        )

    @staticmethod
    def _trigger_value(
        f: BlobFunction, container: str, name: str, content: bytes, props: Any, url: str
    ) -> TriggerValue:
        metadata: dict[str, Any] = {
            "BlobTrigger": f"{container}/{name}",
            "Uri": url,
            "Properties": _properties_json(props),
            "Metadata": dict(props.metadata or {}),
        }
        metadata.update(f.pattern.match(name) or {})
        if str(f.function.trigger.get("dataType", "")).lower() == "string":
            datum = meta.Datum(content.decode("utf-8", errors="replace"), "string")
        else:
            datum = meta.Datum(content, "bytes")
        return TriggerValue(datum=datum, metadata=metadata, binding_data=dict(metadata))
