"""Two uvicorn processes on one Redis, on both channels-redis layers: broadcasts from a
third process reach every subscriber of both, once and in order, with one channel-layer
message per process and group."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import TYPE_CHECKING

import pytest
import redis.asyncio

from channels_graphql_typed._groups import group_name
from tests.scale_out.conftest import (
    connected,
    new_room,
    next_text,
    subscribe,
    subscribers,
    texts_until_complete,
)
from tests.subscriptions import ChatEvent, OnNewChatMessage

if TYPE_CHECKING:
    from tests.scale_out.conftest import Cluster

pytestmark = pytest.mark.slow


def event(room: str, text: str) -> ChatEvent:
    return ChatEvent(chatroom=room, text=text, sender="test", sender_channel="test")


async def test_broadcasts_from_a_script_reach_both_servers_once_in_order(
    cluster: Cluster,
) -> None:
    room = new_room()
    texts = [f"message {number}" for number in range(20)]
    async with contextlib.AsyncExitStack() as stack:
        streams = await subscribers(stack, cluster.servers, room, sockets=2, per_socket=2)
        code, output = await cluster.run_broadcast_script(room, *texts, unsubscribe=True)
        assert code == 0, output
        # unsubscribe comes last: each stream ends with it, after everything it received.
        received = await asyncio.gather(*(texts_until_complete(stream) for stream in streams))
    assert received == [texts] * len(streams)


async def test_unsubscribe_from_a_script_ends_one_group_on_both_servers(
    cluster_layer: Cluster,
) -> None:
    cluster = cluster_layer
    ended, kept = new_room(), new_room()
    async with contextlib.AsyncExitStack() as stack:
        ending = await subscribers(stack, cluster.servers, ended, sockets=1, per_socket=2)
        staying = await subscribers(stack, cluster.servers, kept, sockets=1, per_socket=2)
        code, output = await cluster.run_broadcast_script(ended, unsubscribe=True)
        assert code == 0, output
        for stream in ending:
            assert await texts_until_complete(stream) == []
        await OnNewChatMessage.broadcast(payload=event(kept, "still here"), group=kept)
        for stream in staying:
            assert await next_text(stream) == "still here"


class RedisMonitor:
    """The commands Redis runs (``MONITOR``) that mention ``needle``, between marks."""

    def __init__(self, url: str, needle: str) -> None:
        self.url = url
        self.needle = needle
        self.lines: list[str] = []
        self._connection = redis.asyncio.Redis.from_url(url)
        self._monitor = self._connection.monitor()
        self._reader: asyncio.Task[None] | None = None
        self._marks: dict[str, asyncio.Future[int]] = {}

    async def __aenter__(self) -> RedisMonitor:
        await self._monitor.__aenter__()  # type: ignore[no-untyped-call]
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._reader is not None
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._monitor.__aexit__(*exc_info)  # type: ignore[no-untyped-call]
        await self._connection.aclose()

    async def _read(self) -> None:
        async for command in self._monitor.listen():
            line = f"{command['client_type']} {command['command']}"
            if self.needle in line:
                self.lines.append(line)
            for label, future in self._marks.items():
                if f"{self.needle}-mark-{label}" in line and not future.done():
                    future.set_result(len(self.lines))

    async def mark(self, label: str) -> int:
        """Put a mark in the record (an ``ECHO`` the monitor sees); returns its index."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._marks[label] = future
        async with redis.asyncio.Redis.from_url(self.url) as connection:
            await connection.echo(f"{self.needle}-mark-{label}")
        async with asyncio.timeout(10):
            return await future

    def between(self, start: int, end: int) -> list[str]:
        """The lines recorded between two marks: ``client_type command arguments...``,
        where ``client_type`` is ``lua`` for a command run by a script."""
        return [line for line in self.lines[start:end] if "-mark-" not in line]


def command_name(line: str) -> str:
    return line.split(" ", 2)[1].upper()


async def test_one_channel_layer_message_per_process_and_group(cluster_layer: Cluster) -> None:
    cluster = cluster_layer
    room = new_room()
    group = group_name(OnNewChatMessage.group_namespace, room)
    async with contextlib.AsyncExitStack() as stack:
        # 200 subscribers: 2 processes x 10 sockets x 10 subscriptions.
        streams = await subscribers(stack, cluster.servers, room, sockets=10, per_socket=10)
        assert len(streams) == 200
        async with RedisMonitor(cluster.redis_url, cluster.prefix) as monitor:
            start = await monitor.mark("start")
            await OnNewChatMessage.broadcast(payload=event(room, "to 200"), group=room)
            for stream in streams:
                assert await next_text(stream) == "to 200"
            end = await monitor.mark("end")
            commands = monitor.between(start, end)
        if cluster.core:
            # One membership per process, not per subscriber...
            async with redis.asyncio.Redis.from_url(cluster.redis_url) as connection:
                members = await connection.zrange(f"{cluster.prefix}:group:{group}", 0, -1)
            assert len(members) == 2
        else:
            async with redis.asyncio.Redis.from_url(cluster.redis_url) as connection:
                subscriptions = await connection.pubsub_numsub(f"{cluster.prefix}__group__{group}")
            assert [count for _, count in subscriptions] == [2]
    counts = collections.Counter(command_name(line) for line in commands)
    print(f"{len(commands)} Redis commands for one broadcast to 200 subscribers:", dict(counts))
    if cluster.core:
        # ...so one message per process: the group_send script adds it to each process's
        # channel key (ZADD), and each process pops it (BZPOPMIN) once.
        message_adds = [
            line for line in commands if line.startswith("lua ZADD ") and "$inflight" not in line
        ]
        assert len(message_adds) == 2, commands
    else:
        assert counts["PUBLISH"] == 1, commands
    # Whatever the layer does per message, it does it per process: 200 subscribers
    # would be hundreds of commands.
    assert len(commands) <= 20 * len(cluster.servers), commands


async def test_a_subscriber_joining_later_on_another_server_gets_what_follows(
    cluster_layer: Cluster,
) -> None:
    cluster = cluster_layer
    room = new_room()
    first, second = cluster.servers
    async with contextlib.AsyncExitStack() as stack:
        early = await subscribe(stack, await stack.enter_async_context(connected(first)), room)
        await OnNewChatMessage.broadcast(payload=event(room, "one"), group=room)
        late = await subscribe(stack, await stack.enter_async_context(connected(second)), room)
        await OnNewChatMessage.broadcast(payload=event(room, "two"), group=room)
        assert [await next_text(early), await next_text(early)] == ["one", "two"]
        assert await next_text(late) == "two"


async def test_a_burst_reaches_every_subscriber_in_order(cluster_layer: Cluster) -> None:
    # The core layer drops what exceeds a channel's capacity; with the default (100) a
    # sender faster than a process's receives would lose broadcasts (on a 2-core machine,
    # about one in five of these). The cluster has the default capacity: the fan-out's
    # channels have their own.
    cluster = cluster_layer
    room = new_room()
    texts = [f"burst {number}" for number in range(500)]
    async with contextlib.AsyncExitStack() as stack:
        streams = await subscribers(stack, cluster.servers, room, sockets=1, per_socket=2)
        for text in texts:
            await OnNewChatMessage.broadcast(payload=event(room, text), group=room)
        await OnNewChatMessage.unsubscribe(group=room)
        received = await asyncio.gather(*(texts_until_complete(stream) for stream in streams))
    assert received == [texts] * len(streams)
