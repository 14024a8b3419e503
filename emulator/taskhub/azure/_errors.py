"""What the Azure SDKs' exceptions mean to the engine: transient, a missing resource, or neither."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from emulator.taskhub._interface import TaskHubUnavailable

#: Answers of the storage service that say "try again" (timeouts, throttling, server errors).
_TRANSIENT_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """True for a failure that says nothing about the request, only that storage did not answer."""
    if isinstance(
        exc, (ServiceRequestError, ServiceResponseError, TaskHubUnavailable, asyncio.TimeoutError, OSError)
    ):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in _TRANSIENT_STATUS_CODES


def is_storage_error(exc: BaseException) -> bool:
    """True for a failed storage request (the account did not answer, or refused)."""
    return isinstance(exc, AzureError)


def is_missing_resource(exc: BaseException) -> bool:
    """True when a table, queue or container (or a row) the request needs is not there."""
    return isinstance(exc, ResourceNotFoundError)


def endpoint_label(service_url: str) -> str:
    """``http://127.0.0.1:10002`` of a storage service URL (the account path left out)."""
    parts = urlsplit(service_url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else service_url
