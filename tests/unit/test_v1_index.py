"""Loading v1 programming model apps: function.json folders imported as the Python worker does."""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.app._app_index import V1_PACKAGE, AppIndex, load_app
from emulator.app._settings import AppLoadError

V1_APP = Path(__file__).resolve().parents[1] / "apps" / "v1_app"


@pytest.fixture(autouse=True)
def isolated_imports() -> Iterator[None]:
    saved_path = list(sys.path)
    saved = {n: m for n, m in sys.modules.items() if n == V1_PACKAGE or n.startswith(V1_PACKAGE + ".")}
    yield
    sys.path[:] = saved_path
    for name in [n for n in sys.modules if n == V1_PACKAGE or n.startswith(V1_PACKAGE + ".")]:
        del sys.modules[name]
    sys.modules.update(saved)


def add_function(root: Path, name: str, bindings: list[dict[str, Any]], source: str, **metadata: Any) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "function.json").write_text(json.dumps({**metadata, "bindings": bindings}), encoding="utf-8")
    script = str(metadata.get("scriptFile") or "__init__.py")
    (folder / script).write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


ACTIVITY = [{"name": "name", "type": "activityTrigger", "direction": "in"}]
HELLO = "def main(name: str) -> str:\n    return f'Hello {name}!'\n"


def load_error(root: Path) -> str:
    with pytest.raises(AppLoadError) as caught:
        load_app(root)
    return str(caught.value)


# -- the Core Tools sample app --------------------------------------------------------------------


@pytest.fixture
def sample() -> AppIndex:
    return load_app(V1_APP)


def test_every_function_folder_is_indexed_with_its_trigger(sample: AppIndex) -> None:
    assert sample.model == "v1"
    kinds = {fn.name: fn.trigger_type for fn in sample.functions}
    assert kinds == {
        "Counter": "entityTrigger",
        "DurableFunctionsHttpStart": "httpTrigger",
        "DurableFunctionsOrchestrator": "orchestrationTrigger",
        "Hello": "activityTrigger",
    }


def test_functions_are_the_entry_points_of_modules_under_the_app_package(sample: AppIndex) -> None:
    hello = sample.activity("hello")
    assert hello is not None and hello.user_function("Ada") == "Hello Ada!"
    assert hello.user_function.__module__ == "__app__.Hello"
    starter = sample.function("DurableFunctionsHttpStart")
    assert starter is not None and starter.is_async
    # The worker passes the durableClient binding's JSON to the parameter the binding names.
    assert list(inspect.signature(starter.user_function).parameters) == ["req", "starter"]
    assert [b["type"] for b in starter.bindings] == ["httpTrigger", "http", "durableClient"]
    assert starter.trigger["route"] == "orchestrators/{functionName}"


def test_orchestrators_and_entities_are_the_sdk_handles(sample: AppIndex) -> None:
    orchestrator = sample.orchestrator("DurableFunctionsOrchestrator")
    entity = sample.entity("counter")
    assert orchestrator is not None and entity is not None
    assert list(inspect.signature(orchestrator.user_function).parameters) == ["context"]
    assert hasattr(orchestrator.user_function, "orchestrator_function")
    assert hasattr(entity.user_function, "entity_function")


def test_the_app_package_points_at_the_latest_v1_app(sample: AppIndex, tmp_path: Path) -> None:
    add_function(tmp_path, "Hello", ACTIVITY, "def main(name: str) -> str:\n    return 'other'\n")
    other = load_app(tmp_path)
    hello = other.activity("Hello")
    assert hello is not None and hello.user_function("x") == "other"
    assert list(sys.modules[V1_PACKAGE].__path__) == [str(tmp_path.resolve())]


# -- function.json options ---------------------------------------------------------------------------


def test_script_file_and_entry_point(tmp_path: Path) -> None:
    add_function(
        tmp_path,
        "Greeter",
        ACTIVITY,
        "def greet(name: str) -> str:\n    return 'hi ' + name\n",
        scriptFile="greeter.py",
        entryPoint="greet",
    )
    greeter = load_app(tmp_path).activity("Greeter")
    assert greeter is not None and greeter.user_function("Bo") == "hi Bo"
    assert greeter.user_function.__module__ == "__app__.Greeter.greeter"


def test_functions_import_shared_code_relatively_and_from_the_root(tmp_path: Path) -> None:
    (tmp_path / "shared_code").mkdir()
    (tmp_path / "shared_code" / "__init__.py").write_text("PREFIX = 'shared'\n", encoding="utf-8")
    source = """
        from ..shared_code import PREFIX
        import shared_code

        def main(name: str) -> str:
            return f"{PREFIX}/{shared_code.PREFIX}/{name}"
    """
    add_function(tmp_path, "Uses", ACTIVITY, source)
    uses = load_app(tmp_path).activity("Uses")
    assert uses is not None and uses.user_function("n") == "shared/shared/n"


def test_disabled_functions_are_skipped(tmp_path: Path) -> None:
    add_function(tmp_path, "Hello", ACTIVITY, HELLO)
    add_function(tmp_path, "Off", ACTIVITY, HELLO, disabled=True)
    assert [fn.name for fn in load_app(tmp_path).functions] == ["Hello"]


def test_orchestration_client_is_the_older_name_of_the_client_binding(tmp_path: Path) -> None:
    bindings = [
        {"name": "req", "type": "httpTrigger", "direction": "in", "authLevel": "anonymous"},
        {"name": "$return", "type": "http", "direction": "out"},
        {"name": "starter", "type": "orchestrationClient", "direction": "in"},
    ]
    add_function(tmp_path, "Start", bindings, "async def main(req, starter):\n    return starter\n")
    (start,) = load_app(tmp_path).http_functions
    assert start.bindings[2]["type"] == "orchestrationClient"


# -- errors ----------------------------------------------------------------------------------------------


def test_a_function_needs_exactly_one_trigger(tmp_path: Path) -> None:
    add_function(
        tmp_path, "NoTrigger", [{"name": "x", "type": "blob", "direction": "in"}], "def main(x): pass\n"
    )
    assert "Function 'NoTrigger': No trigger binding specified." in load_error(tmp_path)
    both = [*ACTIVITY, {"name": "req", "type": "httpTrigger", "direction": "in"}]
    add_function(tmp_path, "NoTrigger", both, "def main(name, req): pass\n")
    assert "Multiple trigger bindings defined" in load_error(tmp_path)


def test_missing_script_file_and_entry_point(tmp_path: Path) -> None:
    folder = add_function(tmp_path, "Hello", ACTIVITY, HELLO, scriptFile="run.py")
    (folder / "function.json").write_text(
        json.dumps({"scriptFile": "nope.py", "bindings": ACTIVITY}), encoding="utf-8"
    )
    assert "The 'scriptFile' property is set to a file that does not exist" in load_error(tmp_path)
    (folder / "function.json").write_text(
        json.dumps({"scriptFile": "run.py", "entryPoint": "handler", "bindings": ACTIVITY}), encoding="utf-8"
    )
    assert (
        load_error(tmp_path)
        == "cannot load function Hello: function handler() is not present in Hello/run.py"
    )


def test_parameters_must_match_the_bindings(tmp_path: Path) -> None:
    add_function(tmp_path, "Hello", ACTIVITY, "def main(city: str) -> str:\n    return city\n")
    message = load_error(tmp_path)
    assert message.startswith(
        "cannot load the Hello function: the following parameters are declared in Python"
    )
    assert "['city']" in message


def test_import_errors_name_the_file_and_line(tmp_path: Path) -> None:
    add_function(tmp_path, "Broken", ACTIVITY, "import not_a_module_anywhere\n\ndef main(name): pass\n")
    message = load_error(tmp_path)
    assert "ModuleNotFoundError: No module named 'not_a_module_anywhere'" in message
    assert f"{tmp_path.resolve() / 'Broken' / '__init__.py'}:1" in message
