"""mypy --strict accepts correct declarations and rejects each mistake it should catch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mypy import api

SAMPLES = Path(__file__).parent / "typing_samples"
MARKER = re.compile(r"#\s*error:\s*([a-z-]+)")
REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], set[str]]:
    """One mypy run over every sample: {(file name, line): {error codes}}."""
    cache = tmp_path_factory.mktemp("mypy-cache")
    stdout, stderr, _ = api.run(
        [
            "--strict",
            "--config-file=",
            f"--cache-dir={cache}",
            "--no-error-summary",
            "--show-error-codes",
            "--hide-error-context",
            *sorted(str(path) for path in SAMPLES.glob("*.py")),
        ]
    )
    assert not stderr, stderr
    errors: dict[tuple[str, int], set[str]] = {}
    for line in stdout.splitlines():
        match = REPORTED.match(line)
        if match:
            key = (Path(match["file"]).name, int(match["line"]))
            errors.setdefault(key, set()).add(match["code"])
        else:
            assert "note:" in line, line
    return errors


def expected_errors(path: Path) -> dict[tuple[str, int], set[str]]:
    expected: dict[tuple[str, int], set[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = MARKER.search(line)
        if match:
            expected[(path.name, number)] = {match[1]}
    return expected


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.py")), ids=lambda path: path.name)
def test_mypy_verdict_per_sample(path: Path, mypy_report: dict[tuple[str, int], set[str]]) -> None:
    reported = {key: codes for key, codes in mypy_report.items() if key[0] == path.name}
    expected = expected_errors(path)
    if path.name.startswith("good_"):
        assert not expected
    else:
        assert expected, "a bad_ sample must mark its errors"
    assert reported == expected


APP = SAMPLES / "typed_app"


def test_a_whole_project_type_checks_with_the_django_plugin(tmp_path: Path) -> None:
    """Settings, models, subscriptions, schema, consumer and routing as a user writes
    them: ``mypy --strict`` with django-stubs, types-channels and the Django plugin."""
    sources = {path.name: path.read_text() for path in APP.glob("*.py")}
    assert {"settings.py", "models.py", "subscriptions.py", "schema.py", "asgi.py"} <= set(sources)
    assert not [name for name, text in sources.items() if "type: ignore" in text]
    config = tmp_path / "mypy.ini"
    config.write_text(
        f"[mypy]\nstrict = True\nwarn_unused_ignores = True\nmypy_path = {SAMPLES}\n"
        "plugins = mypy_django_plugin.main\n\n"
        "[mypy.plugins.django-stubs]\ndjango_settings_module = typed_app.settings\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(SAMPLES)}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            f"--config-file={config}",
            f"--cache-dir={tmp_path / 'cache'}",
            "-p",
            "typed_app",
        ],
        cwd=SAMPLES.parent.parent,  # where the package is, as in a project that uses it
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Success" in completed.stdout
