"""Which partition an instance belongs to: the same hash in every task hub implementation."""

from __future__ import annotations


def fnv1a_32(text: str) -> int:
    """The 32-bit FNV-1a hash of the UTF-8 text, as the real provider places instances."""
    value = 2166136261
    for byte in text.encode("utf-8"):
        value ^= byte
        value = (value * 16777619) & 0xFFFFFFFF
    return value
