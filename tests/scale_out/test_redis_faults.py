"""Two uvicorn processes on a Redis of their own, on both channels-redis layers: idle
subscriptions outlive the client's and the server's timeouts, and everything outlives a
Redis restart.

The own Redis closes connections idle for 1 s (``timeout 1``) and redis-py gives up a
read after 2 s (``socket_timeout``): shorter than the core layer's 5 s blocking read, as
redis-py's 5 s default effectively is (redis-py 8; the blocking read races it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Final

import pytest
import redis.exceptions

import channels_graphql_typed as cgt
from channels_graphql_typed._channel_layer import RETRY_MAX_DELAY
from tests.scale_out.conftest import (
    IDLE_CLIENT_TIMEOUT,
    SHORT_SOCKET_TIMEOUT,
    connected,
    new_room,
    next_text,
    subscribe,
    subscribers,
    texts_until_complete,
)
from tests.subscriptions import ChatEvent, OnNewChatMessage

if TYPE_CHECKING:
    from tests.scale_out.conftest import OwnRedisCluster, ServerProcess

pytestmark = pytest.mark.slow

FAILED: Final = "The channel layer 'default' failed"
ANSWERS_AGAIN: Final = "The channel layer 'default' answers again"
TIMED_OUT: Final = "Receiving from the channel layer 'default' timed out"
PUBSUB_RECEIVE_TASK_FAILED: Final = "Unexpected exception in receive task"
"""What channels-redis' pub/sub layer logs, every second, while Redis is unreachable."""
RECOVERY_TIMEOUT: Final = 10 * RETRY_MAX_DELAY


def event(room: str, text: str) -> ChatEvent:
    return ChatEvent(chatroom=room, text=text, sender="test", sender_channel="test")


async def broadcast(room: str, text: str) -> None:
    await OnNewChatMessage.broadcast(payload=event(room, text), group=room)


async def wait_for_output(servers: list[ServerProcess], text: str, timeout: float = 10) -> None:
    """Until every server has logged a line with ``text``."""
    deadline = time.monotonic() + timeout
    while not all(server.count(text) for server in servers):
        assert time.monotonic() < deadline, [server.output() for server in servers]
        await asyncio.sleep(0.05)


async def test_idle_subscriptions_receive_the_next_broadcast(
    own_cluster_layer: OwnRedisCluster,
) -> None:
    cluster = own_cluster_layer
    room = new_room()
    async with contextlib.AsyncExitStack() as stack:
        streams = await subscribers(stack, cluster.servers, room, sockets=1, per_socket=2)
        # Nothing to poll for: being idle is the point. Past both timeouts, twice over
        # for Redis' (which closes the servers' idle pooled connections).
        await asyncio.sleep(max(SHORT_SOCKET_TIMEOUT, 2 * IDLE_CLIENT_TIMEOUT) + 1)
        await broadcast(room, "after a silence")
        for stream in streams:
            assert await next_text(stream) == "after a silence"
        # Idle connections of the servers, closed by Redis, are opened again on use.
        await subscribers(stack, cluster.servers, room, sockets=1, per_socket=1)
    for server in cluster.servers:
        server.check_alive()
        assert server.count(FAILED) == 0, server.output()
        if cluster.core:
            # The core layer's blocking read timed out, again and again; its receives
            # simply go on, and the configuration is named once.
            assert server.count(TIMED_OUT) == 1, server.output()


async def test_redis_restart(own_cluster_layer: OwnRedisCluster) -> None:
    cluster = own_cluster_layer
    room = new_room()
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connected(s)) for s in cluster.servers]
        streams = [await subscribe(stack, client, room) for client in clients for _ in (1, 2)]
        await broadcast(room, "before")
        for stream in streams:
            assert await next_text(stream) == "before"

        cluster.redis.stop()
        # A broadcast while Redis is down raises to its caller, in this process...
        with pytest.raises(redis.exceptions.ConnectionError):
            await broadcast(room, "lost")
        # ...and in a third one.
        code, output = await cluster.run_broadcast_script(room, "lost too")
        assert code != 0
        assert "redis.exceptions.ConnectionError" in output, output
        if cluster.core:
            # Every receive of the servers fails; each process logs it once.
            await wait_for_output(cluster.servers, FAILED)
        else:
            # Receives wait on local queues; the layer's own task notices, and logs.
            await wait_for_output(cluster.servers, PUBSUB_RECEIVE_TASK_FAILED)
        # Down long enough for several retries of each process.
        await asyncio.sleep(1.5)
        cluster.redis.start()

        # The sockets stayed open; each subscription gets broadcasts again once its
        # process is back in its groups (core: it re-adds them all; pub/sub: redis-py
        # re-subscribes).
        await wait_for_probes(room, streams)
        texts = [f"after {number}" for number in range(5)]
        for text in texts:
            await broadcast(room, text)
        latecomer = await subscribe(stack, clients[1], room)
        await broadcast(room, "last")
        await OnNewChatMessage.unsubscribe(group=room)
        for stream in streams:
            received = await texts_until_complete(stream)
            probes = [text for text in received if text.startswith("probe")]
            assert probes == sorted(set(probes)), received  # in order, none twice
            assert [text for text in received if text not in probes] == [*texts, "last"]
        # A subscription gets every broadcast issued after it was confirmed -- and may
        # get one issued just before, still on its way to the process.
        late = await texts_until_complete(latecomer)
        assert late == [*texts, "last"][-len(late) :], late
        assert late[-1] == "last"
        for client in clients:
            assert not client.closed

    for server in cluster.servers:
        server.check_alive()
        # Once per episode, not per message or per connection.
        assert server.count(FAILED) == (1 if cluster.core else 0), server.output()
        assert server.count(ANSWERS_AGAIN) == (1 if cluster.core else 0), server.output()


async def wait_for_probes(room: str, streams: list[cgt.GraphqlWsSubscriptionStream]) -> None:
    """Broadcast probes until every stream has received one."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    waiting = set(range(len(streams)))
    number = 0
    while waiting:
        assert time.monotonic() < deadline, f"{len(waiting)} subscriptions got no probe"
        number += 1
        await broadcast(room, f"probe {number:03}")
        for index in sorted(waiting):
            with contextlib.suppress(cgt.GraphqlWsTimeoutError):
                assert (await next_text(streams[index], timeout=0.1)).startswith("probe")
                waiting.discard(index)
