"""Helpers for tests of Durable Functions apps run on the emulator.

The pytest plugin (:mod:`emulator.testing.plugin`, registered through the package's entry point)
provides the fixtures; everything here also works without it.
"""

from emulator.durable._crash import POINTS as CRASH_POINTS
from emulator.testing._background import BackgroundHost
from emulator.testing._durable_host import DurableHost, HostConfig
from emulator.testing._hub_replay import assert_hub_replays, check_hub_replays
from emulator.testing._pool import DurableHostFactory, DurableHosts
from emulator.testing._replay import assert_replays, replay_history
from emulator.testing._subprocess import SubprocessHost
from emulator.tools._offline_replay import ReplayReport

__all__ = [
    "CRASH_POINTS",
    "BackgroundHost",
    "DurableHost",
    "DurableHostFactory",
    "DurableHosts",
    "HostConfig",
    "ReplayReport",
    "SubprocessHost",
    "assert_hub_replays",
    "assert_replays",
    "check_hub_replays",
    "replay_history",
]
