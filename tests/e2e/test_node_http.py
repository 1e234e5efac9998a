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


def test_incremental_delivery_to_apollo_and_graphql_sse_clients(
    node: str, uvicorn_server: RunningServer
) -> None:
    url = uvicorn_server.url("/incremental/").replace("ws://", "http://", 1)
    result = run_node_script(node, "incremental-clients.mjs", [url], uvicorn_server.output)
    books = [{"id": index, "title": f"Book {index}"} for index in range(3)]
    apollo = result["apollo"]
    # Apollo Client shows the initial payload, then the deferred parts as they come
    # (network status 9: streaming), until the response ends (7: ready).
    deferred = apollo["deferred"]
    assert deferred[0] == {
        "data": {"shelf": "fiction"},
        "dataState": "streaming",
        "networkStatus": 9,
    }
    assert deferred[-1] == {
        "data": {"shelf": "fiction", "books": books},
        "dataState": "complete",
        "networkStatus": 7,
    }
    streamed = apollo["streamed"]
    assert streamed[0]["data"] == {"words": ["word0"]}
    assert len(streamed) >= 2
    assert streamed[-1] == {
        "data": {"words": ["word0", "word1", "word2", "word3"]},
        "dataState": "complete",
        "networkStatus": 7,
    }
    assert {response["contentType"] for response in apollo["responses"]} == {
        "multipart/mixed;boundary=graphql;incrementalSpec=v0.2"
    }
    assert all(
        response["accept"].startswith("multipart/mixed;incrementalSpec=v0.2")
        for response in apollo["responses"]
    )
    for mode in ("distinct", "single"):
        payloads = result["sse"][mode]
        deferred_payloads = payloads["deferred"]
        assert deferred_payloads[0] == {
            "data": {"shelf": "fiction"},
            "pending": [{"id": "0", "path": [], "label": "books"}],
            "hasNext": True,
        }, mode
        assert deferred_payloads[-1]["hasNext"] is False, mode
        assert len(deferred_payloads) >= 3, mode
        streamed_payloads = payloads["streamed"]
        assert streamed_payloads[0]["data"] == {"words": ["word0"]}, mode
        items = [
            item
            for payload in streamed_payloads[1:]
            for entry in payload.get("incremental", [])
            for item in entry["items"]
        ]
        assert items == ["word1", "word2", "word3"], mode
