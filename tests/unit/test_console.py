"""The host's console: the Functions host's line format, written off the logging thread."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from emulator.tools._console import ConsoleWriter

LINE = re.compile(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] (.*)$")


def message(line: str) -> str:
    match = LINE.match(line)
    assert match, line
    return match.group(1)


@pytest.fixture
def console() -> Iterator[tuple[logging.Logger, ConsoleWriter, io.StringIO]]:
    stream = io.StringIO()
    writer = ConsoleWriter(stream)
    writer.start()
    log = logging.getLogger("test.console")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.handlers[:] = [writer.handler]
    yield log, writer, stream
    log.handlers[:] = []
    writer.stop()


def test_lines_have_the_host_format_and_the_message_as_it_was_logged() -> None:
    stream = io.StringIO()
    writer = ConsoleWriter(stream)  # not started yet: nothing is formatted
    log = logging.getLogger("test.console.unstarted")
    log.propagate = False
    log.handlers[:] = [writer.handler]
    items = ["a"]
    log.warning("Executing 'Functions.%s' %s", "Hello", items)
    items.append("changed after the call")  # the line keeps what the message was
    writer.start()
    writer.stop()
    log.handlers[:] = []
    (line,) = stream.getvalue().splitlines()
    assert message(line) == "Executing 'Functions.Hello' ['a']"


def test_an_exception_is_printed_with_its_traceback(
    console: tuple[logging.Logger, ConsoleWriter, io.StringIO],
) -> None:
    log, writer, stream = console
    try:
        raise ValueError("bad input")
    except ValueError:
        log.exception("Executed 'Functions.Hello' (Failed)")
    writer.stop()
    text = stream.getvalue()
    assert message(text.splitlines()[0]) == "Executed 'Functions.Hello' (Failed)"
    assert "Traceback (most recent call last):" in text
    assert text.rstrip().endswith("ValueError: bad input")


def test_the_handler_honours_levels_and_filters(
    console: tuple[logging.Logger, ConsoleWriter, io.StringIO],
) -> None:
    log, writer, stream = console
    writer.handler.addFilter(lambda record: "secret" not in record.getMessage())
    log.debug("below the level")
    log.info("a secret line")
    log.info("kept")
    writer.stop()
    assert [message(line) for line in stream.getvalue().splitlines()] == ["kept"]
