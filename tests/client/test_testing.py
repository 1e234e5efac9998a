"""channels_graphql_typed.testing: the in-process transport and the pytest helper."""

from __future__ import annotations

import asyncio

import pytest

import channels_graphql_typed as cgt
from channels_graphql_typed.testing import GraphqlWsTransportCommunicator, graphql_ws_client
from tests.consumers import HookConsumer, SchemaConsumer

schema_app = SchemaConsumer.as_asgi()
hooks_app = HookConsumer.as_asgi()


async def test_graphql_ws_client_yields_an_initialised_client(subprotocol: str) -> None:
    async with graphql_ws_client(
        hooks_app, "/hooks/", subprotocol=subprotocol, connection_params={"token": "secret"}
    ) as client:
        assert client.subprotocol == subprotocol
        assert client.ack_payload == {"welcome": True}
        result = await client.execute('{ connectionParam(key: "token") }')
    assert result.data == {"connectionParam": "secret"}


async def test_leaving_the_client_disconnects_the_application(subprotocol: str) -> None:
    HookConsumer.disconnects.clear()
    transport = GraphqlWsTransportCommunicator(hooks_app, "/hooks/")
    async with cgt.GraphqlWsClient(
        transport, subprotocol=subprotocol, connection_params={"token": "secret"}
    ):
        assert not transport.communicator.future.done()
    # The consumer got the disconnect, cleaned up and returned.
    assert transport.communicator.future.done()
    assert HookConsumer.disconnects == [1000]


async def test_a_cancelled_receive_loses_nothing_and_keeps_the_application() -> None:
    """receive_output(timeout) would have cancelled the application here."""
    transport = GraphqlWsTransportCommunicator(schema_app)
    await transport.connect(cgt.GRAPHQL_TRANSPORT_WS)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(transport.receive(), 0.01)
    assert not transport.communicator.future.done()
    await transport.send('{"type": "connection_init"}')
    assert await transport.receive() == '{"type":"connection_ack"}'
    await transport.close()
    assert transport.communicator.future.done()
    with pytest.raises(cgt.GraphqlWsConnectionClosed):
        await transport.receive()
    await transport.close()  # idempotent


async def test_the_preset_subprotocol_is_the_clients_default() -> None:
    transport = GraphqlWsTransportCommunicator(schema_app, subprotocol=cgt.GRAPHQL_WS)
    async with cgt.GraphqlWsClient(transport) as client:
        assert client.subprotocol == cgt.GRAPHQL_WS
        assert (await client.execute("{ hello }")).data == {"hello": "Hello, world!"}


async def test_server_close_is_reported_then_the_application_disconnected() -> None:
    transport = GraphqlWsTransportCommunicator(schema_app)
    await transport.connect(cgt.GRAPHQL_TRANSPORT_WS)
    await transport.send("not json")
    with pytest.raises(cgt.GraphqlWsConnectionClosed) as raised:
        await transport.receive()
    assert raised.value.code == cgt.CloseCode.BAD_REQUEST
    with pytest.raises(cgt.GraphqlWsConnectionClosed):
        await transport.send("{}")
    await transport.close()
    assert transport.communicator.future.done()


def test_the_former_name_of_the_transport_still_imports() -> None:
    from channels_graphql_typed import testing

    assert testing.GraphqlWsTransport is GraphqlWsTransportCommunicator
    assert GraphqlWsTransportCommunicator.__name__ != cgt.GraphqlWsTransport.__name__
