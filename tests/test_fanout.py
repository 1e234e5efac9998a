"""The fan-out against channel layers that fail: in memory, with failures injected."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from channels.layers import InMemoryChannelLayer

from channels_graphql_typed._channel_layer import end_receive, receive_ends_when_cancelled
from channels_graphql_typed._fanout import FanOut
from channels_graphql_typed._layer_messages import NotifyMessage, group_send, notify_message
from channels_graphql_typed._notification_queue import NotificationQueue, Registration
from channels_graphql_typed._serialization import serialize_payload

if TYPE_CHECKING:
    from collections.abc import Callable


class FlakyLayer(InMemoryChannelLayer):
    """An in-memory layer that fails like channels-redis' core layer when Redis is
    down: every call raises, receives in progress included."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failures = 0

    def check(self) -> None:
        if self.down:
            self.failures += 1
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    async def receive(self, channel: str) -> dict[str, Any]:
        while True:
            self.check()
            try:
                async with asyncio.timeout(0.01):
                    return await super().receive(channel)
            except TimeoutError:
                continue

    async def group_add(self, group: str, channel: str) -> None:
        self.check()
        await super().group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.check()
        await super().group_discard(group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.check()
        await super().group_send(group, message)


async def until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def notification(group: str, value: int) -> NotifyMessage:
    return notify_message(group, serialize_payload(value))


async def test_a_layer_failure_is_logged_once_and_every_group_is_joined_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = FlakyLayer()
    fanout = FanOut(layer, "flaky")
    registration = Registration(NotificationQueue(10, "test"))
    await fanout.join(registration, {"one", "two"})
    with caplog.at_level(logging.INFO, logger="channels_graphql_typed"):
        layer.down = True
        await until(lambda: layer.failures >= 3)  # the receive, then retries
        assert fanout.health.failing
        # Like a Redis restarted without persistence: the memberships are gone.
        layer.groups.clear()
        layer.down = False
        await until(lambda: "one" in layer.groups and "two" in layer.groups)
    assert not fanout.health.failing
    assert fanout.health.episodes == 1
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3, messages
    assert messages[0].startswith("The channel layer 'flaky' failed (ConnectionError: Error 111")
    assert messages[1].startswith("The channel layer 'flaky' answers again, after")
    # Once joined again: the loss window of the subscriptions that cannot catch up.
    assert messages[2].startswith(
        "The fan-out of the channel layer 'flaky' joined its 2 groups again after the "
        "layer's failure: 1 subscriptions of classes that are not resumable missed what "
        "was broadcast to them from "
    ), messages
    await group_send(layer, "two", notification("two", 7))
    assert await registration.queue.get() == 7
    await fanout.leave(registration)
    assert not fanout.listening


async def test_leaving_while_the_layer_fails_still_forgets_the_subscription() -> None:
    layer = FlakyLayer()
    fanout = FanOut(layer, "flaky")
    registration = Registration(NotificationQueue(10, "test"))
    await fanout.join(registration, {"one"})
    layer.down = True
    await fanout.leave(registration)  # does not raise: discarding is best effort
    assert fanout.members == {}
    assert not fanout.listening
    layer.down = False
    await until(lambda: not fanout.health.failing)


class SwallowingLayer(InMemoryChannelLayer):
    """A layer whose receive swallows its first cancellation and goes on receiving, as
    channels-redis' core layer does on Python 3.11 when the cancellation lands in
    redis-py's ``asyncio.wait_for``."""

    swallowed = 0

    async def receive(self, channel: str) -> dict[str, Any]:
        while True:
            try:
                return await super().receive(channel)
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed += 1


async def test_a_receive_that_swallows_its_cancellation_still_ends() -> None:
    layer = SwallowingLayer()
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    await end_receive(layer, channel, receiving)
    assert layer.swallowed == 1
    assert receiving.done()


async def test_the_fan_out_stops_even_when_its_receive_swallows_the_cancellation() -> None:
    layer = SwallowingLayer()
    fanout = FanOut(layer, "swallowing")
    registration = Registration(NotificationQueue(10, "test"))
    await fanout.join(registration, {"one"})
    await asyncio.sleep(0)
    async with asyncio.timeout(2):
        await fanout.leave(registration)
    assert layer.swallowed == 1
    assert not fanout.listening


async def test_a_connection_receive_waits_failures_out() -> None:
    layer = FlakyLayer()
    fanout = FanOut(layer, "flaky")
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(fanout.health.receive(channel))
    layer.down = True
    await until(lambda: fanout.health.failing)
    layer.down = False
    await until(lambda: not fanout.health.failing)
    assert not receiving.done()
    await layer.send(channel, {"type": "hello"})
    assert await receiving == {"type": "hello"}


async def test_a_connection_receive_on_the_in_memory_layer_runs_in_the_callers_task() -> None:
    # No task of its own per waiting connection: the in-memory layer's receive ends when
    # cancelled. One that is not known to (it overrides receive) gets one before 3.12.
    layer = InMemoryChannelLayer()
    assert receive_ends_when_cancelled(layer)
    assert receive_ends_when_cancelled(SwallowingLayer()) == (sys.version_info >= (3, 12))
    fanout = FanOut(layer, "memory")
    channel = await layer.new_channel()
    before = len(asyncio.all_tasks())
    receiving = asyncio.ensure_future(fanout.health.receive(channel))
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before + 1
    await layer.send(channel, {"type": "hello"})
    assert await receiving == {"type": "hello"}
    receiving = asyncio.ensure_future(fanout.health.receive(channel))
    await asyncio.sleep(0)
    receiving.cancel()
    await asyncio.wait({receiving})
    assert receiving.cancelled()
    await layer.send(channel, {"type": "later"})
    assert await fanout.health.receive(channel) == {"type": "later"}


@pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="asyncio.wait_for no longer swallows cancellations"
)
async def test_a_connection_receive_ends_when_cancelled_even_if_the_layer_swallows_it() -> None:
    layer = SwallowingLayer()
    fanout = FanOut(layer, "swallowing")
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(fanout.health.receive(channel))
    await asyncio.sleep(0)
    receiving.cancel()
    async with asyncio.timeout(2):
        await asyncio.wait({receiving})
    assert receiving.cancelled()
    assert layer.swallowed == 1


class SilentPubSubLayer(InMemoryChannelLayer):
    """Looks like channels-redis' pub/sub layer to the fan-out; its group sends fail
    first, then are lost (never delivered)."""

    __module__ = "channels_redis.pubsub"

    def __init__(self) -> None:
        super().__init__()
        self.sends = 0

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.sends += 1
        if self.sends == 1:
            raise ConnectionError("Connection reset by peer")


async def test_a_join_on_the_pubsub_layer_waits_for_its_confirmation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Delivered: the join returns once its own message came back (one is enough).
    layer = InMemoryChannelLayer()
    monkeypatch.setattr(type(layer), "__module__", "channels_redis.pubsub")
    fanout = FanOut(layer, "pubsub")
    registration = Registration(NotificationQueue(10, "Confirmed"))
    await asyncio.wait_for(fanout.join(registration, {"g"}), 5)
    assert "g" in fanout.members
    await fanout.leave(registration)


async def test_an_unconfirmed_join_goes_on_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from channels_graphql_typed import _fanout

    monkeypatch.setattr(_fanout, "JOIN_CONFIRM_TIMEOUT", 0.3)
    layer = SilentPubSubLayer()
    fanout = FanOut(layer, "silent")
    registration = Registration(NotificationQueue(10, "Unconfirmed"))
    with caplog.at_level(logging.WARNING, "channels_graphql_typed"):
        await asyncio.wait_for(fanout.join(registration, {"g"}), 5)
    # The failed send was tried again, and the join went on once the wait was over.
    assert layer.sends >= 2
    assert "g" in fanout.members
    assert [r.getMessage() for r in caplog.records] == [
        "The join of group g was not confirmed within 0.3 s; going on without"
    ]
    await fanout.leave(registration)
