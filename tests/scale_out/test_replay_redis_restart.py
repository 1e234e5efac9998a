"""Resumable subscriptions through a Redis restart: two uvicorn processes on a Redis of
their own that keeps an append-only file (so the history survives the restart), live
subscribers of a resumable class on both, broadcasts at a steady rate from this process,
Redis stopped and started again in the middle. The sockets stay open; once each process
has joined its groups again, its subscribers catch up from the history: every subscriber
ends with every event exactly once, in order, without reconnecting.

On channels-redis' core layer only: its receives fail while Redis is down, which is how
a process knows it may have missed broadcasts (the pub/sub layer's do not fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any, Final

import pytest
import redis.asyncio
import redis.exceptions
from channels.layers import channel_layers

import channels_graphql_typed as cgt
from channels_graphql_typed._replay import stream_key
from channels_graphql_typed._serialization import deserialize_payload
from tests.replay_subscriptions import OnCounter
from tests.scale_out.conftest import (
    CLIENT_TIMEOUT,
    RECOMMENDED_SOCKET_TIMEOUT,
    RedisServerProcess,
    ServerProcess,
    channel_layers_for,
    new_prefix,
    new_room,
    process_environment,
    running_servers,
)
from tests.scale_out.test_replay_end_to_end import COUNTER, numbers, replay_command

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow

CORE: Final = "channels_redis.core.RedisChannelLayer"
EVENTS: Final = 200
RATE: Final = 100.0
"""Broadcasts a second."""
RESTART_AT: Final = 60
"""Redis is stopped once this many events were broadcast."""
DOWN_FOR: Final = 0.5
SUBSCRIBERS_PER_SERVER: Final = 3
GUARD: Final = 30.0
"""Seconds after which a wait is taken for a hang."""
FAILED: Final = "The channel layer 'default' failed"


class PersistentCluster:
    def __init__(
        self, redis: RedisServerProcess, prefix: str, servers: list[ServerProcess]
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.servers = servers


@pytest.fixture
def persistent_cluster(tmp_path: Path, settings: Any) -> Iterator[PersistentCluster]:
    """Two replay servers on a Redis with an append-only file in a temporary directory,
    and this process on the same channel layer."""
    data_dir = tmp_path / "redis-data"
    data_dir.mkdir()
    redis_server = RedisServerProcess(tmp_path, data_dir=data_dir)
    redis_server.start()
    try:
        prefix = new_prefix(CORE)
        layers = channel_layers_for(
            CORE, redis_server.url, prefix, {"socket_timeout": RECOMMENDED_SOCKET_TIMEOUT}
        )
        settings.CHANNEL_LAYERS = layers
        channel_layers.backends.clear()
        environment = process_environment(layers)
        with running_servers(2, environment, tmp_path, command=replay_command) as servers:
            yield PersistentCluster(redis_server, prefix, servers)
    finally:
        channel_layers.backends.clear()
        redis_server.stop()


@contextlib.asynccontextmanager
async def subscribers(
    servers: list[ServerProcess], room: str
) -> AsyncIterator[list[cgt.GraphqlWsSubscriptionStream]]:
    async with contextlib.AsyncExitStack() as stack:
        streams = []
        for server in servers:
            for _ in range(SUBSCRIBERS_PER_SERVER):
                transport = cgt.GraphqlWsTransportAiohttp(server.ws_url)
                client = cgt.GraphqlWsClient(transport, timeout=CLIENT_TIMEOUT)
                await stack.enter_async_context(client)
                stream = client.subscribe(COUNTER, {"room": room}, confirm=True, timeout=GUARD)
                await stack.enter_async_context(stream)
                await stream.wait_confirmed()
                streams.append(stream)
        yield streams


async def last_kept(cluster: PersistentCluster) -> object:
    """The payload of the history's newest entry (None if it has none)."""
    key = f"{cluster.prefix}:{stream_key(OnCounter.group_namespace)}"
    connection = redis.asyncio.Redis.from_url(cluster.redis.url)
    try:
        rows: Any = await connection.xrevrange(key, count=1)
    finally:
        await connection.aclose()
    return deserialize_payload(rows[0][1][b"data"]) if rows else None


async def broadcast_steadily(
    cluster: PersistentCluster, room: str, events: range, started: asyncio.Event
) -> None:
    """Each number once, at ``RATE`` a second. A broadcast that raises (Redis is down,
    or a connection of the pool was closed by the restart) is sent again, unless its
    append to the history succeeded before the send failed: it is an event then, for
    the history's readers to deliver."""
    for number in events:
        if number == RESTART_AT:
            started.set()
        deadline = time.monotonic() + GUARD
        while True:
            try:
                await OnCounter.broadcast(payload=number, group=room)
                break
            except Exception:
                assert time.monotonic() < deadline, "Redis did not come back"
                await asyncio.sleep(0.05)
                with contextlib.suppress(Exception):
                    if await last_kept(cluster) == number:
                        break
        await asyncio.sleep(1 / RATE)


async def stop_without_memberships(cluster: PersistentCluster) -> None:
    """Delete the channel layer's group memberships, then shut Redis down at once (in
    one pipeline): it comes back with the history but without the memberships, so what
    is broadcast between its return and a process's re-join reaches nobody there."""
    connection = redis.asyncio.Redis.from_url(cluster.redis.url)
    try:
        groups = [key async for key in connection.scan_iter(f"{cluster.prefix}:group:*")]
        assert groups
        async with connection.pipeline(transaction=False) as pipe:
            pipe.delete(*groups)
            pipe.execute_command("SHUTDOWN")
            with contextlib.suppress(redis.exceptions.ConnectionError):
                await pipe.execute()
    finally:
        with contextlib.suppress(Exception):
            await connection.aclose()
    process = cluster.redis.process
    assert process is not None
    await asyncio.to_thread(process.wait, GUARD)
    cluster.redis.stop()


@pytest.mark.parametrize(
    "memberships", ["kept", "lost"], ids=["memberships-kept", "memberships-lost"]
)
async def test_live_subscribers_catch_up_after_a_redis_restart(
    persistent_cluster: PersistentCluster, memberships: str
) -> None:
    cluster, room = persistent_cluster, new_room()
    async with subscribers(cluster.servers, room) as streams:
        restart = asyncio.Event()
        sender = asyncio.ensure_future(broadcast_steadily(cluster, room, range(EVENTS), restart))
        try:
            async with asyncio.timeout(GUARD):
                await restart.wait()
            if memberships == "kept":
                cluster.redis.stop()  # the append-only file keeps everything
            else:
                await stop_without_memberships(cluster)
            await asyncio.sleep(DOWN_FOR)
            cluster.redis.start()
            async with asyncio.timeout(GUARD):
                await sender
        finally:
            sender.cancel()
        for stream in streams:
            assert await numbers(stream, EVENTS) == list(range(EVENTS))
        await OnCounter.broadcast(payload=EVENTS, group=room)
        for stream in streams:
            assert await numbers(stream, 1) == [EVENTS]  # nothing twice before it
            assert stream.resubscriptions == 0  # caught up on the same connection
    for server in cluster.servers:
        server.check_alive()
        assert server.count(FAILED) == 1, server.output()
