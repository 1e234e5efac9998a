"""The package as users get it: a wheel and an sdist that build, pass ``twine check``,
hold the library and its ``py.typed`` and nothing else, and work installed, without the
checkout: imported, and type-checked by mypy from the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = Path(__file__).parent / "typing_samples"
PIP_INSTALL = (sys.executable, "-m", "pip", "install", "--quiet", "--no-deps")
MYPY = (
    sys.executable,
    "-m",
    "mypy",
    "--strict",
    "--config-file=",
    "--no-incremental",
    "--show-error-codes",
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def test_wheel_and_sdist_pass_twine_check(dist: Path) -> None:
    files = sorted(str(path) for path in dist.iterdir())
    assert any(name.endswith(".whl") for name in files), files
    assert any(name.endswith(".tar.gz") for name in files), files
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_wheel_holds_the_library_only(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "channels_graphql_typed/py.typed" in names
    assert "channels_graphql_typed/__init__.py" in names
    top = {name.split("/", 1)[0] for name in names}
    assert all(part == "channels_graphql_typed" or part.endswith(".dist-info") for part in top), top


def test_the_installed_wheel_works_without_the_checkout(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [*PIP_INSTALL, "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    work = tmp_path / "work"
    work.mkdir()
    # The dependencies come from this environment; the library only from the wheel
    # (the checkout is neither the working directory nor on any path).
    smoke = (
        "import channels_graphql_typed as cgt, pathlib, sys;"
        f"assert pathlib.Path(cgt.__file__).is_relative_to({str(site)!r}), cgt.__file__;"
        "assert 'GraphqlWsConsumer' in cgt.__all__;"
        "print('ok')"
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", smoke], cwd=work, env=env, capture_output=True, text=True
    )
    assert result.stdout.strip() == "ok", result.stderr
    # mypy sees the installed package (its py.typed), not the checkout.
    for sample in ("good_chat.py", "bad_chat.py"):
        shutil.copy(SAMPLES / sample, work / sample)
    checked = subprocess.run(
        [*MYPY, "good_chat.py", "bad_chat.py"],
        cwd=work,
        env={**env, "MYPYPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = checked.stdout.splitlines()
    assert not any(line.startswith("good_chat.py") for line in lines), checked.stdout
    assert any(line.startswith("bad_chat.py") for line in lines), checked.stdout
    assert "missing library stubs or py.typed" not in checked.stdout
