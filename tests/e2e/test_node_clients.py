"""Interop with the real Node.js clients: ``graphql-ws`` and ``subscriptions-transport-ws``.

The scripts in ``tests/node`` connect to the uvicorn test server, run a query, a
mutation and a subscription, connect to ``/hooks/`` with a good and a bad token, and
print what they saw as one JSON document. Without Node.js and npm these tests skip,
except on CI (``CI=true``), where they fail: CI always has Node.js.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import TYPE_CHECKING, Any, Final

import pytest

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, CloseCode
from tests.e2e.conftest import ROOT
from tests.processes import npm_install

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.e2e.conftest import RunningServer

NODE_DIR: Final = ROOT / "tests" / "node"
NPM_INSTALL_TIMEOUT: Final = 300.0
CLIENT_TIMEOUT: Final = 30.0

pytestmark = [
    pytest.mark.node,
    pytest.mark.slow,
    # The first test may install the Node packages, which can take a while.
    pytest.mark.timeout(NPM_INSTALL_TIMEOUT + 2 * CLIENT_TIMEOUT),
]


def require_node_and_npm() -> str:
    """The path of ``node``; skip (fail on CI) when ``node`` or ``npm`` is missing."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    missing = [name for name, path in (("node", node), ("npm", npm)) if path is None]
    if node is None or missing:
        reason = f"{' and '.join(missing)} not found on PATH"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}, but CI=true and CI must run the Node.js interop tests")
        pytest.skip(f"{reason}: the Node.js client interop tests need Node.js and npm")
    return node


def node_packages_installed() -> bool:
    package = json.loads((NODE_DIR / "package.json").read_text(encoding="utf-8"))
    return all(
        (NODE_DIR / "node_modules" / name / "package.json").is_file()
        for name in package["dependencies"]
    )


@pytest.fixture(scope="session")
def node() -> str:
    """``node``, with the packages of ``tests/node`` installed (once per session)."""
    executable = require_node_and_npm()
    if not node_packages_installed():
        npm = shutil.which("npm")
        assert npm is not None
        npm_install(npm, NODE_DIR, installed=node_packages_installed, timeout=NPM_INSTALL_TIMEOUT)
    return executable


def run_node_script(
    node: str, script: str, arguments: list[str], server_output: Callable[[], str]
) -> Any:
    """Run the Node script ``script`` of ``tests/node`` with ``arguments`` (URLs); the JSON
    document it printed. A failure shows the script's and the server's output."""
    try:
        completed = subprocess.run(
            [node, str(NODE_DIR / script), *arguments],
            cwd=NODE_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{script} did not finish within {CLIENT_TIMEOUT} s; its output: {exc.output!r}\n"
            f"server output:\n{server_output()}"
        )
    if completed.returncode != 0:
        pytest.fail(
            f"{script} exited with {completed.returncode}:\n"
            f"{completed.stdout}\n{completed.stderr}\nserver output:\n{server_output()}"
        )
    return json.loads(completed.stdout)


def run_client(node: str, script: str, server: RunningServer) -> dict[str, Any]:
    """Run one client script against ``server``; return the JSON document it printed."""
    result: dict[str, Any] = run_node_script(node, script, [server.url("")], server.output)
    return result


HELLO: Final = [{"data": {"hello": "Hello, world!"}}]


@pytest.mark.parametrize(
    ("script", "subprotocol", "rejection"),
    [
        pytest.param(
            "graphql-ws-client.mjs",
            GRAPHQL_TRANSPORT_WS,
            # graphql-transport-ws has no rejection message: the close reason says why.
            {"code": CloseCode.FORBIDDEN, "reason": "Bad token"},
            id="graphql-ws",
        ),
        pytest.param(
            "subscriptions-transport-ws-client.mjs",
            GRAPHQL_WS,
            # The connection_error payload, as the client's connectionCallback gets it.
            {"message": "Bad token"},
            id="subscriptions-transport-ws",
        ),
    ],
)
def test_node_client(
    node: str,
    uvicorn_server: RunningServer,
    script: str,
    subprotocol: str,
    rejection: dict[str, Any],
) -> None:
    result = run_client(node, script, uvicorn_server)
    assert result == {
        "subprotocol": subprotocol,
        "query": HELLO,
        "mutation": [{"data": {"echo": "hi"}}],
        "subscription": [{"data": {"count": number}} for number in (1, 2, 3)],
        "hooks": {"ack": {"welcome": True}, "query": HELLO},
        "rejected": rejection,
    }
