"""mypy --strict accepts correct declarations and rejects each mistake it should catch."""

from __future__ import annotations

import re
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
