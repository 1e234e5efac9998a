"""Hostile payloads against two uvicorn processes on Redis, on both channels-redis layers:
whatever a client gets broadcast or a writer to the layer sends, no server crashes, no
module is imported, and the next valid broadcast reaches every subscriber."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pytest
from channels.layers import get_channel_layer

import channels_graphql_typed as cgt
from channels_graphql_typed.fanout import NOTIFY, group_name
from channels_graphql_typed.serialization import MAX_PAYLOAD_DEPTH
from tests.scale_out.conftest import connected, new_room, next_text, subscribers
from tests.subscriptions import ChatEvent, OnNewChatMessage
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
                await layer.group_send(group, {"type": NOTIFY, "group": group, "payload": data})
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
