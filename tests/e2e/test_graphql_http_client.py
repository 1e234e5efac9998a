"""graphql-http's own client (``tests/node/graphql-http-client.mjs``), with its defaults,
runs queries and mutations against GraphqlHttpConsumer on the uvicorn test server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.test_multipart_clients import http_url
from tests.e2e.test_node_clients import CLIENT_TIMEOUT, NPM_INSTALL_TIMEOUT, run_node_script
from tests.e2e.test_node_clients import node as node  # the fixture

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningServer

pytestmark = [
    pytest.mark.node,
    pytest.mark.slow,
    pytest.mark.timeout(NPM_INSTALL_TIMEOUT + 2 * CLIENT_TIMEOUT),
]


def test_graphql_http_client(node: str, uvicorn_server: RunningServer) -> None:
    result = run_node_script(
        node, "graphql-http-client.mjs", [http_url(uvicorn_server)], uvicorn_server.output
    )
    assert result["query"] == {"result": {"data": {"hello": "Hello, world!"}}}
    assert result["mutation"] == {"result": {"data": {"echo": "hi"}}}
    # The client asks for application/graphql-response+json: a document that does not
    # validate is a 400 without data, which the client reports as a network error.
    invalid = result["invalid"]
    assert invalid["status"] == 400
    assert "data" not in invalid["body"]
    assert "Cannot query field 'nope'" in invalid["body"]["errors"][0]["message"]
