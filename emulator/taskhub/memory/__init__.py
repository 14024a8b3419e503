"""The task hub in the process's memory (:class:`InMemoryTaskHub`): no storage service needed."""

from emulator.taskhub.memory._hub import InMemoryTaskHub

__all__ = ["InMemoryTaskHub"]
