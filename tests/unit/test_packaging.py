"""The package's metadata asks for ranges; our own runs pin versions inside them.

An exact pin in ``pyproject.toml`` makes the package uninstallable beside an app that pins another
version, so every dependency must be a range. Each lower bound is the version that the lowest-version
run of ``./dev pythons`` installs (constraints-lowest.txt), so no bound goes untested, and the lock
(constraints.txt) must lie inside the ranges, or ``./dev setup`` could not install it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _requirements() -> list[Requirement]:
    project = _project()
    extras = project["optional-dependencies"]
    listed = [*project["dependencies"], *(text for texts in extras.values() for text in texts)]
    return [Requirement(text) for text in dict.fromkeys(listed)]


def test_every_extra_is_part_of_the_dev_extra_with_the_same_range() -> None:
    # Our own runs install [dev]: what [debug] and [test] promise is then what the suite tests.
    extras = _project()["optional-dependencies"]
    assert set(extras) == {"debug", "test", "dev"}
    assert extras["test"] == ["pytest>=8.3.0"]  # all the plugin needs beside the package itself
    for name in ("debug", "test"):
        assert set(extras[name]) <= set(extras["dev"]), f"[{name}] differs from [dev]"


def _pins(name: str) -> dict[str, Version]:
    """The pins of a constraints file whose markers hold on this Python."""
    pins: dict[str, Version] = {}
    for line in (ROOT / name).read_text().splitlines():
        text, _, marker = line.split("#", 1)[0].partition(";")
        if not text.strip() or (marker.strip() and not Marker(marker).evaluate()):
            continue
        package, _, version = text.strip().partition("==")
        pins[canonicalize_name(package)] = Version(version)
    return pins


def test_runtime_dependencies_are_ranges_whose_lower_bounds_are_tested() -> None:
    lowest = _pins("constraints-lowest.txt")
    for requirement in _requirements():
        operators = {spec.operator for spec in requirement.specifier}
        assert "==" not in operators and "~=" not in operators, f"{requirement} pins a version"
        if requirement.name in ("ruff", "mypy"):
            continue  # tools of our own runs only, pinned by the lock
        bound = next((spec for spec in requirement.specifier if spec.operator == ">="), None)
        assert bound is not None, f"{requirement} has no lower bound"
        assert lowest.get(canonicalize_name(requirement.name)) == Version(bound.version), (
            f"constraints-lowest.txt must pin {requirement.name}=={bound.version}, the lower bound"
        )


def test_the_lock_lies_inside_the_ranges_on_this_python() -> None:
    locked = _pins("constraints.txt")
    for requirement in _requirements():
        version = locked.get(canonicalize_name(requirement.name))
        assert version is not None, f"constraints.txt has no pin for {requirement.name}"
        assert requirement.specifier.contains(version), (
            f"constraints.txt pins {version}: outside {requirement}"
        )


def test_the_app_requirements_are_ranges_too() -> None:
    # The app deploys to any supported Python: azure-functions 2.x on 3.13, 1.x before it.
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            assert "==" not in text, f"requirements.txt pins {text}"
