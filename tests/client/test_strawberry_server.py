"""The client against a server that is not ours: Strawberry's own Channels consumer
(``strawberry.channels.GraphQLWSConsumer``), behind uvicorn and in-process."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import channels_graphql_typed as cgt
from channels_graphql_typed.testing import GraphqlWsTransportCommunicator
from tests.client.conftest import serve
from tests.client.routing import strawberry_application

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture(params=["in-process", "aiohttp"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[cgt.GraphqlWsTransport]:
    """A transport to Strawberry's consumer at /graphql/, once per transport kind."""
    if request.param == "in-process":
        yield GraphqlWsTransportCommunicator(strawberry_application, "/graphql/")
        return
    async with serve(strawberry_application) as server:
        yield cgt.GraphqlWsTransportAiohttp(server.url("/graphql/"))


async def test_query(transport: cgt.GraphqlWsTransport) -> None:
    async with cgt.GraphqlWsClient(transport, subprotocol=cgt.GRAPHQL_TRANSPORT_WS) as client:
        result = await client.execute(
            "query Q($name: String!) { hello(name: $name) }", {"name": "strawberry"}
        )
        assert result.data == {"hello": "Hello, strawberry!"}
        partial = await client.execute("{ hello fail }")
        assert partial.data == {"hello": "Hello, world!", "fail": None}
        assert partial.errors is not None
        assert partial.errors[0]["message"] == "resolver failed on purpose"


async def test_legacy_query_error_is_raised(transport: cgt.GraphqlWsTransport) -> None:
    # Strawberry runs only subscriptions over graphql-ws: its error ends the operation.
    async with cgt.GraphqlWsClient(transport, subprotocol=cgt.GRAPHQL_WS) as client:
        with pytest.raises(cgt.GraphqlWsResponseError, match="queries are not allowed"):
            await client.execute("{ hello }")
        # One error object as the payload, as the legacy spec has it.
        async with client.subscribe("subscription { noSuchField }") as stream:
            with pytest.raises(cgt.GraphqlWsResponseError, match="noSuchField") as raised:
                await anext(stream)
        assert len(raised.value.errors) == 1


async def test_subscription(transport: cgt.GraphqlWsTransport, subprotocol: str) -> None:
    async with (
        cgt.GraphqlWsClient(transport, subprotocol=subprotocol) as client,
        client.subscribe("subscription { count(to: 3) }") as stream,
    ):
        assert [result.data async for result in stream] == [{"count": n} for n in (1, 2, 3)]


async def test_leaving_a_subscription_early(
    transport: cgt.GraphqlWsTransport, subprotocol: str
) -> None:
    async with cgt.GraphqlWsClient(transport, subprotocol=subprotocol) as client:
        for _ in range(2):
            query = "subscription { count(to: 1000, delay: 0.01) }"
            async with client.subscribe(query) as stream:
                assert (await anext(stream)).data == {"count": 1}
            assert stream.ended
        with pytest.raises(cgt.GraphqlWsResponseError, match="noSuchField"):
            await client.execute("subscription { noSuchField }")
