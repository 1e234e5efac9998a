"""scripts/lowest_versions.py pins each runtime dependency to the floor pyproject gives."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).parent.parent


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lowest_versions", ROOT / "scripts/lowest_versions.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_runtime_dependency_is_pinned_to_its_floor() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(pin.split("==") for pin in script().floors(ROOT / "pyproject.toml"))
    runtime = [*project["dependencies"], *project["optional-dependencies"]["redis"]]
    runtime += project["optional-dependencies"]["testing"]
    assert len(pins) == len(runtime)
    for requirement in runtime:
        name = requirement.split(">=")[0]
        assert f">={pins[name]}" in requirement


def test_a_dependency_without_a_floor_is_refused(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["django>=5.2", "msgpack"]\n'
        "[project.optional-dependencies]\nredis = []\ntesting = []\n"
    )
    with pytest.raises(SystemExit, match="'msgpack' has no lower bound"):
        script().floors(pyproject)
