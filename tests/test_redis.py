"""Typed subscriptions on both channels-redis layers against a real Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from channels.layers import channel_layers

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS
from tests.helpers import WsSession
from tests.redis_support import LAYERS, layer_settings, require_redis
from tests.subscriptions import ChatEvent, ConfirmingConsumer, OnNewChatMessage

if TYPE_CHECKING:
    from collections.abc import Iterator

app = ConfirmingConsumer.as_asgi()
CHAT = 'subscription { onNewChatMessage(chatroom: "redis") { text } }'


@pytest.fixture(params=LAYERS, ids=lambda backend: backend.rsplit(".", 1)[-1])
def redis_layer(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    require_redis()
    settings.CHANNEL_LAYERS = layer_settings(request.param)
    channel_layers.backends.clear()
    yield request.param
    channel_layers.backends.clear()


def event(text: str) -> ChatEvent:
    return ChatEvent(chatroom="redis", text=text, sender="a", sender_channel="elsewhere")


async def test_resubscribing_after_the_last_subscription_ended(redis_layer: str) -> None:
    for round_ in range(3):
        session = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
        await session.start("s", CHAT)
        assert await session.result("s") == {"data": None}
        await OnNewChatMessage.broadcast(payload=event(f"round {round_}"), group="redis")
        assert await session.result("s") == {
            "data": {"onNewChatMessage": {"text": f"round {round_}"}}
        }
        await session.close()


async def test_order_and_unsubscribe(redis_layer: str) -> None:
    sessions = [await WsSession.open(app, GRAPHQL_TRANSPORT_WS) for _ in range(3)]
    for session in sessions:
        await session.start("s", CHAT)
        assert await session.result("s") == {"data": None}
    for number in range(50):
        await OnNewChatMessage.broadcast(payload=event(str(number)), group="redis")
    await OnNewChatMessage.unsubscribe(group="redis")
    for session in sessions:
        for number in range(50):
            assert await session.result("s") == {
                "data": {"onNewChatMessage": {"text": str(number)}}
            }
        await session.completed("s")
        await session.close()
