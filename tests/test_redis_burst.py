"""Concurrent broadcasts (several web workers, a bulk import) on the core Redis layer all
reach a subscriber that keeps up: the fan-out's channel is not capped at the layer's
default capacity (100)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from channels.layers import channel_layers

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS
from tests.helpers import WsSession
from tests.redis_support import layer_settings, require_redis
from tests.subscriptions import ConfirmingConsumer, Measurement, OnMeasurement

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def redis_core(settings: Any) -> Iterator[None]:
    require_redis()
    settings.CHANNEL_LAYERS = layer_settings("channels_redis.core.RedisChannelLayer")
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


async def test_concurrent_broadcasts_all_delivered(redis_core: None) -> None:
    session = await WsSession.open(ConfirmingConsumer.as_asgi(), GRAPHQL_TRANSPORT_WS)
    await session.start("s", 'subscription { onMeasurement(sensors: ["burst"]) { value } }')
    assert await session.result("s") == {"data": None}

    async def worker(first: int) -> None:  # one of 10 web workers, 30 broadcasts each
        for value in range(first, first + 30):
            await OnMeasurement.broadcast(
                payload=Measurement(sensor="b", value=value), group="burst"
            )

    await asyncio.gather(*(worker(first) for first in range(0, 300, 30)))
    received = []
    while not await session.nothing(0.5):
        received.append((await session.result("s"))["data"]["onMeasurement"]["value"])
    await session.close()
    assert len(received) == 300, f"got {len(received)} of 300"
