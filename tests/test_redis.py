"""Typed subscriptions on both channels-redis layers against a real Redis."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio
from channels.layers import channel_layers

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS
from channels_graphql_typed._fanout import get_fanout
from channels_graphql_typed._groups import group_name
from tests.helpers import WsSession
from tests.redis_support import LAYERS, REDIS_URL, RUN_PREFIX, layer_settings, require_redis
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


CORE = "channels_redis.core.RedisChannelLayer"


async def test_no_membership_is_left_behind_by_100_subscribers_that_disconnected(
    redis_layer: str,
) -> None:
    rooms = [f"cycle-{number}" for number in range(100)]
    async with redis.asyncio.Redis.from_url(REDIS_URL) as connection:
        for number, room in enumerate(rooms):
            session = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
            await session.start(
                "s", f'subscription {{ onNewChatMessage(chatroom: "{room}") {{ text }} }}'
            )
            assert await session.result("s") == {"data": None}
            if number == 0:  # the membership is there while the subscription lives
                assert await memberships(connection, redis_layer) != []
            await session.close()  # a disconnect, without completing the subscription
        assert await memberships(connection, redis_layer) == []


async def memberships(connection: redis.asyncio.Redis, backend: str) -> list[bytes | str]:
    """What the layer keeps in Redis for group memberships under the run's prefix: the
    groups' sorted sets (core layer), the groups' pub/sub channels (pub/sub layer)."""
    if backend == CORE:
        return [key async for key in connection.scan_iter(match=f"{RUN_PREFIX}:group:*")]
    channels: list[bytes | str] = await connection.pubsub_channels(f"{RUN_PREFIX}__group__*")
    return channels


async def test_memberships_are_refreshed_before_they_expire(settings: Any) -> None:
    require_redis()
    settings.CHANNEL_LAYERS = layer_settings(CORE, group_expiry=2)
    channel_layers.backends.clear()
    group = group_name(OnNewChatMessage.group_namespace, "redis")
    key = f"{RUN_PREFIX}:group:{group}"
    try:
        session = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
        await session.start("s", CHAT)
        assert await session.result("s") == {"data": None}
        fanout = get_fanout("default")
        assert fanout.refresh_interval == 1
        assert fanout.channel is not None
        async with redis.asyncio.Redis.from_url(REDIS_URL) as connection:
            joined = await connection.zscore(key, fanout.channel)
            assert joined is not None
            # channels-redis forgets a membership group_expiry seconds after its
            # group_add (group_send drops it, Redis expires the key): wait past that.
            await asyncio.sleep(joined + 2 + 1 - time.time())
            refreshed = await connection.zscore(key, fanout.channel)
        assert refreshed is not None
        assert refreshed > joined + 1
        await OnNewChatMessage.broadcast(payload=event("still joined"), group="redis")
        assert await session.result("s") == {"data": {"onNewChatMessage": {"text": "still joined"}}}
        await session.close()
    finally:
        channel_layers.backends.clear()


async def test_a_group_is_joined_for_good_before_a_subscription_is_confirmed(
    redis_layer: str,
) -> None:
    # On the pub/sub layer, group_add returns before Redis has the SUBSCRIBE: the first
    # join of a group in a process waits until a message sent to the group comes back.
    # The next subscriber of the group, in the same process, finds it joined.
    layer = channel_layers["default"]
    sent: list[str] = []
    group_send = layer.group_send

    async def recording(group: str, message: dict[str, Any]) -> None:
        sent.append(message["type"])
        await group_send(group, message)

    layer.group_send = recording  # type: ignore[method-assign]
    first = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
    await first.start("s", CHAT)
    assert await first.result("s") == {"data": None}
    pubsub = redis_layer.endswith("RedisPubSubChannelLayer")
    # The subscription's own group and its class's group: one round trip each.
    assert (sent.count("cgt.joined") >= 2) is pubsub
    assert (sent.count("cgt.joined") == 0) is not pubsub
    sent.clear()
    second = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
    await second.start("s", CHAT)
    assert await second.result("s") == {"data": None}
    assert "cgt.joined" not in sent
    # Confirmed, then at once broadcast from another connection: never missed.
    await OnNewChatMessage.broadcast(payload=event("right away"), group="redis")
    for session in (first, second):
        assert await session.result("s") == {"data": {"onNewChatMessage": {"text": "right away"}}}
        await session.close()
