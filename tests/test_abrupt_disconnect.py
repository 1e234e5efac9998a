"""Clients that vanish without a close frame (TCP reset) over a real socket leave no
subscription, group or task behind."""

from __future__ import annotations

import asyncio
import json

from channels.layers import get_channel_layer

from channels_graphql_typed._fanout import get_fanout
from tests.client.conftest import eventually, serve
from tests.subscriptions import ConfirmingConsumer
from tests.test_slow_client import StalledClient

QUERY = json.dumps({"query": 'subscription { onNewChatMessage(chatroom: "gone") { text } }'})


async def test_abrupt_disconnects_leave_nothing_behind() -> None:
    async with serve(ConfirmingConsumer.as_asgi()) as server:
        await asyncio.sleep(0.05)
        baseline_tasks = len(asyncio.all_tasks())
        for _ in range(200):
            client = StalledClient(server.port)
            await client.connect()
            client.send('{"type":"connection_init"}')
            client.send(f'{{"type":"subscribe","id":"s","payload":{QUERY}}}')
            confirmed = False
            while not confirmed:
                confirmed = any(m.get("payload") == {"data": None} for m in await client.messages())
            client.writer.transport.abort()  # no close frame: a reset
        await eventually(
            lambda: (
                not get_fanout("default").members and len(asyncio.all_tasks()) <= baseline_tasks
            ),
            timeout=10,
        )
        groups = getattr(get_channel_layer(), "groups", {})
        assert not [name for name in groups if name.startswith("cgt.")]
