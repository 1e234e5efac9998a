"""Model subscriptions in an app's ``subscriptions`` module are imported at startup in
every process; the system check warns about one declared where startup cannot see it.

Each test runs a fresh Python process on the project in ``tests/autodiscovery``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
PROJECT: Final = Path(__file__).resolve().parent / "autodiscovery"


def run(code: str) -> str:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "PYTHONPATH": os.pathsep.join([str(PROJECT), str(ROOT)]),
    }
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_a_process_that_never_imports_the_module_still_notifies() -> None:
    output = run(
        """
        import json, sys
        import django
        django.setup()
        from django.db.models.signals import post_delete, post_save
        from project.notes.models import Draft
        print(json.dumps({
            "imported": "project.notes.subscriptions" in sys.modules,
            "save": post_save.has_listeners(Draft),
            "delete": post_delete.has_listeners(Draft),
        }))
        """
    )
    assert json.loads(output) == {"imported": True, "save": True, "delete": True}


def test_the_check_warns_about_a_subscription_that_startup_cannot_see() -> None:
    output = run(
        """
        import json
        import django
        django.setup()
        from django.core import checks
        print(json.dumps([
            {"id": m.id, "msg": m.msg, "hint": m.hint, "obj": m.obj.__qualname__}
            for m in checks.run_checks()
            if m.id.startswith("channels_graphql_typed")
        ]))
        """
    )
    messages = json.loads(output)
    assert [message["obj"] for message in messages] == ["OnNoteEdited"]
    (message,) = messages
    assert message["id"] == "channels_graphql_typed.W001"
    assert "OnNoteEdited is declared in project.schema" in message["msg"]
    assert "saves Note rows without notifying its subscribers" in message["msg"]
    assert "Move it to project/notes/subscriptions.py" in message["hint"]
