"""Loading and indexing v2 apps: metadata, durable name lookups, the listing, and every load error."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.app._app_index import AppIndex, load_app
from emulator.app._app_index import format_function_listing as listing
from emulator.app._settings import AppLoadError

REPO_ROOT = Path(__file__).resolve().parents[2]
HTTP_BASICS = REPO_ROOT / "tests" / "apps" / "http_basics"

HEADER = (
    "import azure.functions as func\n\napp = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
)


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo sys.path changes and forget the apps' modules (not third-party ones, which must stay
    single copies for isinstance checks to hold)."""
    saved_path = list(sys.path)
    before = set(sys.modules)
    monkeypatch.delenv("PYTHON_SCRIPT_FILE_NAME", raising=False)
    yield
    sys.path[:] = saved_path
    for name in set(sys.modules) - before:
        if name.startswith(("function_app", "emu_helper", "other_entry")):
            del sys.modules[name]


def write_app(root: Path, source: str, filename: str = "function_app.py") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / filename).write_text(textwrap.dedent(source), encoding="utf-8")
    return root


def load_error(root: Path) -> str:
    with pytest.raises(AppLoadError) as caught:
        load_app(root)
    return str(caught.value)


# -- the http_basics test app --------------------------------------------------------------------


@pytest.fixture
def basics() -> AppIndex:
    return load_app(HTTP_BASICS)


def test_http_basics_functions_are_indexed_with_names_and_trigger_types(basics: AppIndex) -> None:
    kinds = {fn.name: fn.trigger_type for fn in basics.functions}
    assert kinds["greet"] == "httpTrigger"
    assert kinds["StartOrchestration"] == "httpTrigger"
    assert kinds["hello_orchestrator"] == "orchestrationTrigger"
    assert kinds["say_hello"] == "activityTrigger"
    assert basics.script_root == HTTP_BASICS.resolve()
    assert len(basics.http_functions) == sum(1 for k in kinds.values() if k == "httpTrigger")


def test_http_trigger_metadata_has_the_function_json_shape(basics: AppIndex) -> None:
    greet = basics.function("greet")
    assert greet is not None
    assert dict(greet.trigger) == {
        "direction": "IN",
        "type": "httpTrigger",
        "name": "req",
        "methods": ["GET"],
        "authLevel": "ANONYMOUS",
        "route": "greet/{name}",
    }
    assert greet.trigger in greet.bindings
    assert {"direction": "OUT", "type": "http", "name": "$return"} in [dict(b) for b in greet.bindings]
    assert greet.is_async is False
    assert greet.python_name == "greet"


def test_function_name_override_and_durable_client_wrapper(basics: AppIndex) -> None:
    starter = basics.function("startorchestration")
    assert starter is not None
    assert starter.name == "StartOrchestration"
    assert starter.python_name == "start_orchestration"
    # The SDK wraps durable-client functions in an async middleware.
    assert starter.is_async is True
    types = [b["type"] for b in starter.bindings]
    assert "durableClient" in types


def test_durable_lookups_use_the_alias_case_insensitively(basics: AppIndex) -> None:
    orchestrator = basics.orchestrator("hellosequence")
    assert orchestrator is not None
    assert orchestrator.name == "hello_orchestrator"
    assert orchestrator.durable_name == "HelloSequence"
    # call_sub_orchestrator(fn_object) sends the Python __name__: that resolves too.
    assert basics.orchestrator("HELLO_ORCHESTRATOR") is orchestrator
    activity = basics.activity("Say_Hello")
    assert activity is not None and activity.durable_name == "say_hello"
    assert basics.activity("HelloSequence") is None
    assert basics.entity("anything") is None
    assert basics.orchestrator("missing") is None


def test_names_lists_durable_names_of_one_kind(basics: AppIndex) -> None:
    assert basics.names("orchestrationTrigger") == ["HelloSequence"]
    assert basics.names("activityTrigger") == ["say_hello"]
    assert basics.names("entityTrigger") == []


def test_the_same_app_can_be_loaded_twice(basics: AppIndex) -> None:
    # get_functions() refuses a second call on one app object; each load must import afresh.
    again = load_app(HTTP_BASICS)
    assert [fn.name for fn in again.functions] == [fn.name for fn in basics.functions]
    assert again.function("greet") is not basics.function("greet")


def test_script_root_is_put_first_on_sys_path(basics: AppIndex) -> None:
    assert sys.path[0] == str(HTTP_BASICS.resolve())


# -- tiny apps -----------------------------------------------------------------------------------


def test_two_single_file_apps_load_side_by_side(tmp_path: Path) -> None:
    first = write_app(tmp_path / "one", HEADER + "\n@app.route()\ndef first(req):\n    return 'one'\n")
    second = write_app(tmp_path / "two", HEADER + "\n@app.route()\ndef second(req):\n    return 'two'\n")
    index_one = load_app(first)
    index_two = load_app(second)
    assert [fn.name for fn in index_one.functions] == ["first"]
    assert [fn.name for fn in index_two.functions] == ["second"]
    module_one = sys.modules[index_one.functions[0].user_function.__module__]
    module_two = sys.modules[index_two.functions[0].user_function.__module__]
    assert module_one is not module_two
    assert Path(module_two.__file__ or "").parent == second.resolve()


def test_dfapp_and_blueprint_functions_are_indexed(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import azure.durable_functions as df
        import azure.functions as func

        bp = df.Blueprint()

        @bp.activity_trigger(input_name="x", activity="Doubler")
        def double(x: int) -> int:
            return 2 * x

        @bp.entity_trigger(context_name="context", entity_name="Counter")
        def counter(context):
            context.set_result(None)

        app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
        app.register_functions(bp)
        """,
    )
    index = load_app(app)
    activity = index.activity("doubler")
    assert activity is not None and activity.name == "double" and activity.python_name == "double"
    entity = index.entity("counter")
    assert entity is not None and entity.durable_name == "Counter"
    assert index.names("entityTrigger") == ["Counter"]


def test_python_script_file_name_setting_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = write_app(tmp_path, HEADER + "\n@app.route()\ndef alt(req):\n    return 'x'\n", "other_entry.py")
    monkeypatch.setenv("PYTHON_SCRIPT_FILE_NAME", "other_entry.py")
    assert [fn.name for fn in load_app(app).functions] == ["alt"]


def test_missing_function_app_py(tmp_path: Path) -> None:
    message = load_error(tmp_path)
    assert message.startswith(f"No function_app.py in {tmp_path.resolve()}, and no function folders")


def test_function_json_folders_are_loaded_as_a_v1_app(tmp_path: Path) -> None:
    # More in test_v1_index.py; a function.json without a trigger is the v1 loader's error, not "no app".
    (tmp_path / "HttpStart").mkdir()
    (tmp_path / "HttpStart" / "function.json").write_text('{"bindings": []}', encoding="utf-8")
    message = load_error(tmp_path)
    assert "Function 'HttpStart': No trigger binding specified." in message


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    app = write_app(tmp_path, HEADER + "\ndef broken(:\n    pass\n")
    message = load_error(app)
    assert "SyntaxError" in message
    assert f"{app.resolve() / 'function_app.py'}:5" in message


def test_missing_module_names_the_module_and_the_import_line(tmp_path: Path) -> None:
    app = write_app(tmp_path, "import azure.functions as func\nimport emu_surely_not_installed\n")
    message = load_error(app)
    assert "ModuleNotFoundError: No module named 'emu_surely_not_installed'" in message
    assert "function_app.py:2" in message
    assert "installed" in message


def test_exception_at_import_names_the_innermost_app_frame(tmp_path: Path) -> None:
    write_app(tmp_path, "def explode():\n    return 1 / 0\n", "emu_helper_mod.py")
    app = write_app(
        tmp_path, "import azure.functions as func\nimport emu_helper_mod\n\nemu_helper_mod.explode()\n"
    )
    message = load_error(app)
    assert "ZeroDivisionError: division by zero" in message
    assert f"{app.resolve() / 'emu_helper_mod.py'}:2" in message
    assert "Traceback" not in message


def test_failed_import_leaves_no_half_imported_module(tmp_path: Path) -> None:
    app = write_app(tmp_path, "raise RuntimeError('nope')\n")
    before = sys.modules.get("function_app")
    load_error(app)
    assert sys.modules.get("function_app") is before


def test_module_without_a_function_app_object(tmp_path: Path) -> None:
    app = write_app(tmp_path, "import azure.functions as func\n\ndef helper():\n    pass\n")
    assert "Could not find top level function app instances in function_app.py" in load_error(app)


def test_two_top_level_apps_are_rejected_like_the_worker(tmp_path: Path) -> None:
    source = HEADER + "other = func.FunctionApp()\n\n@app.route()\ndef f(req):\n    return 'x'\n"
    message = load_error(write_app(tmp_path, source))
    assert "More than one FunctionApp or other top level function app instances are defined" in message
    assert "app, other" in message


def test_duplicate_function_names_from_the_sdk_are_named(tmp_path: Path) -> None:
    source = HEADER + textwrap.dedent(
        """
        @app.function_name("Same")
        @app.route(route="a")
        def a(req):
            return "a"

        @app.function_name("Same")
        @app.route(route="b")
        def b(req):
            return "b"
        """
    )
    message = load_error(write_app(tmp_path, source))
    assert "Function Same does not have a unique function name" in message


def test_names_differing_only_in_case_are_duplicates(tmp_path: Path) -> None:
    source = HEADER + textwrap.dedent(
        """
        @app.route(route="a")
        def hello(req):
            return "a"

        @app.function_name("Hello")
        @app.route(route="b")
        def other(req):
            return "b"
        """
    )
    message = load_error(write_app(tmp_path, source))
    assert "'hello' and 'Hello' have the same name" in message


def test_app_without_functions(tmp_path: Path) -> None:
    assert "defines the app 'app' but no functions" in load_error(write_app(tmp_path, HEADER))


def test_function_names_must_be_valid_for_the_host(tmp_path: Path) -> None:
    source = HEADER + "\n@app.route()\ndef _private(req):\n    return 'x'\n"
    assert "'_private' is not a valid function name" in load_error(write_app(tmp_path, source))


def test_function_without_trigger_is_reported(tmp_path: Path) -> None:
    source = HEADER + "\n@app.function_name('NoTrigger')\ndef lonely(req):\n    return 'x'\n"
    message = load_error(write_app(tmp_path, source))
    assert "Function NoTrigger does not have a trigger" in message


# -- the seed app at the repository root -----------------------------------------------------------


@pytest.mark.skipif(not (REPO_ROOT / "function_app.py").is_file(), reason="no seed app at the repo root")
def test_seed_app_at_the_repo_root_loads() -> None:
    index = load_app(REPO_ROOT)
    assert index.http_functions, "the seed app should have an HTTP starter"
    for name in index.names("orchestrationTrigger"):
        found = index.orchestrator(name)
        assert found is not None and found.durable_name == name
    for name in index.names("activityTrigger"):
        assert index.activity(name.upper()) is not None


# -- the function listing ------------------------------------------------------------------------


def test_listing_matches_core_tools_layout(tmp_path: Path) -> None:
    source = HEADER + textwrap.dedent(
        """
        @app.route(route="orchestrators/{functionName}", methods=["post"])
        def zeta_start(req):
            return "z"

        @app.route()
        def Alpha(req):
            return "a"

        @app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
        def beta_timer(timer):
            pass
        """
    )
    index = load_app(write_app(tmp_path, source))
    assert listing(index, "http://localhost:7071", "api") == (
        "Functions:\n"
        "\n"
        "\tAlpha:  http://localhost:7071/api/Alpha\n"
        "\n"
        "\tzeta_start: [POST] http://localhost:7071/api/orchestrators/{functionName}\n"
        "\n"
        "\tbeta_timer: timerTrigger"
    )


def test_listing_without_route_prefix(basics: AppIndex) -> None:
    text = listing(basics, "http://localhost:7071/", "")
    assert "\tgreet: [GET] http://localhost:7071/greet/{name}\n" in text
    assert "\techo: [POST,PUT] http://localhost:7071/echo\n" in text
    # Non-HTTP functions come after every HTTP one.
    assert text.index("hello_orchestrator: orchestrationTrigger") > text.index("with_context:")


def test_listing_of_an_empty_index_is_empty() -> None:
    assert listing(AppIndex(script_root=Path("."), functions=()), "http://localhost:7071", "api") == ""
