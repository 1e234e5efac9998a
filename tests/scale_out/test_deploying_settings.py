"""The deploying guide's settings for several processes are the ones the scale-out tests run."""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from tests.redis_support import LAYERS
from tests.scale_out.conftest import RECOMMENDED_SOCKET_TIMEOUT, ROOT

if TYPE_CHECKING:
    import pytest

URL = "redis://127.0.0.1:6379/0"


def readme_settings() -> list[dict[str, Any]]:
    """Each ``CHANNEL_LAYERS`` that the section's settings block assigns, in order."""
    readme = (ROOT / "docs" / "guides" / "deploying.md").read_text()
    section = readme[readme.index("# Deploying on several processes") :]
    match = re.search(r"```\n(.*?)```", section, re.DOTALL)
    assert match is not None
    namespace: dict[str, Any] = {}
    assignments = []
    for statement in ast.parse(match.group(1)).body:
        exec(compile(ast.Module([statement], []), "deploying.md", "exec"), namespace)
        if "CHANNEL_LAYERS" in namespace:
            assignments.append(namespace.pop("CHANNEL_LAYERS"))
    return assignments


def test_the_readme_settings_are_those_of_the_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", URL)
    pubsub, core = readme_settings()
    assert [pubsub["default"]["BACKEND"], core["default"]["BACKEND"]] == list(reversed(LAYERS))
    assert pubsub["default"]["CONFIG"] == {"hosts": [URL]}
    assert core["default"]["CONFIG"] == {
        "hosts": [{"address": URL, "socket_timeout": RECOMMENDED_SOCKET_TIMEOUT}],
    }
    for settings in (pubsub, core):
        layer = import_string(settings["default"]["BACKEND"])(**settings["default"]["CONFIG"])
        assert layer is not None
