"""Live subscriptions after a failure of the channel layer (in memory, failures injected):
once the fan-out has joined its groups again, resumable ones catch up from the history;
the others go on, and their loss is logged."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest
from channels.layers import channel_layers

import channels_graphql_typed as cgt
from channels_graphql_typed._fanout import get_fanout
from channels_graphql_typed._replay import history_for
from tests.replay_subscriptions import OnPlainTick, OnTick
from tests.test_fanout import FlakyLayer, until
from tests.test_replay import confirmed, subscribe, tick

if TYPE_CHECKING:
    from collections.abc import Iterator

    from channels_graphql_typed._fanout import FanOut
    from tests.helpers import WsSession

PLAIN_TICKS = "subscription { onPlainTick { number } }"


class RestartingLayer(FlakyLayer):
    """Fails like channels-redis' core layer on a Redis that restarts, and lets the test
    hold the fan-out's re-join: broadcasts sent while it is held reach nobody."""

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.joins = asyncio.Event()
        self.joins.set()

    async def group_add(self, group: str, channel: str) -> None:
        self.check()
        await self.joins.wait()
        await super().group_add(group, channel)


@pytest.fixture
def layer(settings: Any) -> Iterator[RestartingLayer]:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.RestartingLayer"}}
    channel_layers.backends.clear()
    layer = channel_layers["default"]
    assert isinstance(layer, RestartingLayer)
    yield layer
    channel_layers.backends.clear()


async def fail(layer: RestartingLayer, fanout: FanOut) -> None:
    """The layer fails and comes back without this process's memberships; the re-join
    is held until the test releases ``layer.joins``."""
    layer.joins.clear()
    layer.down = True
    await until(lambda: fanout.health.failing)
    layer.groups.clear()


async def answer_again(layer: RestartingLayer, fanout: FanOut) -> None:
    layer.down = False
    await until(lambda: not fanout.health.failing)


async def plain_tick(session: WsSession) -> int:
    result = await session.result("s")
    number: int = result["data"]["onPlainTick"]["number"]
    return number


async def test_resumable_subscriptions_catch_up_after_the_layer_failed(
    layer: RestartingLayer, subprotocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    early = await subscribe(subprotocol)
    await confirmed(early)
    plain = await subscribe(subprotocol, query=PLAIN_TICKS)
    await confirmed(plain)
    for number in (0, 1):
        await OnTick.broadcast(payload=number, group="a")
    assert [(await tick(early))[0] for _ in range(2)] == [0, 1]
    # Joined after those: it has received nothing when the layer fails.
    late = await subscribe(subprotocol)
    await confirmed(late)
    await OnPlainTick.broadcast(payload=10)
    assert await plain_tick(plain) == 10
    fanout = get_fanout("default")

    with caplog.at_level(logging.WARNING, logger="channels_graphql_typed"):
        await fail(layer, fanout)
        # Kept in the history, then the send fails: raised to the caller.
        with pytest.raises(ConnectionError):
            await OnTick.broadcast(payload=2, group="a")
        await answer_again(layer, fanout)
        # Between the layer's return and the re-join: sent, and received by nobody.
        await OnTick.broadcast(payload=3, group="a")
        await OnTick.broadcast(payload=-1, group="a")  # skipped by publish
        await OnTick.broadcast(payload=100, group="b")  # not these subscribers' group
        await OnTick.broadcast(payload=4)  # the class-wide group
        await OnPlainTick.broadcast(payload=11)  # lost for the plain subscriber
        layer.joins.set()
        await until(lambda: len(layer.groups) == len(fanout.members))
        await OnTick.broadcast(payload=5, group="a")  # live again
        await OnPlainTick.broadcast(payload=12)

        assert [(await tick(early))[0] for _ in range(4)] == [2, 3, 4, 5]
        assert [(await tick(late))[0] for _ in range(4)] == [2, 3, 4, 5]
        assert await plain_tick(plain) == 12
        for session in (early, late, plain):
            assert await session.nothing()  # nothing twice
    losses = [record for record in caplog.records if "not resumable" in record.getMessage()]
    assert len(losses) == 1, caplog.text
    assert "1 subscriptions" in losses[0].getMessage()
    assert " UTC (" in losses[0].getMessage()
    for session in (early, late, plain):
        await session.close()


async def test_a_catch_up_past_the_window_gets_events_missed(
    layer: RestartingLayer, subprotocol: str
) -> None:
    session = await subscribe(subprotocol)
    await confirmed(session)
    await OnTick.broadcast(payload=0, group="a")
    assert (await tick(session))[0] == 0
    fanout = get_fanout("default")
    await fail(layer, fanout)
    await answer_again(layer, fanout)
    for number in range(1, 61):  # the window holds 50
        await OnTick.broadcast(payload=number, group="a")
    layer.joins.set()
    signal = await session.result("s")
    assert signal["data"] is None
    assert [error["extensions"]["code"] for error in signal["errors"]] == [cgt.EVENTS_MISSED]
    assert [(await tick(session))[0] for _ in range(50)] == list(range(11, 61))
    await until(lambda: len(layer.groups) == len(fanout.members))
    await OnTick.broadcast(payload=99, group="a")
    assert (await tick(session))[0] == 99
    assert await session.nothing()
    await session.close()


async def test_a_catch_up_whose_read_fails_reads_again_once_the_layer_answers(
    layer: RestartingLayer, subprotocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await subscribe(subprotocol)
    await confirmed(session)
    await OnTick.broadcast(payload=0, group="a")
    assert (await tick(session))[0] == 0
    fanout = get_fanout("default")
    history = history_for(layer)
    read = history.read
    failures: list[tuple[int, int]] = []

    async def failing_once(stream: str, start: tuple[int, int], count: int) -> Any:
        if not failures:
            failures.append(start)
            raise ConnectionError("Connection reset by peer")
        return await read(stream, start, count)

    await fail(layer, fanout)
    await answer_again(layer, fanout)
    await OnTick.broadcast(payload=1, group="a")
    monkeypatch.setattr(history, "read", failing_once)
    layer.joins.set()
    assert (await tick(session))[0] == 1
    assert len(failures) == 1
    await until(lambda: len(layer.groups) == len(fanout.members))
    await OnTick.broadcast(payload=2, group="a")
    assert (await tick(session))[0] == 2
    assert await session.nothing()
    await session.close()
