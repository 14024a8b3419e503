"""Loading a Python Functions app and indexing its functions, as the Python worker does.

v2 programming model: import ``function_app.py`` (or the file named by the PYTHON_SCRIPT_FILE_NAME app
setting) from the script root, find the single top-level ``FunctionRegister`` and call its
``get_functions()``.

v1 programming model (no ``function_app.py``, one folder per function with a ``function.json``): read
each ``function.json``, import its ``scriptFile`` as ``__app__.<folder>`` like the worker's loader and
take the ``entryPoint`` (default ``main``) callable.

Either way each function becomes a :class:`FunctionInfo` carrying function.json-shaped binding dicts,
which is all the rest of the emulator works from.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import inspect
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from emulator.app._settings import AppLoadError, _read_json_file
from emulator.app._trigger_kinds import not_emulated_reason

logger = logging.getLogger("emulator.host")

DEFAULT_SCRIPT_FILE = "function_app.py"
FUNCTION_JSON = "function.json"
#: The v1 worker's defaults and the namespace package it imports function folders under.
DEFAULT_ENTRY_POINT = "main"
V1_PACKAGE = "__app__"

HTTP_TRIGGER = "httpTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
ENTITY_TRIGGER = "entityTrigger"

# The trigger key that renames a durable function (the host registers it under this alias).
_DURABLE_ALIAS_KEYS = {
    ORCHESTRATION_TRIGGER.lower(): "orchestration",
    ACTIVITY_TRIGGER.lower(): "activity",
    ENTITY_TRIGGER.lower(): "entityName",
}

# The host's Utility.IsValidFunctionName.
_FUNCTION_NAME_RE = re.compile(r"[a-z][a-z0-9_\-]{0,127}", re.IGNORECASE)

_EMULATOR_DIR = Path(__file__).resolve().parents[1]
#: How a load error ends at the start (``--watch`` says instead that the next save is tried).
FIX_AND_START_AGAIN = " Fix the error and start again."


@dataclass(frozen=True)
class FunctionInfo:
    """One indexed function: its metadata (function.json shape) and the callable to invoke."""

    name: str
    trigger_type: str
    trigger: Mapping[str, Any]
    bindings: tuple[Mapping[str, Any], ...]
    user_function: Callable[..., Any]
    is_async: bool
    durable_name: str
    python_name: str

    def is_kind(self, trigger_type: str) -> bool:
        """Binding types compare case-insensitively on the host."""
        return self.trigger_type.lower() == trigger_type.lower()


@dataclass
class AppIndex:
    script_root: Path
    functions: tuple[FunctionInfo, ...]
    #: "v2" (decorators in function_app.py) or "v1" (function.json folders).
    model: str = "v2"
    _by_kind: dict[str, list[FunctionInfo]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_kind = {}
        for fn in self.functions:
            self._by_kind.setdefault(fn.trigger_type.lower(), []).append(fn)

    def _find(self, trigger_type: str, name: str) -> FunctionInfo | None:
        candidates = self._by_kind.get(trigger_type.lower(), [])
        wanted = name.casefold()
        for fn in candidates:
            if fn.durable_name.casefold() == wanted:
                return fn
        # call_activity(fn_object) and friends send the Python __name__, not the registered name.
        for fn in candidates:
            if fn.python_name.casefold() == wanted:
                return fn
        return None

    def function(self, name: str) -> FunctionInfo | None:
        """Any function by its function name (case-insensitive)."""
        wanted = name.casefold()
        return next((fn for fn in self.functions if fn.name.casefold() == wanted), None)

    def orchestrator(self, name: str) -> FunctionInfo | None:
        return self._find(ORCHESTRATION_TRIGGER, name)

    def activity(self, name: str) -> FunctionInfo | None:
        return self._find(ACTIVITY_TRIGGER, name)

    def entity(self, name: str) -> FunctionInfo | None:
        return self._find(ENTITY_TRIGGER, name)

    @property
    def http_functions(self) -> tuple[FunctionInfo, ...]:
        return tuple(self._by_kind.get(HTTP_TRIGGER.lower(), []))

    def names(self, trigger_type: str) -> list[str]:
        """Durable names of one kind of function, sorted, for error messages."""
        found = self._by_kind.get(trigger_type.lower(), [])
        return sorted((fn.durable_name for fn in found), key=str.casefold)


def load_app(script_root: Path) -> AppIndex:
    """Import the app at ``script_root`` and index its functions; AppLoadError on any problem."""
    root = Path(script_root).resolve()
    if not root.is_dir():
        raise AppLoadError(f"The app folder {root} does not exist or is not a folder.")
    script_name = os.environ.get("PYTHON_SCRIPT_FILE_NAME") or DEFAULT_SCRIPT_FILE
    script = root / script_name
    if not script.is_file():
        if any(root.glob(f"*/{FUNCTION_JSON}")):
            return AppIndex(script_root=root, functions=_index_v1_app(root), model="v1")
        raise AppLoadError(
            f"No {script_name} in {root}, and no function folders with a {FUNCTION_JSON}. Run the emulator "
            f"from the app folder (the one with host.json and {DEFAULT_SCRIPT_FILE}, or the function "
            f"folders of a v1 programming model app) or pass that folder's path."
        )
    module = _import_script(root, script)
    functions = _index_module(root, script, module)
    return AppIndex(script_root=root, functions=functions)


def _put_first_on_sys_path(root: Path) -> None:
    entry = str(root)
    if sys.path and sys.path[0] == entry:
        return
    while entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def _module_file(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _module_name_for(script: Path) -> str:
    """The worker imports the script as a top-level module named after it; keep that name unless a
    different app already holds it in this process (tests load several apps)."""
    name = script.stem
    existing = sys.modules.get(name)
    if existing is None or _module_file(existing) == script:
        return name
    digest = hashlib.sha1(str(script.parent).encode("utf-8")).hexdigest()[:12]
    return f"{name}_{digest}"


def is_app_file(filename: str, root: Path) -> bool:
    """True for a file of the app at ``root``: neither the emulator's nor an installed package's."""
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return False
    if not path.is_relative_to(root) or path.is_relative_to(_EMULATOR_DIR):
        return False
    return "site-packages" not in path.parts and "dist-packages" not in path.parts


def _user_location(exc: BaseException, root: Path) -> str | None:
    """file:line of the innermost frame that belongs to the app, for a one-line error."""
    if isinstance(exc, SyntaxError) and exc.filename and is_app_file(exc.filename, root):
        return f"{exc.filename}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_app_file(f.filename, root)]
    if not frames:
        return None
    return f"{frames[-1].filename}:{frames[-1].lineno}"


def _import_script(root: Path, script: Path) -> ModuleType:
    _put_first_on_sys_path(root)
    name = _module_name_for(script)
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"Cannot import {script}.")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    # Registered before running, as a normal import does, so the app's own modules can import it.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise AppLoadError(_import_error_message(root, script, exc)) from exc
    return module


def _import_error_message(root: Path, script: Path, exc: BaseException) -> str:
    where = _user_location(exc, root)
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError):
        detail = f"SyntaxError: {exc.msg}"
    message = f"Failed to load {script.name}: {detail}" + (f" (at {where})." if where else ".")
    if isinstance(exc, ModuleNotFoundError):
        message += (
            f" Is '{exc.name}' installed in the Python environment that runs the emulator? Unlike the "
            f"real host, the emulator does not install requirements.txt for you."
        )
    else:
        message += FIX_AND_START_AGAIN
    return message


def _index_module(root: Path, script: Path, module: ModuleType) -> tuple[FunctionInfo, ...]:
    import azure.functions as func

    # Like the worker: every module attribute bound to a FunctionRegister counts, even two names
    # for the same object, and more than one is an error.
    registers = [
        (attr, value) for attr, value in vars(module).items() if isinstance(value, func.FunctionRegister)
    ]
    if not registers:
        raise AppLoadError(
            f"Could not find top level function app instances in {script.name}. Create one at module level, "
            f"for example app = func.FunctionApp() or app = df.DFApp()."
        )
    if len(registers) > 1:
        names = ", ".join(attr for attr, _ in registers)
        raise AppLoadError(
            f"More than one {type(registers[0][1]).__name__} or other top level function app instances are "
            f"defined in {script.name} ({names}). The Python worker indexes exactly one: keep a single app "
            f"object and register the other functions on it, for example through a Blueprint and "
            f"app.register_functions(...)."
        )
    attr, app = registers[0]
    try:
        sdk_functions = app.get_functions()
    except Exception as exc:
        raise AppLoadError(f"Indexing the functions of {script.name} failed: {exc}") from exc
    if not sdk_functions:
        raise AppLoadError(
            f"{script.name} defines the app '{attr}' but no functions. Decorate at least one function with a "
            f"trigger, for example @{attr}.route(...)."
        )

    infos = tuple(_function_info(fn) for fn in sdk_functions)
    _check_names(infos, f"Rename it with @{attr}.function_name(...).")
    return infos


def _check_names(infos: tuple[FunctionInfo, ...], how_to_rename: str) -> None:
    seen: dict[str, str] = {}
    for info in infos:
        if not _FUNCTION_NAME_RE.fullmatch(info.name):
            raise AppLoadError(
                f"'{info.name}' is not a valid function name: the Functions host requires names that start "
                f"with a letter and contain only letters, digits, '_' and '-' (at most 128 characters). "
                f"{how_to_rename}"
            )
        key = info.name.casefold()
        if key in seen:
            raise AppLoadError(
                f"Functions '{seen[key]}' and '{info.name}' have the same name (the Functions host compares "
                f"function names case-insensitively). {how_to_rename.replace(' it ', ' one ')}"
            )
        seen[key] = info.name


def _function_info(sdk_function: Any) -> FunctionInfo:
    name: str = sdk_function.get_function_name()
    # The raw bindings are the JSON the worker sends the host: enums as strings, None values dropped.
    bindings = tuple(MappingProxyType(json.loads(raw)) for raw in sdk_function.get_raw_bindings())
    sdk_trigger = sdk_function.get_trigger()
    trigger = next(
        (b for b in bindings if b.get("type") == sdk_trigger.type and b.get("name") == sdk_trigger.name),
        None,
    )
    if trigger is None:
        trigger = next(b for b in bindings if str(b.get("type", "")).lower().endswith("trigger"))
    user_function = sdk_function.get_user_function()
    return _function_info_of(name, trigger, bindings, user_function, getattr(user_function, "__name__", name))


# -- the v1 programming model ---------------------------------------------------------------------


def _index_v1_app(root: Path) -> tuple[FunctionInfo, ...]:
    _put_first_on_sys_path(root)
    _install_v1_package(root)
    infos: list[FunctionInfo] = []
    for metadata_path in sorted(root.glob(f"*/{FUNCTION_JSON}"), key=lambda p: p.parent.name.casefold()):
        info = _v1_function(root, metadata_path.parent)
        if info is not None:
            infos.append(info)
    if not infos:
        raise AppLoadError(f"Every function of the v1 app in {root} is disabled: there is nothing to run.")
    result = tuple(infos)
    _check_names(result, "Rename its folder.")
    return result


def _install_v1_package(root: Path) -> None:
    """Register ``__app__`` as a namespace package over the script root, as the worker's loader does."""
    path = [str(root)]
    existing = sys.modules.get(V1_PACKAGE)
    if existing is not None and list(getattr(existing, "__path__", [])) == path:
        return
    # Another v1 app was loaded in this process (tests): forget its modules so names resolve here.
    for name in [n for n in sys.modules if n == V1_PACKAGE or n.startswith(V1_PACKAGE + ".")]:
        del sys.modules[name]
    spec = importlib.machinery.ModuleSpec(V1_PACKAGE, None, is_package=True)
    spec.submodule_search_locations = path
    package = importlib.util.module_from_spec(spec)
    package.__path__ = path
    sys.modules[V1_PACKAGE] = package
    importlib.invalidate_caches()


def _is_disabled(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


def _v1_function(root: Path, folder: Path) -> FunctionInfo | None:
    name = folder.name
    where = f"{folder.name}/{FUNCTION_JSON}"
    metadata = _read_json_file(folder / FUNCTION_JSON)
    if not isinstance(metadata, dict):
        raise AppLoadError(f"{where} must contain a JSON object.")
    if _is_disabled(metadata.get("disabled")):
        logger.info("Function '%s' is disabled (\"disabled\": true in %s)", name, where)
        return None
    raw_bindings = metadata.get("bindings")
    if not isinstance(raw_bindings, list) or not all(isinstance(b, dict) for b in raw_bindings):
        raise AppLoadError(f'{where} must have a "bindings" array of binding objects.')
    bindings = tuple(MappingProxyType(dict(b)) for b in raw_bindings)
    triggers = [b for b in bindings if str(b.get("type", "")).lower().endswith("trigger")]
    if not triggers:
        raise AppLoadError(
            f"Function '{name}': No trigger binding specified. A function must have a trigger input binding "
            f"({where})."
        )
    if len(triggers) > 1:
        raise AppLoadError(
            f"Function '{name}': Multiple trigger bindings defined. A function can only have a single "
            f"trigger binding ({where})."
        )
    trigger = triggers[0]
    script = _v1_script_file(folder, metadata.get("scriptFile"), where)
    entry_point = str(metadata.get("entryPoint") or DEFAULT_ENTRY_POINT)
    module = _import_v1_module(root, name, script)
    user_function = getattr(module, entry_point, None)
    if user_function is None or not callable(user_function):
        raise AppLoadError(
            f"cannot load function {name}: function {entry_point}() is not present in "
            f"{script.relative_to(root).as_posix()}"
        )
    _check_v1_parameters(name, user_function, bindings)
    # v1 functions are only ever called by their function name.
    return _function_info_of(name, trigger, bindings, user_function, name)


def _v1_script_file(folder: Path, script_file: Any, where: str) -> Path:
    """The host's primary script: ``scriptFile`` if given, else the folder's one script, run.py or
    __init__.py."""
    if script_file is not None:
        path = (folder / str(script_file)).resolve()
        if not path.is_file():
            raise AppLoadError(
                f"Invalid script file name configuration. The 'scriptFile' property is set to a file that "
                f"does not exist ({where}: {script_file})."
            )
        return path
    files = [p for p in folder.iterdir() if p.is_file() and p.name != FUNCTION_JSON]
    if len(files) == 1:
        return files[0].resolve()
    primary = [p for p in files if p.stem.lower() in ("run", "index", "__init__") and p.suffix == ".py"]
    if len(primary) == 1:
        return primary[0].resolve()
    raise AppLoadError(
        f"Unable to determine the primary function script for '{folder.name}'. Add an __init__.py, or name "
        f"the script file in the 'scriptFile' property of {where}."
    )


def _import_v1_module(root: Path, name: str, script: Path) -> ModuleType:
    try:
        relative = script.relative_to(root)
    except ValueError:
        raise AppLoadError(
            f"cannot load function {name}: script path {script} is not inside the app folder {root}"
        ) from None
    if relative.suffix != ".py":
        raise AppLoadError(f"cannot load function {name}: invalid Python filename {relative.as_posix()}")
    parts = [V1_PACKAGE, *relative.parts[:-1]]
    # The worker imports a function folder's __init__.py as the package itself, not a submodule.
    if relative.stem.lower() != "__init__":
        parts.append(relative.stem)
    module_name = ".".join(parts)
    try:
        return importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        raise AppLoadError(_import_error_message(root, script, exc)) from exc


def _check_v1_parameters(
    name: str, user_function: Callable[..., Any], bindings: tuple[Mapping[str, Any], ...]
) -> None:
    """The worker's check that function.json and the Python signature name the same parameters."""
    try:
        parameters = set(inspect.signature(user_function).parameters)
    except (TypeError, ValueError):
        return
    bound = {str(b.get("name")) for b in bindings if b.get("name") != "$return"}
    # ``context`` is the invocation context unless a binding claims the name.
    if "context" not in bound:
        parameters.discard("context")
    if parameters - bound:
        raise AppLoadError(
            f"cannot load the {name} function: the following parameters are declared in Python but not in "
            f"{FUNCTION_JSON}: {sorted(parameters - bound)!r}"
        )
    if bound - parameters:
        raise AppLoadError(
            f"cannot load the {name} function: the following parameters are declared in {FUNCTION_JSON} but "
            f"not in Python: {sorted(bound - parameters)!r}"
        )


def _http_listing_entry(fn: FunctionInfo, url_base: str) -> str:
    route = fn.trigger.get("route")
    route = route if isinstance(route, str) else fn.name
    methods = fn.trigger.get("methods")
    # Core Tools prints the declared methods, and nothing (an empty slot) when none are declared.
    shown = f"[{','.join(str(m).upper() for m in methods)}]" if methods else ""
    return f"\t{fn.name}: {shown} {url_base}{route}"


def format_function_listing(index: AppIndex, base_url: str, route_prefix: str) -> str:
    """The "Functions:" block ``func start`` prints: HTTP functions with their URLs, then the others."""
    prefix = route_prefix.strip("/")
    url_base = base_url.rstrip("/") + "/" + (f"{prefix}/" if prefix else "")
    by_name = sorted(index.functions, key=lambda fn: fn.name.casefold())
    http = [fn for fn in by_name if fn.is_kind(HTTP_TRIGGER)]
    others = [fn for fn in by_name if not fn.is_kind(HTTP_TRIGGER)]
    entries = [_http_listing_entry(fn, url_base) for fn in http]
    # Core Tools lists these by trigger type; the ones the emulator never fires are marked.
    entries += [
        f"\t{fn.name}: {fn.trigger_type}" + (" (not emulated)" if not_emulated_reason(fn.trigger) else "")
        for fn in others
    ]
    if not entries:
        return ""
    return "Functions:\n\n" + "\n\n".join(entries)


def _function_info_of(
    name: str,
    trigger: Mapping[str, Any],
    bindings: tuple[Mapping[str, Any], ...],
    user_function: Callable[..., Any],
    python_name: str,
) -> FunctionInfo:
    """One FunctionInfo for both models: the durable name is the trigger's alias, if it has one."""
    trigger_type = str(trigger["type"])
    alias_key = _DURABLE_ALIAS_KEYS.get(trigger_type.lower())
    alias = trigger.get(alias_key) if alias_key else None
    return FunctionInfo(
        name=name,
        trigger_type=trigger_type,
        trigger=trigger,
        bindings=bindings,
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        durable_name=alias if isinstance(alias, str) and alias else name,
        python_name=python_name,
    )
