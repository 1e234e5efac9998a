"""GraphqlWsConsumer.as_route: the route URLRouter takes, the same as path(..., as_asgi())."""

from __future__ import annotations

from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import URLPattern

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS
from tests.consumers import SchemaConsumer
from tests.helpers import WsSession


def test_as_route_is_a_django_path_to_the_consumer() -> None:
    route = SchemaConsumer.as_route("graphql/", name="graphql")
    assert isinstance(route, URLPattern)
    assert route.name == "graphql"
    assert route.pattern.match("graphql/")
    assert getattr(route.callback, "consumer_class", None) is SchemaConsumer


async def test_a_routed_consumer_serves() -> None:
    router = URLRouter([SchemaConsumer.as_route("api/graphql/")])
    communicator = WebsocketCommunicator(
        router, "/api/graphql/", subprotocols=[GRAPHQL_TRANSPORT_WS]
    )
    connected, _ = await communicator.connect()
    assert connected
    session = WsSession(communicator, GRAPHQL_TRANSPORT_WS)
    assert (await session.init())["type"] == "connection_ack"
    assert await session.query("1", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await session.close()
