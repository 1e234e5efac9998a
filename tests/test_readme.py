"""Every Python sample in the README is an excerpt of a file that mypy and the tests check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SAMPLE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def readme_samples() -> list[str]:
    return SAMPLE.findall((ROOT / "README.md").read_text())


def test_the_readme_has_samples() -> None:
    assert len(readme_samples()) >= 1


@pytest.mark.parametrize("sample", readme_samples(), ids=lambda sample: sample.split("\n")[0])
def test_sample_is_quoted_from_a_checked_example(sample: str) -> None:
    sources = [path.read_text() for path in (ROOT / "examples").rglob("*.py")]
    assert any(sample in source for source in sources), (
        "this README sample is not an excerpt of any file under examples/"
    )
