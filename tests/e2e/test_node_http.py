"""Interop over HTTP with the real Node.js packages: ``graphql-http``'s server audits and
``graphql-sse``'s client, against GraphqlHttpConsumer on the uvicorn test server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.test_node_clients import CLIENT_TIMEOUT, NPM_INSTALL_TIMEOUT, run_node_script
from tests.e2e.test_node_clients import node as node  # the fixture

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningServer

pytestmark = [
    pytest.mark.node,
    pytest.mark.slow,
    pytest.mark.timeout(NPM_INSTALL_TIMEOUT + 2 * CLIENT_TIMEOUT),
]


def run_script(node: str, script: str, server: RunningServer) -> Any:
    url = server.url("/graphql/").replace("ws://", "http://", 1)
    return run_node_script(node, script, [url], server.output)


def test_graphql_http_audits(node: str, uvicorn_server: RunningServer) -> None:
    results = run_script(node, "graphql-http-audit.mjs", uvicorn_server)
    failed = {r["id"]: r["name"] for r in results if r["status"] != "ok"}
    assert len(results) > 50
    # Every audit passes: the MUSTs, and the SHOULDs and MAYs too.
    assert failed == {}


def test_graphql_sse_client(node: str, uvicorn_server: RunningServer) -> None:
    result = run_script(node, "graphql-sse-client.mjs", uvicorn_server)
    tree = {"data": {"onTree": {"label": "oak"}}}
    assert result == {
        "query": [{"data": {"hello": "Hello, world!"}}],
        "subscription": [{"data": None}, tree, tree],
    }


def test_graphql_sse_client_in_single_connection_mode(
    node: str, uvicorn_server: RunningServer
) -> None:
    result = run_script(node, "graphql-sse-single.mjs", uvicorn_server)
    tree = {"data": {"onTree": {"label": "oak"}}}
    assert result == {
        "query": [{"data": {"hello": "Hello, world!"}}],
        "mutation": [{"data": {"broadcastTree": True}}],
        "subscription": [{"data": None}, tree, tree],
        # One reservation and one stream; every operation's POST, the DELETE of the
        # subscription it left before its end.
        "sent": {"PUT stream": 1, "GET stream": 1, "POST stream": 5, "DELETE stream": 1},
        "stopped": [200],
    }
