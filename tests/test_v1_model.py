"""A v1 programming model app, as Core Tools generates it, run end to end on the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.app._app_index import format_function_listing
from emulator.testing import BackgroundHost
from tests.conftest import TEST_APPS, start_host
from tests.support import request, wait_for_status


@pytest.fixture(scope="module")
def v1_host(storage_connection: str) -> Iterator[BackgroundHost]:
    host = start_host(TEST_APPS / "v1_app", storage_connection)
    try:
        yield host
    finally:
        host.stop()


def test_the_starter_fans_the_orchestrator_out_over_the_activity(v1_host: BackgroundHost) -> None:
    cities = ["Oslo", "Lima", "Pune", "Kyiv"]
    reply = request("POST", f"{v1_host.base_url}/api/orchestrators/DurableFunctionsOrchestrator", cities)
    assert reply.status == 202, reply.body
    payload = reply.json()
    assert reply.headers["Location"] == payload["statusQueryGetUri"]
    assert "/runtime/webhooks/durabletask/instances/" in payload["statusQueryGetUri"]
    status = wait_for_status(payload["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == [f"Hello {city}!" for city in cities]
    runs = [r for r in v1_host.host.invocations.records("Hello") if r.instance_id == payload["id"]]
    assert len(runs) == len(cities) and all(r.succeeded for r in runs)


def test_the_template_starter_without_a_body_uses_the_default_cities(v1_host: BackgroundHost) -> None:
    # authLevel "function" is declared but, as under func start, no key is needed.
    reply = request("GET", f"{v1_host.base_url}/api/orchestrators/DurableFunctionsOrchestrator")
    assert reply.status == 202
    output = wait_for_status(reply.json()["statusQueryGetUri"])["output"]
    assert output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_the_listing_shows_the_v1_functions(v1_host: BackgroundHost) -> None:
    index = v1_host.host.index
    assert index is not None
    text = format_function_listing(index, v1_host.base_url, "api")
    assert (
        f"\tDurableFunctionsHttpStart: [POST,GET] {v1_host.base_url}/api/orchestrators/{{functionName}}"
        in text
    )
    assert "\tHello: activityTrigger" in text and "\tCounter: entityTrigger" in text


def test_a_v1_http_function_sees_its_own_folder_as_function_directory(
    tmp_path: Path, storage_connection: str
) -> None:
    app = tmp_path / "app"
    folder = app / "WhereAmI"
    folder.mkdir(parents=True)
    (app / "host.json").write_text('{"version": "2.0"}', encoding="utf-8")
    (folder / "function.json").write_text(
        '{"bindings": [{"name": "req", "type": "httpTrigger", "direction": "in", "authLevel": "anonymous"},'
        ' {"name": "$return", "type": "http", "direction": "out"}]}',
        encoding="utf-8",
    )
    (folder / "__init__.py").write_text(
        "import azure.functions as func\n\n\n"
        "def main(req: func.HttpRequest, context: func.Context) -> str:\n"
        "    return context.function_directory\n",
        encoding="utf-8",
    )
    host = start_host(app, storage_connection)
    try:
        reply = request("GET", f"{host.base_url}/api/WhereAmI")
        assert (reply.status, reply.body.decode()) == (200, str(folder.resolve()))
    finally:
        host.stop()
