"""Real HTTP clients of Apollo's multipart subscriptions against GraphqlHttpConsumer on
the uvicorn test server: Apollo Client 4's ``HttpLink`` from Node
(``tests/node/apollo-http-client.mjs``) and Python's ``gql`` over its aiohttp transport.
Each runs a query, a mutation and a typed subscription that receives the broadcasts of
mutations sent by another client, with the client's defaults.
``tests/scale_out/test_multipart_clients.py`` runs the same on two processes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import pytest
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportQueryError

from tests.e2e.test_node_clients import CLIENT_TIMEOUT, NPM_INSTALL_TIMEOUT, run_node_script
from tests.e2e.test_node_clients import node as node  # the fixture

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.e2e.conftest import RunningServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(NPM_INSTALL_TIMEOUT + 2 * CLIENT_TIMEOUT)]

TREE: Final = "subscription { onTree { label } }"
APOLLO_ACCEPT: Final = (
    "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,"
    "application/graphql-response+json,application/json;q=0.9"
)
MULTIPART: Final = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0"
GRAPHQL_RESPONSE: Final = "application/graphql-response+json; charset=utf-8"
PROBE_WAIT: Final = 0.5
HEARTBEAT_WAIT: Final = 0.5


def http_url(server: RunningServer) -> str:
    return server.url("/graphql/").replace("ws://", "http://", 1)


def run_apollo(node: str, urls: list[str], server_output: Callable[[], str]) -> Any:
    """Run ``apollo-http-client.mjs`` against ``urls`` (the subscription's, then the
    broadcasts')."""
    return run_node_script(node, "apollo-http-client.mjs", urls, server_output)


def check_apollo(result: Any) -> None:
    oak = {"data": {"onTree": {"label": "oak"}}}
    default_accept = "application/graphql-response+json,application/json;q=0.9"
    assert result == {
        "query": {"hello": "Hello, world!"},
        "mutation": {"echo": "hi"},
        # Both broadcasts, sent once the response had started: none passed it by.
        "subscription": {"results": [oak, oak]},
        "refused": {
            "results": [],
            "error": {"message": "Cannot query field 'nope' on type 'Subscription'."},
        },
        "failed": {"results": [], "error": {"message": "negative delays are not allowed"}},
        "responses": [
            # Queries and mutations: plain GraphQL over HTTP.
            {"accept": default_accept, "status": 200, "contentType": GRAPHQL_RESPONSE},
            {"accept": default_accept, "status": 200, "contentType": GRAPHQL_RESPONSE},
            {"accept": APOLLO_ACCEPT, "status": 200, "contentType": MULTIPART},
            {"accept": default_accept, "status": 200, "contentType": GRAPHQL_RESPONSE},
            {"accept": default_accept, "status": 200, "contentType": GRAPHQL_RESPONSE},
            # A document that does not validate: found before anything streams.
            {"accept": APOLLO_ACCEPT, "status": 400, "contentType": GRAPHQL_RESPONSE},
            # A subscribe that fails: the payload's errors, then the end.
            {"accept": APOLLO_ACCEPT, "status": 200, "contentType": MULTIPART},
        ],
    }


async def gql_round(url: str, broadcast_url: str) -> None:
    """gql's aiohttp transport: a query, a mutation, an error, a subscription that
    receives what another client broadcasts through ``broadcast_url``, a subscription
    whose subscribe fails."""
    async with (
        asyncio.timeout(CLIENT_TIMEOUT),
        Client(transport=AIOHTTPTransport(url=url)) as client,
        Client(transport=AIOHTTPTransport(url=broadcast_url)) as other,
    ):
        assert await client.execute(GraphQLRequest("{ hello }")) == {"hello": "Hello, world!"}
        echo = GraphQLRequest('mutation { echo(text: "hi") }')
        assert await client.execute(echo) == {"echo": "hi"}
        with pytest.raises(TransportQueryError, match="Cannot query field 'nope'"):
            await client.execute(GraphQLRequest("{ nope }"))

        received: asyncio.Queue[Any] = asyncio.Queue()

        # --8<-- [start:gql]
        async def listen() -> None:
            async for data in client.subscribe(GraphQLRequest(TREE)):
                await received.put(data["onTree"]["label"])

        # --8<-- [end:gql]

        async def broadcast(label: str) -> None:
            mutation = f'mutation {{ broadcastTree(tree: {{ label: "{label}" }}) }}'
            assert await other.execute(GraphQLRequest(mutation)) == {"broadcastTree": True}

        listener = asyncio.ensure_future(listen())
        try:
            # gql skips a result without data (a confirmation): probes until one arrives
            # say that the subscription is in its groups.
            while True:
                await broadcast("probe")
                with contextlib.suppress(TimeoutError):
                    assert await asyncio.wait_for(received.get(), PROBE_WAIT) == "probe"
                    break
            # Heartbeats (the test server sends them every 0.2 s) in between: ignored.
            await asyncio.sleep(HEARTBEAT_WAIT)
            await broadcast("oak")
            await broadcast("elm")
            labels = [await received.get() for _ in range(2)]
            while labels[0] == "probe":
                labels = [*labels[1:], await received.get()]
            assert labels == ["oak", "elm"]
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        failing = GraphQLRequest("subscription { onSlowPublish(delay: -1) { value } }")
        with pytest.raises(TransportQueryError, match="negative delays are not allowed"):
            async for _ in client.subscribe(failing):
                pass


@pytest.mark.node
def test_apollo_client_http_link(node: str, uvicorn_server: RunningServer) -> None:
    check_apollo(run_apollo(node, [http_url(uvicorn_server)], uvicorn_server.output))


async def test_gql_aiohttp_transport(uvicorn_server: RunningServer) -> None:
    await gql_round(http_url(uvicorn_server), http_url(uvicorn_server))


async def test_the_bytes_on_the_wire(uvicorn_server: RunningServer) -> None:
    """What uvicorn sends: chunked, the opening delimiter at once, heartbeat parts while
    idle, each result part followed by its delimiter."""
    url = http_url(uvicorn_server)
    delimiter = b"\r\n--graphql"
    head = b"\r\nContent-Type: application/json; charset=utf-8\r\n\r\n"
    async with (
        asyncio.timeout(CLIENT_TIMEOUT),
        aiohttp.ClientSession() as http,
        http.post(
            url, json={"query": TREE}, headers={"accept": 'multipart/mixed;subscriptionSpec="1.0"'}
        ) as response,
    ):
        assert response.status == 200
        assert response.headers["content-type"] == MULTIPART
        assert response.headers["transfer-encoding"] == "chunked"
        received = b""
        while received.count(delimiter) < 3:
            received += await response.content.readany()
        # The opening delimiter, then heartbeats: nothing happens yet.
        assert received.startswith(delimiter + head + b"{}" + delimiter + head + b"{}")
        mutation = {"query": 'mutation { broadcastTree(tree: { label: "oak" }) }'}
        async with http.post(url, json=mutation) as broadcast:
            assert await broadcast.json() == {"data": {"broadcastTree": True}}
        part = head + b'{"payload":{"data":{"onTree":{"label":"oak"}}}}' + delimiter
        while part not in received:
            received += await response.content.readany()
