"""GraphqlWsClient against this library's consumer: every test runs on both transports
(in-process communicator, aiohttp to uvicorn) and, where it applies, both subprotocols."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest

import channels_graphql_typed as cgt
from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, CloseCode
from tests.client.conftest import eventually
from tests.client.routing import DISCONNECT_CODES
from tests.consumers import HookConsumer
from tests.subscriptions import UNSUBSCRIBED, ChatEvent, OnNewChatMessage

if TYPE_CHECKING:
    from tests.client.conftest import Connector

CHAT = "subscription($room: String!) { onNewChatMessage(chatroom: $room) { text sender } }"


def chat_event(text: str, room: str) -> ChatEvent:
    return ChatEvent(chatroom=room, text=text, sender="alice", sender_channel="elsewhere")


def reader_tasks() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == "graphql-ws-client-reader" and not task.done()
    ]


# --- operations ------------------------------------------------------------------------------


async def test_query_returns_a_typed_result(connector: Connector, subprotocol: str) -> None:
    async with connector.client("/graphql/", subprotocol) as client:
        assert client.subprotocol == subprotocol
        assert client.transport.subprotocol == subprotocol
        result = await client.execute(
            "query Q($name: String!) { hello(name: $name) }", variables={"name": "you"}
        )
    assert isinstance(result, cgt.GraphqlWsResult)
    assert result.data == {"hello": "Hello, you!"}
    assert result.errors is None


async def test_operation_name_selects_the_operation(connector: Connector, subprotocol: str) -> None:
    async with connector.client("/graphql/", subprotocol) as client:
        result = await client.execute(
            'query A { hello } query B { hello(name: "B") }', operation_name="B"
        )
    assert result.data == {"hello": "Hello, B!"}


async def test_mutation(connector: Connector, subprotocol: str) -> None:
    async with connector.client("/graphql/", subprotocol) as client:
        result = await client.execute('mutation { echo(text: "hi") }')
    assert result.data == {"echo": "hi"}


async def test_subscription_yields_results_in_order_and_ends_on_complete(
    connector: Connector, subprotocol: str
) -> None:
    async with (
        connector.client("/graphql/", subprotocol) as client,
        client.subscribe("subscription { count(to: 5) }") as stream,
    ):
        results = [result async for result in stream]
        assert stream.ended
    assert [result.data for result in results] == [{"count": n} for n in range(1, 6)]
    assert all(result.errors is None for result in results)


async def test_validation_error_raises_response_error(
    connector: Connector, subprotocol: str
) -> None:
    async with connector.client("/graphql/", subprotocol) as client:
        with pytest.raises(cgt.GraphqlWsResponseError) as raised:
            await client.execute("{ noSuchField otherMissing }")
        assert len(raised.value.errors) == 2
        assert "noSuchField" in raised.value.errors[0]["message"]
        assert "noSuchField" in str(raised.value)
        # The error ended the operation and the connection goes on.
        assert (await client.execute("{ hello }")).data == {"hello": "Hello, world!"}


async def test_variable_error_raises_response_error_with_the_result(
    connector: Connector, subprotocol: str
) -> None:
    async with connector.client("/graphql/", subprotocol) as client:
        with pytest.raises(cgt.GraphqlWsResponseError) as raised:
            await client.execute("query Q($n: String!) { hello(name: $n) }", {"n": 5})
    assert "$n" in raised.value.errors[0]["message"]
    assert raised.value.result is not None
    assert raised.value.result.data is None


async def test_resolver_error_returns_errors_with_partial_data(
    connector: Connector, subprotocol: str
) -> None:
    async with connector.client("/graphql/", subprotocol) as client:
        result = await client.execute("{ hello fail }")
    assert result.data == {"hello": "Hello, world!", "fail": None}
    assert result.errors is not None
    assert result.errors[0]["message"] == "resolver failed on purpose"
    assert result.errors[0]["path"] == ["fail"]


async def test_subscription_error_message_ends_the_stream(
    connector: Connector, subprotocol: str
) -> None:
    async with (
        connector.client("/graphql/", subprotocol) as client,
        client.subscribe("subscription { noSuchField }") as stream,
    ):
        with pytest.raises(cgt.GraphqlWsResponseError, match="noSuchField"):
            await anext(stream)
        assert stream.ended
        with pytest.raises(StopAsyncIteration):
            await anext(stream)


async def test_concurrent_operations_share_one_connection(
    connector: Connector, subprotocol: str
) -> None:
    finished: list[str] = []

    async def run(name: str, query: str) -> cgt.GraphqlWsResult:
        result = await client.execute(query)
        finished.append(name)
        return result

    async def events() -> list[object]:
        async with client.subscribe("subscription { count(to: 3, delay: 0.01) }") as stream:
            return [result.data async for result in stream]

    async with connector.client("/graphql/", subprotocol) as client:
        slow, fast, echo, counted = await asyncio.gather(
            run("slow", "{ asyncSleep(seconds: 0.2) }"),
            run("fast", "{ hello }"),
            run("echo", 'mutation { echo(text: "x") }'),
            events(),
        )
    assert slow.data == {"asyncSleep": 0.2}
    assert fast.data == {"hello": "Hello, world!"}
    assert echo.data == {"echo": "x"}
    assert counted == [{"count": 1}, {"count": 2}, {"count": 3}]
    assert finished[-1] == "slow"  # the slow query held up nobody


# --- subscriptions: who ends them ------------------------------------------------------------


async def test_leaving_the_subscribe_block_stops_the_subscription(
    connector: Connector, subprotocol: str
) -> None:
    room = f"leave-{uuid.uuid4().hex}"
    UNSUBSCRIBED.clear()
    async with connector.client("/typed/", subprotocol) as client:
        async with client.subscribe(CHAT, {"room": room}) as stream:
            confirmation = await anext(stream)
            assert confirmation.data is None  # in its groups from now on
        assert stream.ended
        await eventually(lambda: ("chat", room) in UNSUBSCRIBED)
        # The connection goes on after the stop (and, on graphql-ws, its complete).
        assert (await client.execute("{ hello }")).data == {"hello": "Hello, world!"}


async def test_server_side_unsubscribe_ends_the_stream(
    connector: Connector, subprotocol: str
) -> None:
    room = f"unsubscribe-{uuid.uuid4().hex}"
    async with (
        connector.client("/typed/", subprotocol) as client,
        client.subscribe(CHAT, {"room": room}) as stream,
    ):
        assert (await anext(stream)).data is None  # the confirmation
        await OnNewChatMessage.broadcast(payload=chat_event("first", room), group=room)
        await OnNewChatMessage.broadcast(payload=chat_event("last", room), group=room)
        await OnNewChatMessage.unsubscribe(group=room)
        texts = [result.data and result.data["onNewChatMessage"]["text"] async for result in stream]
        assert texts == ["first", "last"]
        assert stream.ended


# --- keep-alives -----------------------------------------------------------------------------


class RecordingTransport:
    """Wraps a transport and records the frames the client sends."""

    def __init__(self, inner: cgt.GraphqlWsTransport) -> None:
        self.inner = inner
        self.sent: list[str] = []

    @property
    def subprotocol(self) -> str | None:
        return self.inner.subprotocol

    async def connect(self, subprotocol: str) -> None:
        await self.inner.connect(subprotocol)

    async def send(self, text: str) -> None:
        self.sent.append(text)
        await self.inner.send(text)

    async def receive(self) -> str:
        return await self.inner.receive()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.inner.close(code, reason)


class Recorder:
    """Wraps a client's transport (``wrap=recorder.wrap``) and keeps the wrapper."""

    transport: RecordingTransport | None = None

    def wrap(self, transport: cgt.GraphqlWsTransport) -> cgt.GraphqlWsTransport:
        self.transport = RecordingTransport(transport)
        return self.transport

    @property
    def sent(self) -> list[str]:
        assert self.transport is not None
        return self.transport.sent


async def test_server_keepalives_are_counted_and_pings_answered(
    connector: Connector, subprotocol: str
) -> None:
    recorder = Recorder()
    async with connector.client("/ping/", subprotocol, wrap=recorder.wrap) as client:
        await eventually(lambda: client.keepalives_received >= 3)
        assert (await client.execute("{ hello }")).data == {"hello": "Hello, world!"}
    pongs = [text for text in recorder.sent if '"pong"' in text]
    if subprotocol == GRAPHQL_TRANSPORT_WS:
        assert len(pongs) >= 3
        assert pongs[0] == '{"type":"pong"}'
    else:
        assert pongs == []  # ka needs no answer


async def test_client_ping_returns_the_pong_payload(connector: Connector) -> None:
    async with connector.client("/graphql/", GRAPHQL_TRANSPORT_WS) as client:
        assert await client.ping({"n": 1}) == {"n": 1}
        assert await client.ping() is None


async def test_client_ping_is_not_in_the_legacy_protocol(connector: Connector) -> None:
    async with connector.client("/graphql/", GRAPHQL_WS) as client:
        with pytest.raises(ValueError, match="no client ping"):
            await client.ping()


# --- timeouts -----------------------------------------------------------------------------------


async def test_execute_timeout_stops_the_operation_and_the_connection_goes_on(
    connector: Connector, subprotocol: str
) -> None:
    async with connector.client("/graphql/", subprotocol) as client:
        with pytest.raises(cgt.GraphqlWsTimeoutError, match=r"took longer than 0\.05 s"):
            await client.execute("{ asyncSleep(seconds: 5) }", timeout=0.05)
        assert (await client.execute("{ hello }")).data == {"hello": "Hello, world!"}


async def test_client_timeout_applies_to_every_wait(connector: Connector, subprotocol: str) -> None:
    async with connector.client("/graphql/", subprotocol) as client:
        client.timeout = 0.05
        with pytest.raises(TimeoutError):  # GraphqlWsTimeoutError is a TimeoutError
            await client.execute("{ asyncSleep(seconds: 5) }")
        client.timeout = 5


async def test_subscription_event_timeout_keeps_the_subscription(
    connector: Connector, subprotocol: str
) -> None:
    async with (
        connector.client("/graphql/", subprotocol) as client,
        client.subscribe("subscription { count(to: 2, delay: 0.2) }", timeout=0.05) as stream,
    ):
        with pytest.raises(cgt.GraphqlWsTimeoutError):
            await anext(stream)
        assert not stream.ended
        stream.timeout = 5
        assert [result.data async for result in stream] == [{"count": 1}, {"count": 2}]


async def test_acknowledgement_timeout(connector: Connector, subprotocol: str) -> None:
    client = connector.client("/silent/", subprotocol, timeout=0.3)
    with pytest.raises(cgt.GraphqlWsTimeoutError, match="connection_ack"):
        await client.connect_and_init()
    assert client.closed
    assert reader_tasks() == []


# --- close codes -------------------------------------------------------------------------------


async def test_accepted_connection_exposes_the_ack_payload(
    connector: Connector, subprotocol: str
) -> None:
    HookConsumer.disconnects.clear()
    params = {"token": "secret"}
    async with connector.client("/hooks/", subprotocol, connection_params=params) as client:
        assert client.ack_payload == {"welcome": True}
        result = await client.execute('{ connectionParam(key: "token") }')
    assert result.data == {"connectionParam": "secret"}
    # Leaving the client closed the socket: the consumer saw a normal close.
    await eventually(lambda: HookConsumer.disconnects == [CloseCode.NORMAL])


async def test_rejected_connection_raises_connection_closed_4403(
    connector: Connector, subprotocol: str
) -> None:
    client = connector.client("/hooks/", subprotocol, connection_params={"token": "wrong"})
    with pytest.raises(cgt.GraphqlWsConnectionClosed) as raised:
        async with client:
            pytest.fail("the connection was accepted")
    closed = raised.value
    assert closed.code == CloseCode.FORBIDDEN
    if subprotocol == GRAPHQL_TRANSPORT_WS:
        assert closed.reason == "Bad token"
        assert closed.payload is None
    else:
        assert closed.reason == "Forbidden"
        assert closed.payload == {"message": "Bad token"}  # from connection_error
    assert "4403" in str(closed)
    assert client.closed
    assert reader_tasks() == []


async def test_server_close_fails_every_waiting_operation(
    connector: Connector, subprotocol: str
) -> None:
    recorder = Recorder()
    async with connector.client("/graphql/", subprotocol, wrap=recorder.wrap) as client:
        sent = recorder.sent
        async with client.subscribe("subscription { forever }") as stream:
            query = asyncio.create_task(client.execute("{ asyncSleep(seconds: 5) }"))
            await eventually(lambda: "asyncSleep" in sent[-1])  # the query is in flight
            # Make the server close: a frame that is not JSON (4400) on graphql-transport-ws,
            # connection_terminate (1000) on graphql-ws.
            if subprotocol == GRAPHQL_TRANSPORT_WS:
                await client.transport.send("not json")
                code = CloseCode.BAD_REQUEST
            else:
                await client.transport.send('{"type": "connection_terminate"}')
                code = CloseCode.NORMAL
            with pytest.raises(cgt.GraphqlWsConnectionClosed) as from_stream:
                await anext(stream)
            with pytest.raises(cgt.GraphqlWsConnectionClosed) as from_query:
                await query
        assert from_stream.value.code == from_query.value.code == code
        assert client.closed
        assert isinstance(client.close_error, cgt.GraphqlWsConnectionClosed)
        closed = await client.wait_closed()
        assert isinstance(closed, cgt.GraphqlWsConnectionClosed)
        assert closed.code == code
        with pytest.raises(cgt.GraphqlWsConnectionClosed):
            await client.execute("{ hello }")
    assert reader_tasks() == []


async def test_mismatched_subprotocol_is_a_protocol_error(connector: Connector) -> None:
    client = connector.client("/legacy-only/", GRAPHQL_TRANSPORT_WS)
    with pytest.raises(cgt.GraphqlWsProtocolError, match="instead of 'graphql-transport-ws'"):
        await client.connect_and_init()
    assert client.closed


async def test_refused_handshake_raises_connection_closed_1006(connector: Connector) -> None:
    client = connector.client("/refuse/", GRAPHQL_TRANSPORT_WS)
    with pytest.raises(cgt.GraphqlWsConnectionClosed) as raised:
        await client.connect_and_init()
    assert raised.value.code == 1006
    assert "403" in raised.value.reason


# --- lifecycle ----------------------------------------------------------------------------------


async def test_leaving_the_client_closes_the_socket_and_leaks_no_task(
    connector: Connector, subprotocol: str
) -> None:
    async with (
        connector.client("/graphql/", subprotocol) as client,
        client.subscribe("subscription { forever }"),
    ):
        assert len(reader_tasks()) == 1
    assert reader_tasks() == []
    assert client.closed
    with pytest.raises(cgt.GraphqlWsConnectionClosed) as raised:
        await client.execute("{ hello }")
    assert raised.value.code == CloseCode.NORMAL
    await client.finalize()  # idempotent


async def test_client_is_not_usable_before_connecting(connector: Connector) -> None:
    client = connector.client("/graphql/", GRAPHQL_TRANSPORT_WS)
    with pytest.raises(RuntimeError, match="not connected"):
        await client.execute("{ hello }")
    await client.finalize()


async def test_headers_and_cookies_reach_the_server(connector: Connector) -> None:
    transport = connector.transport(
        "/scope/", headers={"X-Custom": "custom value"}, cookies={"sessionid": "abc123"}
    )
    async with cgt.GraphqlWsClient(transport) as client:
        result = await client.execute(
            '{ custom: header(name: "x-custom") cookie: header(name: "cookie") }'
        )
    assert result.data == {"custom": "custom value", "cookie": "sessionid=abc123"}


def test_conflicting_subprotocols_are_refused() -> None:
    transport = cgt.GraphqlWsTransportAiohttp("ws://127.0.0.1:1/", subprotocol=GRAPHQL_WS)
    with pytest.raises(ValueError, match="asked for"):
        cgt.GraphqlWsClient(transport, subprotocol=GRAPHQL_TRANSPORT_WS)
    assert cgt.GraphqlWsClient(transport).subprotocol == GRAPHQL_WS


# --- a server that breaks the protocol ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error"),
    [("garbage", "not valid JSON"), ("binary", "binary frame")],
)
async def test_invalid_server_message_closes_with_4004(
    connector: Connector, subprotocol: str, kind: str, error: str
) -> None:
    DISCONNECT_CODES.clear()
    client = connector.client(f"/misbehaving/{kind}/", subprotocol)
    with pytest.raises(cgt.GraphqlWsProtocolError, match=error):
        await client.connect_and_init()
    assert client.closed
    await eventually(lambda: DISCONNECT_CODES == [4004])  # graphql-ws's "Bad response"


async def test_application_crash_ends_the_connection(
    connector: Connector, subprotocol: str
) -> None:
    client = connector.client("/misbehaving/crash/", subprotocol)
    with pytest.raises(cgt.GraphqlWsConnectionClosed) as raised:
        await client.connect_and_init()
    if connector.kind == "aiohttp":
        assert raised.value.code == 1006  # uvicorn drops the connection: no close frame
    else:
        assert raised.value.code == 1011
        # The testing transport hands the application's exception to the test.
        assert isinstance(raised.value.__cause__, ValueError)
        assert "crashed on purpose" in raised.value.reason
