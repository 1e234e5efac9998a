"""Resumable subscriptions on both channels-redis layers: the history is a Redis Stream."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio
from channels.layers import channel_layers

import channels_graphql_typed as cgt
from channels_graphql_typed._replay import (
    RedisHistory,
    history_for,
    parse_event_id,
    stream_key,
)
from tests.redis_support import LAYERS, REDIS_URL, RUN_PREFIX, layer_settings, require_redis
from tests.replay_subscriptions import OnTick
from tests.test_replay import confirmed, subscribe, tick

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


@pytest.fixture(params=LAYERS, ids=lambda backend: backend.rsplit(".", 1)[-1])
def redis_layer(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    require_redis()
    settings.CHANNEL_LAYERS = layer_settings(request.param)
    channel_layers.backends.clear()
    yield request.param
    channel_layers.backends.clear()


@pytest.fixture
async def client() -> AsyncIterator[redis.asyncio.Redis]:
    require_redis()
    connection = redis.asyncio.Redis.from_url(REDIS_URL)
    yield connection
    await connection.aclose()


async def test_the_history_is_a_stream_in_the_layers_redis(
    redis_layer: str, client: redis.asyncio.Redis
) -> None:
    history = history_for(channel_layers["default"])
    assert isinstance(history, RedisHistory)
    await OnTick.broadcast(payload=1, group="a")
    key = f"{RUN_PREFIX}:{stream_key(OnTick.group_namespace)}"
    rows: Any = await client.xrevrange(key, count=1)
    (entry_id, fields), *_ = rows
    assert fields[b"group"].decode().endswith(".u_a")
    parse_event_id(entry_id)


async def test_resume_on_redis(redis_layer: str) -> None:
    first = await subscribe("graphql-transport-ws")
    await confirmed(first)
    await OnTick.broadcast(payload=1, group="a")
    _, last_id = await tick(first)
    await first.close()
    for number in range(2, 6):
        await OnTick.broadcast(payload=number, group="a" if number % 2 else "b")
    second = await subscribe("graphql-transport-ws", after=last_id)
    await confirmed(second)
    await OnTick.broadcast(payload=6)
    assert [(await tick(second))[0] for _ in range(3)] == [3, 5, 6]
    assert await second.nothing()
    await second.close()


async def test_resume_while_broadcasting_on_redis(redis_layer: str) -> None:
    first = await subscribe("graphql-transport-ws")
    await confirmed(first)
    await OnTick.broadcast(payload=0, group="a")
    _, last_id = await tick(first)
    await first.close()
    for number in range(1, 21):
        await OnTick.broadcast(payload=number, group="a")

    async def broadcast_more() -> None:
        for number in range(21, 41):
            await OnTick.broadcast(payload=number, group="a")

    sender = asyncio.ensure_future(broadcast_more())
    second = await subscribe("graphql-transport-ws", after=last_id)
    received: list[int] = []
    while len(received) < 40:
        result = await second.result("s", timeout=10)
        if result != {"data": None}:
            received.append(result["data"]["onTick"]["number"])
    await sender
    assert received == list(range(1, 41))
    assert await second.nothing(0.3)
    await second.close()


async def test_window_exceeded_on_redis(redis_layer: str) -> None:
    first = await subscribe("graphql-transport-ws")
    await confirmed(first)
    await OnTick.broadcast(payload=0, group="a")
    _, last_id = await tick(first)
    await first.close()
    for number in range(1, 301):  # 50 kept, at least (Redis trims whole blocks)
        await OnTick.broadcast(payload=number, group="a")
    second = await subscribe("graphql-transport-ws", after=last_id)
    await confirmed(second)
    signal = await second.result("s")
    assert signal["errors"][0]["extensions"] == {"code": cgt.EVENTS_MISSED}
    first_kept, _ = await tick(second)
    assert 1 < first_kept <= 251
    rest = [(await tick(second))[0] for _ in range(300 - first_kept)]
    assert rest == list(range(first_kept + 1, 301))
    await second.close()


async def test_redis_history_trims_by_time(client: redis.asyncio.Redis) -> None:
    history = RedisHistory(lambda stream: client, f"{RUN_PREFIX}:")
    replay = cgt.Replay(events=None, seconds=0.01)
    key = "trim-by-time"
    for _ in range(250):
        await history.append(key, replay, "g", b"old")
    await asyncio.sleep(0.05)
    await history.append(key, replay, "g", b"new")
    # MINID ~ trims whole blocks of entries (100 by default): some old ones are gone.
    entries = await history.read(key, (0, 0), 1000)
    assert 1 <= len(entries) < 251
    assert entries[-1].data == b"new"


async def test_redis_history_drops_malformed_entries(
    client: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    history = RedisHistory(lambda stream: client, f"{RUN_PREFIX}:")
    key = "malformed"
    await client.xadd(f"{RUN_PREFIX}:{key}", {b"junk": b"1"})
    await client.xadd(f"{RUN_PREFIX}:{key}", {b"group": b"\xff", b"data": b"x"})
    await history.append(key, cgt.Replay(events=10), "g", b"good")
    with caplog.at_level(logging.WARNING, "channels_graphql_typed"):
        entries = await history.read(key, (0, 0), 10)
    assert [entry.data for entry in entries] == [b"good"]
    assert "malformed entry" in caplog.text
