"""A subscription's confirmation, asked for by the client in its ``extensions``, for that
operation only; the consumer-wide ``confirm_subscriptions`` is off."""

from __future__ import annotations

from typing import Any

import pytest

import channels_graphql_typed as cgt
from channels_graphql_typed.testing import graphql_ws_client
from tests.helpers import WsSession
from tests.subscriptions import ChatEvent, OnNewChatMessage, TypedConsumer

app = TypedConsumer.as_asgi()

CHAT = "subscription($room: String!) { onNewChatMessage(chatroom: $room) { text } }"
ASK_KEY = cgt.CONFIRM_SUBSCRIPTION_EXTENSION
ASK: dict[str, Any] = {ASK_KEY: True}


def event(text: str) -> ChatEvent:
    return ChatEvent(chatroom="kittens", text=text, sender="alice", sender_channel="elsewhere")


def test_the_key_is_namespaced() -> None:
    assert cgt.CONFIRM_SUBSCRIPTION_EXTENSION == "channels_graphql_typed.confirm"


async def test_only_the_operation_that_asks_is_confirmed(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    await session.send(
        {
            "type": session.start_type,
            "id": "asks",
            "payload": {"query": CHAT, "variables": {"room": "kittens"}, "extensions": ASK},
        }
    )
    assert await session.result("asks") == {"data": None}
    await session.start("plain", CHAT, {"room": "kittens"})
    assert await session.nothing(0.2)
    await OnNewChatMessage.broadcast(payload=event("meow"), group="kittens")
    results = {}
    for _ in range(2):
        message = await session.receive()
        results[message["id"]] = message["payload"]
    expected = {"data": {"onNewChatMessage": {"text": "meow"}}}
    assert results == {"asks": expected, "plain": expected}
    await session.close()


@pytest.mark.parametrize("value", [False, "true", 1, None])
async def test_only_true_asks(subprotocol: str, value: object) -> None:
    session = await WsSession.open(app, subprotocol)
    payload = {"query": CHAT, "variables": {"room": "kittens"}, "extensions": {ASK_KEY: value}}
    await session.send({"type": session.start_type, "id": "s", "payload": payload})
    assert await session.nothing(0.2)
    await session.close()


async def test_the_client_waits_for_the_confirmation_and_does_not_yield_it(
    subprotocol: str,
) -> None:
    async with (
        graphql_ws_client(app, subprotocol=subprotocol) as client,
        client.subscribe(CHAT, {"room": "kittens"}, confirm=True) as stream,
    ):
        assert stream.payload.get("extensions") == ASK
        assert not stream.confirmed
        await stream.wait_confirmed()
        assert stream.confirmed
        await stream.wait_confirmed()  # once confirmed, returns at once
        await OnNewChatMessage.broadcast(payload=event("first"), group="kittens")
        result = await anext(stream)
        assert result.data == {"onNewChatMessage": {"text": "first"}}


async def test_iterating_takes_the_confirmation_too(subprotocol: str) -> None:
    async with (
        graphql_ws_client(app, subprotocol=subprotocol) as client,
        client.subscribe(
            CHAT, {"room": "kittens"}, extensions={"other": 1}, confirm=True
        ) as stream,
    ):
        assert stream.payload.get("extensions") == {"other": 1, **ASK}
        await stream.wait_confirmed()
        await OnNewChatMessage.broadcast(payload=event("hello"), group="kittens")
        assert (await anext(stream)).data == {"onNewChatMessage": {"text": "hello"}}


async def test_a_refused_subscription_raises_instead_of_confirming(subprotocol: str) -> None:
    async with (
        graphql_ws_client(app, subprotocol=subprotocol) as client,
        client.subscribe("subscription { onPrivate { value } }", confirm=True) as stream,
    ):
        with pytest.raises(cgt.GraphqlWsResponseError, match="You must be logged in"):
            await stream.wait_confirmed()
        assert not stream.confirmed


async def test_waiting_without_asking_is_a_mistake() -> None:
    async with (
        graphql_ws_client(app) as client,
        client.subscribe(CHAT, {"room": "kittens"}) as stream,
    ):
        with pytest.raises(RuntimeError, match="confirm=True"):
            await stream.wait_confirmed()
