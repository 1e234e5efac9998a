"""GraphqlWsTransportAiohttp on its own: what only a real socket has."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import aiohttp
import pytest

import channels_graphql_typed as cgt
from channels_graphql_typed._client.aiohttp import cookie_header
from tests.client.conftest import HOST

if TYPE_CHECKING:
    from tests.client.conftest import UvicornServer


async def test_a_given_session_is_used_and_left_open(uvicorn_server: UvicornServer) -> None:
    async with aiohttp.ClientSession() as session:
        transport = cgt.GraphqlWsTransportAiohttp(uvicorn_server.url("/graphql/"), session=session)
        async with cgt.GraphqlWsClient(transport) as client:
            assert (await client.execute("{ hello }")).data == {"hello": "Hello, world!"}
        assert not session.closed


async def test_connection_refused_raises_connection_closed_1006() -> None:
    with socket.socket() as unused:
        unused.bind((HOST, 0))  # bound, never listening: connections are refused
        url = f"ws://{HOST}:{unused.getsockname()[1]}/graphql/"
        client = cgt.GraphqlWsClient(cgt.GraphqlWsTransportAiohttp(url))
        with pytest.raises(cgt.GraphqlWsConnectionClosed, match="Cannot connect") as raised:
            await client.connect_and_init()
    assert raised.value.code == 1006
    assert isinstance(raised.value.__cause__, aiohttp.ClientError)


def test_cookies_join_the_cookie_header() -> None:
    assert cookie_header({"sessionid": "abc", "theme": "dark mode"}) == (
        'sessionid=abc; theme="dark mode"'
    )
    transport = cgt.GraphqlWsTransportAiohttp(
        "ws://example.invalid/", headers={"Cookie": "a=1"}, cookies={"b": "2"}
    )
    assert transport.headers == {"Cookie": "a=1; b=2"}


async def test_the_transport_reconnects_only_once_closed(uvicorn_server: UvicornServer) -> None:
    transport = cgt.GraphqlWsTransportAiohttp(uvicorn_server.url("/graphql/"))
    await transport.connect(cgt.GRAPHQL_TRANSPORT_WS)
    assert transport.subprotocol == cgt.GRAPHQL_TRANSPORT_WS
    with pytest.raises(RuntimeError, match="close it before connecting again"):
        await transport.connect(cgt.GRAPHQL_TRANSPORT_WS)
    await transport.close()
    await transport.close()  # idempotent
    with pytest.raises(cgt.GraphqlWsConnectionClosed):
        await transport.receive()
    # A new socket, as the client reconnects.
    await transport.connect(cgt.GRAPHQL_TRANSPORT_WS)
    await transport.send('{"type": "connection_init"}')
    assert await transport.receive() == '{"type":"connection_ack"}'
    await transport.close()
