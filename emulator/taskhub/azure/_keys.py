"""Table keys of the real Azure Storage provider: partition hashing and key escaping."""

from __future__ import annotations

import sys

from emulator.taskhub._partitioning import fnv1a_32

__all__ = ["escape_partition_key", "fnv1a_32", "prefix_upper_bound", "unescape_partition_key"]

_UNESCAPED = {"^": "^", "0": "/", "1": "\\", "2": "#", "3": "?"}


def escape_partition_key(instance_id: str) -> str:
    """``KeySanitation.EscapePartitionKey``: table keys may not hold / \\ # ? or control chars."""
    out: list[str] = []
    for ch in instance_id:
        if ch == "^":
            out.append("^^")
        elif ch == "/":
            out.append("^0")
        elif ch == "\\":
            out.append("^1")
        elif ch == "#":
            out.append("^2")
        elif ch == "?":
            out.append("^3")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            out.append("^" + chr(0xC0 + ord(ch) % 0x40))
        else:
            out.append(ch)
    return "".join(out)


def unescape_partition_key(key: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(key):
        ch = key[i]
        if ch == "^" and i + 1 < len(key):
            nxt = key[i + 1]
            if nxt in _UNESCAPED:
                out.append(_UNESCAPED[nxt])
            else:
                code = ord(nxt) - 0xC0
                out.append(chr(code if code < 0x20 else code + 0x60))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def prefix_upper_bound(prefix: str) -> str | None:
    """The first string after every string that starts with ``prefix`` (None: no such string)."""
    kept = prefix.rstrip(chr(sys.maxunicode))  # the last code point has no successor
    return kept[:-1] + chr(ord(kept[-1]) + 1) if kept else None
