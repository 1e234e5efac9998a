"""Property-based fuzzing of incoming frames: whatever arrives, the consumer answers per
the protocol, raises nothing, leaks no task, and the next connection is served."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS
from channels_graphql_typed._fanout import get_fanout
from tests.helpers import WsSession
from tests.subscriptions import TypedConsumer

app = TypedConsumer.as_asgi()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
message_types = st.sampled_from(
    [
        "connection_init",
        "connection_ack",
        "ping",
        "pong",
        "subscribe",
        "next",
        "error",
        "complete",
        "start",
        "stop",
        "data",
        "ka",
        "connection_terminate",
        "bogus",
    ]
)
queries = st.sampled_from(
    [
        "{ hello }",
        "{ asyncSleep(seconds: 0.01) }",
        "{ syncSleep(seconds: 0.01) }",
        'subscription { onNewChatMessage(chatroom: "k") { text } }',
        "subscription { count(to: 2) }",
        "{ nope }",
        "{",
    ]
)
payloads = json_values | st.fixed_dictionaries(
    {"query": queries},
    optional={"variables": json_values, "operationName": st.none() | st.text(max_size=5)},
)
shaped_messages = st.fixed_dictionaries(
    {"type": message_types},
    optional={"id": st.sampled_from(["1", "2", ""]) | json_values, "payload": payloads},
).map(json.dumps)
frames = st.one_of(
    shaped_messages,
    json_values.map(json.dumps),
    st.text(max_size=50),
    st.binary(max_size=20),
    st.sampled_from(["[" * 100_000, '{"type": "' + "x" * 200_000 + '"}', "\ud800"]),
)


async def exchange(subprotocol: str, sequence: list[str | bytes]) -> None:
    before = asyncio.all_tasks()
    communicator = WebsocketCommunicator(app, "/graphql/", subprotocols=[subprotocol])
    connected, _ = await communicator.connect()
    assert connected
    closed = False
    for frame in sequence:
        if isinstance(frame, bytes):
            await communicator.send_to(bytes_data=frame or b"\x00")
        else:
            await communicator.send_to(text_data=frame or " ")
        # Drain what the server answers; a close ends the exchange.
        while not await communicator.receive_nothing(0.01):
            output = await communicator.receive_output()
            assert output["type"] in ("websocket.send", "websocket.close"), output
            if output["type"] == "websocket.close":
                assert isinstance(output["code"], int)
                assert output.get("reason")
                closed = True
                break
            if "text" in output:
                answer = json.loads(output["text"])
                assert isinstance(answer, dict)
                assert isinstance(answer.get("type"), str)
        if closed:
            break
    await communicator.disconnect()
    await asyncio.sleep(0)
    leaked = {task for task in asyncio.all_tasks() - before if not task.done()}
    assert not leaked, leaked
    # No subscription is left in the fan-out, nor any of its groups in the channel layer.
    assert get_fanout("default").members == {}
    groups = getattr(get_channel_layer(), "groups", {})
    assert not [name for name in groups if name.startswith("cgt.")]
    # The server still serves a fresh connection.
    session = await WsSession.open(app, subprotocol)
    assert await session.query("ok", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await session.close()


FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(
    st.sampled_from([GRAPHQL_TRANSPORT_WS, GRAPHQL_WS]),
    st.lists(frames, min_size=1, max_size=6),
)
def test_random_frames_never_break_the_server(subprotocol: str, sequence: list[Any]) -> None:
    asyncio.run(exchange(subprotocol, sequence))


@FUZZ
@given(
    st.sampled_from([GRAPHQL_TRANSPORT_WS, GRAPHQL_WS]),
    st.lists(shaped_messages, min_size=1, max_size=8),
)
def test_random_sequences_after_init(subprotocol: str, sequence: list[str]) -> None:
    init = json.dumps({"type": "connection_init"})
    asyncio.run(exchange(subprotocol, [init, *sequence]))
