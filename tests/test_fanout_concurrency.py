"""The fan-out's joins and leaves under concurrency, against a layer whose round trips
the test holds: no subscription waits for another's round trips to other groups, and a
group's membership in the layer always matches its local members once a join returns."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

from channels_graphql_typed._fanout import FanOut
from channels_graphql_typed._layer_messages import NOTIFY, group_send, notify_message
from channels_graphql_typed._notification_queue import NotificationQueue, Registration
from channels_graphql_typed._serialization import serialize_payload

HANG = 10
"""Seconds after which a wait that should end at once is a hang (a failure, not a
measure of speed)."""


class HeldLayer(InMemoryChannelLayer):
    """An in-memory layer whose ``group_add`` / ``group_discard`` of a held group wait
    until the test releases it, like a round trip to a slow Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, asyncio.Event] = {}
        self.waiting: collections.Counter[str] = collections.Counter()
        self.calls: list[tuple[str, str]] = []

    def hold(self, group: str) -> asyncio.Event:
        event = self.held[group] = asyncio.Event()
        return event

    async def _pass(self, action: str, group: str) -> None:
        event = self.held.get(group)
        if event is not None:
            self.waiting[group] += 1
            try:
                await event.wait()
            finally:
                self.waiting[group] -= 1
        self.calls.append((action, group))

    async def group_add(self, group: str, channel: str) -> None:
        await self._pass("add", group)
        await super().group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self._pass("discard", group)
        await super().group_discard(group, channel)


def registration() -> Registration:
    return Registration(NotificationQueue(10, "test"))


async def until(condition: Any) -> None:
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)


async def test_a_join_waiting_on_one_group_delays_no_join_of_other_groups() -> None:
    layer = HeldLayer()
    fanout = FanOut(layer, "held")
    release = layer.hold("slow-3")
    many = registration()
    # Like a subscription whose subscribe returned many groups, one of them slow.
    joining = asyncio.ensure_future(fanout.join(many, {f"slow-{n}" for n in range(6)}))
    await until(lambda: layer.waiting["slow-3"] == 1)
    other = registration()
    async with asyncio.timeout(HANG):  # with one process-wide lock: waits for "slow-3"
        await fanout.join(other, {"quick"})
    assert ("add", "quick") in layer.calls
    assert not joining.done()
    release.set()
    await joining
    assert {group for action, group in layer.calls if action == "add"} == {
        *(f"slow-{n}" for n in range(6)),
        "quick",
    }
    await fanout.leave(many)
    await fanout.leave(other)
    assert not fanout.listening


async def test_two_joins_of_one_group_both_return_once_the_layer_has_it() -> None:
    layer = HeldLayer()
    fanout = FanOut(layer, "held")
    release = layer.hold("shared")
    first, second = registration(), registration()
    joining_first = asyncio.ensure_future(fanout.join(first, {"shared"}))
    await until(lambda: layer.waiting["shared"] == 1)
    joining_second = asyncio.ensure_future(fanout.join(second, {"shared"}))
    for _ in range(20):
        await asyncio.sleep(0)
    # The second must not be told it is in the group before the layer has it: a
    # broadcast sent right after its confirmation would be missed.
    assert not joining_second.done()
    release.set()
    await asyncio.gather(joining_first, joining_second)
    assert layer.calls == [("add", "shared")]  # one round trip for both
    channel = fanout.channel
    assert channel is not None
    await group_send(layer, "shared", notify_message("shared", serialize_payload(1)))
    assert await first.queue.get() == 1
    assert await second.queue.get() == 1
    await fanout.leave(first)
    await fanout.leave(second)


async def test_a_join_during_the_discard_of_its_group_adds_it_again() -> None:
    layer = HeldLayer()
    fanout = FanOut(layer, "held")
    keeper, leaver, joiner = registration(), registration(), registration()
    await fanout.join(keeper, {"other"})  # keeps the process's channel in use
    await fanout.join(leaver, {"room"})
    release = layer.hold("room")
    leaving = asyncio.ensure_future(fanout.leave(leaver))
    await until(lambda: layer.waiting["room"] == 1)  # the discard's round trip
    joining = asyncio.ensure_future(fanout.join(joiner, {"room"}))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not joining.done()
    release.set()
    await asyncio.gather(leaving, joining)
    assert layer.calls[-2:] == [("discard", "room"), ("add", "room")]
    assert fanout.channel in layer.groups["room"]
    await group_send(layer, "room", notify_message("room", serialize_payload(2)))
    assert await joiner.queue.get() == 2
    await fanout.leave(joiner)
    await fanout.leave(keeper)
    assert not fanout.listening


async def test_a_join_while_the_last_leave_retires_the_channel_gets_a_new_one() -> None:
    layer = HeldLayer()
    fanout = FanOut(layer, "held")
    leaver, joiner = registration(), registration()
    await fanout.join(leaver, {"room"})
    old_channel = fanout.channel
    release = layer.hold("room")
    leaving = asyncio.ensure_future(fanout.leave(leaver))
    await until(lambda: layer.waiting["room"] == 1)
    joining = asyncio.ensure_future(fanout.join(joiner, {"room"}))
    release.set()
    await asyncio.gather(leaving, joining)
    assert fanout.listening
    assert fanout.channel is not None
    assert fanout.channel in layer.groups["room"]
    await group_send(layer, "room", notify_message("room", serialize_payload(3)))
    assert await joiner.queue.get() == 3
    await fanout.leave(joiner)
    assert not fanout.listening
    assert old_channel not in layer.groups.get("room", {})


class JunkLayer(InMemoryChannelLayer):
    """An in-memory layer that hands the fan-out what a hostile writer could put on a
    Redis layer: values that are not messages, and bytes the layer cannot decode."""

    def __init__(self) -> None:
        super().__init__()
        self.junk: collections.deque[Any] = collections.deque()

    async def receive(self, channel: str) -> dict[str, Any]:
        if self.junk:
            item = self.junk.popleft()
            if isinstance(item, Exception):
                raise item
            result: Any = item
            return result  # type: ignore[no-any-return]
        return await super().receive(channel)


@pytest.mark.parametrize(
    "junk",
    [
        ["not a message"],
        [42],
        [None],
        [[NOTIFY, "room"]],
        [{"type": NOTIFY}],
        [{"type": NOTIFY, "group": 7, "payload": b""}],
        [{"type": ["unhashable"], "group": "room"}],
        [{"type": "cgt.other", "group": "room"}],
        [{"type": NOTIFY, "group": "room", "payload": "text, not bytes"}],
        [{"type": NOTIFY, "group": "room", "payload": b"\xc1\x02garbage"}],
        [ValueError("unpack(b) received extra data.")],
    ],
    ids=repr,
)
async def test_the_listener_survives_any_message_and_logs_it_once(
    junk: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    layer = JunkLayer()
    fanout = FanOut(layer, "junk")
    member = registration()
    with caplog.at_level(logging.WARNING, logger="channels_graphql_typed"):
        layer.junk.extend(junk * 3)
        await fanout.join(member, {"room"})
        await until(lambda: not layer.junk)
        await group_send(layer, "room", notify_message("room", serialize_payload(4)))
        async with asyncio.timeout(HANG):
            assert await member.queue.get() == 4
    assert fanout.listening
    assert fanout.health.malformed == 3
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1, warnings  # once for the episode, not once per message
    assert warnings[0].startswith("Dropped a malformed message from the channel layer 'junk'")
    assert not fanout.health.failing  # a bad message is not a failure of the layer
    await fanout.leave(member)
