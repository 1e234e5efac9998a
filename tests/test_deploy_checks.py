"""``manage.py check --deploy`` reports each configuration under which notifications go
missing or one client can exhaust the server, and nothing for a sound deployment.

Each test runs Django's ``check --deploy`` command in a fresh process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
EXAMPLE: Final = ROOT / "examples" / "chat"


def check_deploy(settings_module: str, cwd: Path = ROOT, **environment: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "django", "check", "--deploy"],
        cwd=cwd,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module,
            "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)]),
            **environment,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Warnings do not fail the command; anything else would.
    assert completed.returncode == 0, completed.stderr
    return completed.stdout + completed.stderr


def our_messages(output: str) -> list[str]:
    return re.findall(r"^(.*?\(channels_graphql_typed\.W\d+\).*)$", output, re.MULTILINE)


def ids(output: str) -> list[str]:
    return re.findall(r"\((channels_graphql_typed\.W\d+)\)", output)


def test_a_misconfigured_deployment_gets_every_warning() -> None:
    output = check_deploy("tests.deploy_checks.misconfigured")
    assert sorted(ids(output)) == [
        "channels_graphql_typed.W002",
        "channels_graphql_typed.W003",
        "channels_graphql_typed.W003",
        "channels_graphql_typed.W003",
        "channels_graphql_typed.W004",
        "channels_graphql_typed.W005",
    ], output
    messages = "\n".join(our_messages(output))
    assert "CHANNEL_LAYERS['default'] is the in-memory layer while DEBUG is off" in messages
    # The core layer's hosts with 3 s and 5 s timeouts, and the one that leaves redis-py's
    # default (5 s since redis-py 8); not the one with 30 s.
    assert "sets socket_timeout=3 on host 1 of 4" in messages
    assert "sets socket_timeout=5 on host 2 of 4" in messages
    assert "leaves socket_timeout=5 (redis-py's default) on host 4 of 4" in messages
    assert "socket_timeout=30" not in messages
    assert "OpenToEveryOriginConsumer accepts WebSocket handshakes from every origin" in messages
    assert "UnboundedConsumer disables max_query_depth, max_result_size" in messages
    assert "BaseWithoutSchema" not in output  # no schema: not served, not reported
    assert "ServedConsumer" not in output
    # Each warning comes with its fix.
    assert output.count("HINT:") >= 5


def test_a_sound_deployment_gets_none() -> None:
    assert ids(check_deploy("tests.deploy_checks.well_configured")) == []


def test_every_origin_through_allowed_hosts_is_reported_too() -> None:
    output = check_deploy(
        "tests.deploy_checks.allowed_hosts_wildcard",
    )
    assert ids(output) == ["channels_graphql_typed.W004"], output
    assert "('*' in ALLOWED_HOSTS)" in output


def test_the_chat_examples_production_settings_get_none() -> None:
    output = check_deploy(
        "chat.settings",
        cwd=EXAMPLE,
        CHAT_DEBUG="0",
        REDIS_URL="redis://127.0.0.1:6379/0",
        CHAT_SECRET_KEY="a-production-secret-" + "x" * 40,
    )
    assert ids(output) == [], output


def test_the_chat_example_on_the_in_memory_layer_with_debug_off_is_warned() -> None:
    environment = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    completed = subprocess.run(
        [sys.executable, "-m", "django", "check", "--deploy"],
        cwd=EXAMPLE,
        env={
            **environment,
            "DJANGO_SETTINGS_MODULE": "chat.settings",
            "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT)]),
            "CHAT_DEBUG": "0",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert ids(completed.stdout + completed.stderr) == ["channels_graphql_typed.W002"]
