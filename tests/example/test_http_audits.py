"""graphql-http's own server audits (npm ``graphql-http``, GraphQL over HTTP
conformance) against the chat example's ``/graphql/`` under uvicorn: the library's
``ChatHttpConsumer``, behind the example's middleware and origin policy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.test_node_clients import CLIENT_TIMEOUT, NPM_INSTALL_TIMEOUT, run_node_script
from tests.e2e.test_node_clients import node as node  # the fixture

if TYPE_CHECKING:
    from tests.example.conftest import ChatServer

pytestmark = [
    pytest.mark.node,
    pytest.mark.slow,
    pytest.mark.timeout(NPM_INSTALL_TIMEOUT + 2 * CLIENT_TIMEOUT),
]


def test_every_audit_passes_against_the_example(node: str, chat_server: ChatServer) -> None:
    results = run_node_script(
        node, "graphql-http-audit.mjs", [chat_server.url("/graphql/")], chat_server.output
    )
    assert len(results) > 50
    # The MUSTs, and the SHOULDs and MAYs too.
    assert {r["id"]: r["name"] for r in results if r["status"] != "ok"} == {}
