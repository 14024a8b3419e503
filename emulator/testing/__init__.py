"""Helpers for tests of Durable Functions apps run on the emulator."""

from emulator.testing._background import BackgroundHost

__all__ = ["BackgroundHost"]
