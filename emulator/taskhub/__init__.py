"""The task hub: where durable state lives, behind one interface (:mod:`emulator.taskhub._interface`)."""

from emulator.taskhub._interface import (
    ControlMessage,
    HistoryConflictError,
    InstanceQuery,
    InstanceRecord,
    InstanceUpdate,
    InvalidContinuationToken,
    MessageLease,
    PartitionLease,
    StoredHistory,
    TaskHub,
    TaskHubUnavailable,
)

__all__ = [
    "ControlMessage",
    "HistoryConflictError",
    "InstanceQuery",
    "InstanceRecord",
    "InstanceUpdate",
    "InvalidContinuationToken",
    "MessageLease",
    "PartitionLease",
    "StoredHistory",
    "TaskHub",
    "TaskHubUnavailable",
]
