"""The host's console: log records become ``[timestamp] message`` lines, written off the event loop.

A busy host logs four lines per step of a chain ("Executing"/"Executed" for the orchestrator
and for the activity), so the cost of one record on the thread that logs it matters. The
handler here fixes the record's message on that thread (a mutable argument changed later
cannot change the line) and leaves the rest to the console's own thread: the line's format,
the exception's traceback and the write. ``logging.handlers.QueueHandler`` would also format
the whole line, copy the record and take the handler's lock on the logging thread; that was
a quarter of the cost of a log call in a profile of 500 orders at once.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import time
from datetime import datetime, timezone
from typing import TextIO

#: A record and its message, fixed when it was logged (``None`` ends the console's thread).
_Line = tuple[logging.LogRecord, str] | None


class HostFormatter(logging.Formatter):
    """``[2024-04-29T10:26:20.356Z] message``, the Functions host's console format."""

    def line(self, record: logging.LogRecord, message: str) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        text = f"[{stamp[:-6]}Z] {message}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


class ConsoleHandler(logging.Handler):
    """Hands each record, with its message, to a :class:`ConsoleWriter`."""

    def __init__(self, lines: queue.SimpleQueue[_Line]) -> None:
        super().__init__()
        self._lines = lines

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: the queue is thread-safe, and nothing else here is shared.
        passed = self.filter(record)
        if isinstance(passed, logging.LogRecord):  # Python 3.12+: a filter may replace the record
            record = passed
        if passed:
            self.emit(record)
        return bool(passed)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.put((record, record.getMessage()))
        except Exception:
            self.handleError(record)


class ConsoleWriter:
    """Formats and writes the handed-over records on a thread of its own, in batches.

    A write to a slow pipe or terminal then never holds up the event loop that runs every
    orchestration, and a busy host costs one write and one thread wake-up per batch rather
    than per line. Lines appear at most ``PAUSE`` late.
    """

    PAUSE = 0.02

    def __init__(self, stream: TextIO) -> None:
        self.lines: queue.SimpleQueue[_Line] = queue.SimpleQueue()
        self.handler = ConsoleHandler(self.lines)
        self._stream = stream
        self._formatter = HostFormatter()
        self._thread = threading.Thread(target=self._run, name="console", daemon=True)

    def start(self) -> None:
        self._thread.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.lines.put(None)
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            batch = [self.lines.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 10_000:
                    batch.append(self.lines.get_nowait())
            text = []
            for item in batch:
                if item is None:
                    break
                record, message = item
                try:
                    text.append(self._formatter.line(record, message) + "\n")
                except Exception:  # a bad record must not silence the console for good
                    text.append(f"(unprintable log record from {record.name})\n")
            with contextlib.suppress(OSError, ValueError):
                self._stream.write("".join(text))
                self._stream.flush()
            if None in batch:
                return
            time.sleep(self.PAUSE)  # let the next lines gather instead of waking per line
