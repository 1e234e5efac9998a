"""FanOut.leave() does its bookkeeping only after acquiring the fan-out's lock. A
subscription whose task is cancelled twice (client `complete`, then the socket closes:
StopOperation cancels the task, websocket_disconnect cancels it again) while another
subscription holds the lock (a join waiting on a slow group_add, e.g. Redis) is never
removed: its registration and group membership stay in the process forever."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS
from channels_graphql_typed._fanout import get_fanout
from tests.helpers import WsSession
from tests.subscriptions import ConfirmingConsumer

if TYPE_CHECKING:
    import pytest

app = ConfirmingConsumer.as_asgi()


async def test_complete_then_disconnect_while_lock_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    fanout = get_fanout("default")
    first = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
    await first.start("a", 'subscription { onMeasurement(sensors: ["leak-a"]) { value } }')
    assert await first.result("a") == {"data": None}
    group_a = [g for g in fanout.members if g.endswith("u_leak-a")]
    assert group_a

    real_group_add = fanout.layer.group_add

    async def slow_group_add(group: str, channel: str) -> Any:
        if group.endswith("u_leak-b"):
            await asyncio.sleep(0.5)  # a slow Redis round trip
        return await real_group_add(group, channel)

    monkeypatch.setattr(fanout.layer, "group_add", slow_group_add)
    second = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
    await second.start("b", 'subscription { onMeasurement(sensors: ["leak-b"]) { value } }')
    await asyncio.sleep(0.05)  # second's join now holds the fan-out lock

    # The client leaves the page: complete its subscription, then close the socket.
    await first.stop("a")
    await first.close()

    assert await second.result("b") == {"data": None}
    await second.stop("b")
    await second.close()
    await asyncio.sleep(0.1)
    leftover = {g: len(m) for g, m in fanout.members.items()}
    assert leftover == {}, f"registrations left behind: {leftover}"


async def test_a_queue_limit_below_one_is_a_clear_operation_error() -> None:
    from channels_graphql_typed import GraphqlWsConsumer
    from tests.subscriptions import schema as typed_schema

    class ZeroLimitConsumer(GraphqlWsConsumer):
        schema = typed_schema
        notification_queue_limit = 0

    session = await WsSession.open(ZeroLimitConsumer.as_asgi(), GRAPHQL_TRANSPORT_WS)
    await session.start("z", "subscription { anything { value } }")
    payload = await session.result("z")
    assert "notification_queue_limit must be at least 1" in payload["errors"][0]["message"]
    await session.completed("z")
    assert get_fanout("default").members == {}
    await session.close()
