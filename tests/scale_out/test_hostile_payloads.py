"""Hostile payloads against two uvicorn processes on Redis, on both channels-redis layers:
whatever a client gets broadcast or a writer to the layer sends, no server crashes, no
module is imported, and the next valid broadcast reaches every subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import redis.asyncio
from channels.layers import get_channel_layer

import channels_graphql_typed as cgt
from channels_graphql_typed._contract import DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION
from channels_graphql_typed._groups import group_name
from channels_graphql_typed._layer_messages import NOTIFY, group_send, notify_message
from channels_graphql_typed._serialization import MAX_PAYLOAD_DEPTH
from tests.scale_out.conftest import CLIENT_TIMEOUT, connected, new_room, next_text, subscribers
from tests.subscriptions import ChatEvent, OnNewChatMessage, OnRooms
from tests.test_serialization import HOSTILE

if TYPE_CHECKING:
    from tests.scale_out.conftest import Cluster

pytestmark = pytest.mark.slow

TREE_SUBSCRIPTION = "subscription { onTree { label } }"
BROADCAST_TREE = "mutation Post($tree: TreeInput!) { broadcastTree(tree: $tree) }"


def tree_input(levels: int) -> dict[str, Any]:
    tree: dict[str, Any] = {"label": "leaf"}
    for number in range(levels - 1):
        tree = {"label": f"level {number}", "child": tree}
    return tree


async def test_hostile_layer_messages_crash_no_server_and_delivery_goes_on(
    cluster_layer: Cluster,
) -> None:
    cluster = cluster_layer
    room = new_room()
    group = group_name(OnNewChatMessage.group_namespace, room)
    layer = get_channel_layer()
    assert layer is not None
    async with contextlib.AsyncExitStack() as stack:
        streams = await subscribers(stack, cluster.servers, room, sockets=1, per_socket=2)
        # What anything that can write to the layer can send: each hostile payload of
        # the decoder's tests (the earlier format's 714-byte nesting bomb first).
        for data in HOSTILE.values():
            if isinstance(data, bytes):
                await group_send(layer, group, notify_message(group, data))
        event = ChatEvent(chatroom=room, text="still delivered", sender="t", sender_channel="t")
        await OnNewChatMessage.broadcast(payload=event, group=room)
        for stream in streams:
            assert await next_text(stream) == "still delivered"
    for server in cluster.servers:
        server.check_alive()
        # ``import this`` prints the Zen of Python: no message made a server import it.
        assert "Beautiful is better than ugly" not in server.output()


async def test_a_client_built_payload_nested_too_deep_is_refused_at_the_sender(
    cluster: Cluster,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        streams = []
        for server in cluster.servers:
            client = await stack.enter_async_context(connected(server))
            stream = await stack.enter_async_context(client.subscribe(TREE_SUBSCRIPTION))
            assert (await anext(stream)).data is None  # the confirmation: in its groups
            streams.append(stream)
        poster = await stack.enter_async_context(connected(cluster.servers[0]))
        # An anonymous client's recursive input object, 200 levels deep, that the app
        # broadcasts: refused where it is serialized, with the limit in the message.
        with pytest.raises(cgt.GraphqlWsResponseError, match=f"more than {MAX_PAYLOAD_DEPTH}"):
            await poster.execute(BROADCAST_TREE, {"tree": tree_input(200)})
        result = await poster.execute(BROADCAST_TREE, {"tree": tree_input(3)})
        assert result.data == {"broadcastTree": True}
        for stream in streams:
            stream.timeout = 10
            notification = await anext(stream)
            assert notification.data == {"onTree": {"label": "level 1"}}
    for server in cluster.servers:
        server.check_alive()


MALFORMED = "Dropped a malformed message from the channel layer"


async def write_raw(cluster: Cluster, layer: Any, group: str, item: Any) -> None:
    """Put ``item`` in front of the group's processes as a hostile writer to Redis
    would: encoded with the layer's own serializer (or as raw bytes), past every check
    of the layer's sending side."""
    client: Any = redis.asyncio.Redis.from_url(cluster.redis_url)
    try:
        if cluster.core:
            for channel in await client.zrange(layer._group_key(group), 0, -1):
                name = channel.decode()
                if isinstance(item, dict):
                    item = {**item, "__asgi_channel__": name}
                data = item if isinstance(item, bytes) else layer.serialize(item)
                await client.zadd(layer.prefix + layer.non_local_name(name), {data: time.time()})
        else:
            data = item if isinstance(item, bytes) else layer.serialize(item)
            await client.publish(layer._get_group_channel_name(group), data)
    finally:
        await client.aclose()


async def test_malformed_layer_messages_stop_no_delivery_and_are_logged_once(
    cluster_layer: Cluster,
) -> None:
    cluster = cluster_layer
    room = new_room()
    group = group_name(OnNewChatMessage.group_namespace, room)
    layer = get_channel_layer()
    assert layer is not None
    before = [server.count(MALFORMED) for server in cluster.servers]
    async with contextlib.AsyncExitStack() as stack:
        streams = await subscribers(stack, cluster.servers, room, sockets=1, per_socket=1)
        junk: list[Any] = [
            "not a message",
            42,
            None,
            [NOTIFY, group],
            {"type": NOTIFY},
            {"type": NOTIFY, "group": 7, "payload": b""},
            {"type": "cgt.other", "group": group},
            {"type": NOTIFY, "group": group, "payload": "text, not bytes"},
            {"type": NOTIFY, "group": group, "payload": b"\xc1\x02\xc1"},
            b"\xc1" * 20,  # not msgpack: the layer itself cannot decode it
        ]
        for item in junk:
            await write_raw(cluster, layer, group, item)
        event = ChatEvent(
            chatroom=room, text="delivered after junk", sender="t", sender_channel="t"
        )
        await OnNewChatMessage.broadcast(payload=event, group=room)
        for stream in streams:
            assert await next_text(stream) == "delivered after junk"
    for server, logged_before in zip(cluster.servers, before, strict=True):
        server.check_alive()
        logged = server.count(MALFORMED)
        # Logged at most once for the whole burst (an earlier test's refusals may have
        # opened the episode already), and never as an outage of the layer.
        assert logged - logged_before <= 1
        assert logged >= 1
        assert "Task exception was never retrieved" not in server.output()
        assert "The channel layer 'default' failed" not in server.output()


ROOMS_SUBSCRIPTION = "subscription ($rooms: [String!]!) { onRooms(rooms: $rooms) { text } }"


async def test_a_subscription_with_too_many_groups_is_refused_before_joining_any(
    cluster_layer: Cluster,
) -> None:
    server = cluster_layer.servers[0]
    rooms = [f"room-{number}" for number in range(30_000)]
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(connected(server))
        stream = await stack.enter_async_context(
            client.subscribe(ROOMS_SUBSCRIPTION, {"rooms": rooms})
        )
        refused = await anext(stream)  # a result with the error (as a resolver's)
        assert refused.data is None
        assert refused.errors is not None
        message = refused.errors[0]["message"]
        assert message.startswith("Too many groups"), message
        assert f"at most {DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION}" in message
        # At the limit, every group is joined: a broadcast to the last one arrives.
        allowed = await stack.enter_async_context(
            client.subscribe(
                ROOMS_SUBSCRIPTION, {"rooms": rooms[:DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION]}
            )
        )
        assert (await anext(allowed)).data is None  # the confirmation: in its groups
        last = rooms[DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION - 1]
        event = ChatEvent(chatroom=last, text="to the last room", sender="t", sender_channel="t")
        await OnRooms.broadcast(payload=event, group=last)
        allowed.timeout = 10
        notification = await anext(allowed)
        assert notification.data == {"onRooms": {"text": "to the last room"}}
    server.check_alive()
    # A refusal is an answer, not a failure of the server: nothing logged.
    assert server.count("Too many groups") == 0


async def test_layer_messages_are_never_taken_for_a_client_frame(
    cluster_layer: Cluster,
) -> None:
    """A writer to the layer that learnt a connection's channel name (the pub/sub layer
    lists them, the core layer's keys hint at them) can neither act as that connection's
    client nor end it."""
    cluster = cluster_layer
    server = cluster.servers[0]
    layer = get_channel_layer()
    assert layer is not None
    before = server.count(MALFORMED)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(server.ws_url, protocols=["graphql-transport-ws"]) as socket,
    ):
        await socket.send_json({"type": "connection_init"})
        assert (await socket.receive_json(timeout=CLIENT_TIMEOUT))["type"] == "connection_ack"
        query = {"query": "{ channelName }"}
        await socket.send_json({"id": "1", "type": "subscribe", "payload": query})
        channel = (await socket.receive_json(timeout=CLIENT_TIMEOUT))["payload"]["data"][
            "channelName"
        ]
        assert (await socket.receive_json(timeout=CLIENT_TIMEOUT))["type"] == "complete"
        forged = json.dumps({"id": "forged", "type": "subscribe", "payload": query})
        for message in (
            {"type": "websocket.receive", "text": forged},
            {"type": "websocket.disconnect", "code": 1000},
            {"type": "no.such.handler"},
        ):
            await layer.send(channel, message)
        if not before:  # else the warning of an earlier test covers these (one a minute)
            deadline = time.monotonic() + CLIENT_TIMEOUT
            while not server.count(MALFORMED):
                assert time.monotonic() < deadline, "the forged messages were not dropped"
                await asyncio.sleep(0.05)
        # What a forged operation would have sent comes within moments (a negative wait:
        # on a slow machine it can only let a regression pass, never fail a sound run).
        with contextlib.suppress(TimeoutError):
            unexpected = await socket.receive_json(timeout=1)
            pytest.fail(f"the server answered a forged frame: {unexpected}")
        # The connection is open and answers; nothing answered the forged operation.
        await socket.send_json({"id": "2", "type": "subscribe", "payload": query})
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1] != {"id": "2", "type": "complete"}:
            frames.append(await socket.receive_json(timeout=CLIENT_TIMEOUT))
        assert all(frame.get("id") == "2" for frame in frames), frames
    server.check_alive()
