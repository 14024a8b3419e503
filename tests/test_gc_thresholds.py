"""The host's garbage-collector threshold: set before the app is imported, so the app's own wins."""

from __future__ import annotations

from emulator.testing._subprocess import SubprocessHost
from emulator.tools._cli import GC_YOUNG_THRESHOLD
from tests.conftest import TEST_APPS
from tests.support import request

GC_APP = TEST_APPS / "gc_app"


def test_the_host_collects_young_objects_less_often_than_python_by_default(storage_connection: str) -> None:
    with SubprocessHost(GC_APP, connection_string=storage_connection) as host:
        reply = request("GET", f"{host.base_url}/api/thresholds")
    assert reply.status == 200, reply.body
    assert reply.json()["at_import"] == [GC_YOUNG_THRESHOLD, 10, 10]
    assert reply.json()["now"] == [GC_YOUNG_THRESHOLD, 10, 10]


def test_an_app_that_sets_its_own_thresholds_keeps_them(storage_connection: str) -> None:
    env = {"GC_APP_THRESHOLDS": "900,5,5"}
    with SubprocessHost(GC_APP, connection_string=storage_connection, env=env) as host:
        reply = request("GET", f"{host.base_url}/api/thresholds")
    assert reply.status == 200, reply.body
    assert reply.json()["now"] == [900, 5, 5]
