"""Churn: many connect/subscribe/disconnect cycles leave nothing behind."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS
from channels_graphql_typed._fanout import get_fanout
from tests.helpers import WsSession
from tests.subscriptions import ChatEvent, ConfirmingConsumer, OnNewChatMessage, OnSlowPublish

if TYPE_CHECKING:
    import pytest

app = ConfirmingConsumer.as_asgi()
CHAT = 'subscription { onNewChatMessage(chatroom: "room%d") { text } }'


def our_groups() -> dict[str, object]:
    layer = get_channel_layer()
    groups: dict[str, object] = getattr(layer, "groups", {})
    return {name: members for name, members in groups.items() if name.startswith("cgt.")}


async def one_cycle(index: int) -> None:
    subprotocol = (GRAPHQL_TRANSPORT_WS, GRAPHQL_WS)[index % 2]
    session = await WsSession.open(app, subprotocol)
    await session.start("a", CHAT % (index % 7))
    await session.start("b", CHAT % (index % 3))
    if index % 3 == 0:
        # Abrupt: gone before the subscriptions are even confirmed.
        await session.communicator.disconnect(code=1006)
        return
    assert await session.result("a") == {"data": None}
    assert await session.result("b") == {"data": None}
    if index % 3 == 1:
        await session.stop("a")
    await session.close()


async def test_2000_cycles_leave_tasks_registries_and_groups_at_baseline() -> None:
    baseline_tasks = len(asyncio.all_tasks())
    for index in range(2000):
        await one_cycle(index)
    await asyncio.sleep(0.05)
    fanout = get_fanout("default")
    assert fanout.members == {}
    assert not fanout.listening
    assert our_groups() == {}
    assert len(asyncio.all_tasks()) == baseline_tasks
    # And the machinery still works afterwards.
    session = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
    await session.start("s", CHAT % 1)
    assert await session.result("s") == {"data": None}
    await OnNewChatMessage.broadcast(
        payload=ChatEvent(chatroom="room1", text="alive", sender="x", sender_channel="y"),
        group="room1",
    )
    assert await session.result("s") == {"data": {"onNewChatMessage": {"text": "alive"}}}
    await session.close()


async def test_disconnect_during_every_step(
    subprotocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Disconnect during init, during subscribe, during a sync resolver in a thread and
    during publish: nothing leaks."""
    baseline_tasks = len(asyncio.all_tasks())
    steps = [
        [],  # before init
        ['{"type": "connection_init"}'],  # during init
        ["subscription { onSlowPublish(delay: 0.2) { value } }"],  # during subscribe
        ["{ syncSleep(seconds: 0.2) }"],  # a sync resolver running in a thread
        ["subscription { onSlowPublish { value } }", "publish"],  # during publish
    ]
    for step in steps:
        communicator = WebsocketCommunicator(app, "/graphql/", subprotocols=[subprotocol])
        await communicator.connect()
        session = WsSession(communicator, subprotocol)
        for action in step:
            if action.startswith('{"type"'):
                await session.send_text(action)
            elif action == "publish":
                await session.result("x")  # the confirmation
                await OnSlowPublish.broadcast(payload=1)
            else:
                await session.init()
                await session.start("x", action)
        await asyncio.sleep(0.02)
        await communicator.disconnect(code=1006)
    await asyncio.sleep(0.3)  # let the abandoned thread finish its sleep
    assert get_fanout("default").members == {}
    assert our_groups() == {}
    assert len(asyncio.all_tasks()) == baseline_tasks
    # Nothing was logged as an error: every disconnect path is an ordinary one.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
