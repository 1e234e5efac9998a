"""Resumable subscriptions: event ids, the history, resume, missed events (in-memory layer)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import channels_graphql_typed as cgt
from channels_graphql_typed._layer_messages import MalformedLayerMessage, read_layer_message
from channels_graphql_typed._replay import (
    MalformedEventId,
    MemoryHistory,
    ResumeState,
    parse_event_id,
)
from tests.helpers import WsSession
from tests.replay_subscriptions import OnPlainTick, OnTick, ReplayConsumer

app = ReplayConsumer.as_asgi()
TICKS = "subscription($room: String!) { onTick(room: $room) { number } }"
ID = cgt.EVENT_ID_EXTENSION


async def subscribe(
    subprotocol: str, room: str = "a", after: object = None, query: str = TICKS
) -> WsSession:
    session = await WsSession.open(app, subprotocol)
    payload: dict[str, Any] = {"query": query, "variables": {"room": room}}
    if after is not None:
        payload["extensions"] = {cgt.RESUME_AFTER_EXTENSION: after}
    await session.send({"type": session.start_type, "id": "s", "payload": payload})
    return session


async def confirmed(session: WsSession) -> None:
    assert await session.result("s") == {"data": None}


async def tick(session: WsSession) -> tuple[int, str]:
    result = await session.result("s")
    assert set(result) == {"data", "extensions"}, result
    return result["data"]["onTick"]["number"], result["extensions"][ID]


# --- ids --------------------------------------------------------------------------------


async def test_every_event_has_a_strictly_increasing_id(subprotocol: str) -> None:
    session = await subscribe(subprotocol)
    await confirmed(session)
    for number in range(5):
        await OnTick.broadcast(payload=number, group="a" if number % 2 else None)
    received = [await tick(session) for _ in range(5)]
    assert [number for number, _ in received] == list(range(5))
    ids = [parse_event_id(event_id) for _, event_id in received]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    await session.close()


async def test_a_class_that_does_not_opt_in_has_no_ids(subprotocol: str) -> None:
    session = await subscribe(subprotocol, query="subscription { onPlainTick { number } }")
    await confirmed(session)
    await OnPlainTick.broadcast(payload=1)
    assert await session.result("s") == {"data": {"onPlainTick": {"number": 1}}}
    await session.close()


# --- resume -------------------------------------------------------------------------------


async def test_resume_delivers_what_was_missed_then_live_events(subprotocol: str) -> None:
    first = await subscribe(subprotocol)
    await confirmed(first)
    await OnTick.broadcast(payload=1, group="a")
    _, last_id = await tick(first)
    await first.close()
    await OnTick.broadcast(payload=2, group="a")
    await OnTick.broadcast(payload=3, group="b")  # another group: not this subscriber's
    await OnTick.broadcast(payload=-1, group="a")  # skipped by publish, replayed or not
    await OnTick.broadcast(payload=4)  # the class-wide group
    second = await subscribe(subprotocol, after=last_id)
    await confirmed(second)
    await OnTick.broadcast(payload=5, group="a")
    numbers = [(await tick(second))[0] for _ in range(3)]
    assert numbers == [2, 4, 5]
    assert await second.nothing()
    await second.close()


async def test_resume_from_the_latest_id_replays_nothing(subprotocol: str) -> None:
    first = await subscribe(subprotocol)
    await confirmed(first)
    await OnTick.broadcast(payload=1, group="a")
    _, last_id = await tick(first)
    await first.close()
    second = await subscribe(subprotocol, after=last_id)
    await confirmed(second)
    assert await second.nothing()
    await OnTick.broadcast(payload=2, group="a")
    assert (await tick(second))[0] == 2
    await second.close()


async def test_an_id_older_than_the_window_gets_events_missed(subprotocol: str) -> None:
    first = await subscribe(subprotocol)
    await confirmed(first)
    await OnTick.broadcast(payload=0, group="a")
    _, last_id = await tick(first)
    await first.close()
    for number in range(1, 61):  # the window holds 50
        await OnTick.broadcast(payload=number, group="a")
    second = await subscribe(subprotocol, after=last_id)
    await confirmed(second)
    signal = await second.result("s")
    assert signal["data"] is None
    assert [error["extensions"]["code"] for error in signal["errors"]] == [cgt.EVENTS_MISSED]
    replayed = [(await tick(second))[0] for _ in range(50)]
    assert replayed == list(range(11, 61))
    await OnTick.broadcast(payload=99, group="a")
    assert (await tick(second))[0] == 99
    await second.close()


async def test_resuming_a_class_that_does_not_opt_in_gets_events_missed(subprotocol: str) -> None:
    session = await subscribe(
        subprotocol, query="subscription { onPlainTick { number } }", after="1-0"
    )
    await confirmed(session)
    signal = await session.result("s")
    assert signal["errors"][0]["extensions"] == {"code": cgt.EVENTS_MISSED}
    await OnPlainTick.broadcast(payload=7)
    assert await session.result("s") == {"data": {"onPlainTick": {"number": 7}}}
    await session.close()


@pytest.mark.parametrize("cursor", ["", "abc", "1-", "-1", "1-2-3", "1" * 30 + "-0", 5, [], {}])
async def test_a_malformed_resume_id_is_refused_clearly(subprotocol: str, cursor: object) -> None:
    session = await subscribe(subprotocol, after=cursor)
    message = await session.receive()
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert cgt.RESUME_AFTER_EXTENSION in errors[0]["message"], errors
    await session.close()


async def test_resume_while_broadcasting_has_no_gap_and_no_duplicate(subprotocol: str) -> None:
    first = await subscribe(subprotocol)
    await confirmed(first)
    await OnTick.broadcast(payload=0, group="a")
    _, last_id = await tick(first)
    await first.close()
    for number in range(1, 11):
        await OnTick.broadcast(payload=number, group="a")

    async def broadcast_more() -> None:
        for number in range(11, 41):
            await OnTick.broadcast(payload=number, group="a")
            await asyncio.sleep(0)

    sender = asyncio.ensure_future(broadcast_more())
    second = await subscribe(subprotocol, after=last_id)
    await sender
    received: list[int] = []
    while len(received) < 40:
        result = await second.result("s")
        if result == {"data": None}:
            continue  # the confirmation, wherever the broadcasts put it
        received.append(result["data"]["onTick"]["number"])
    assert received == list(range(1, 41))
    assert await second.nothing()
    await second.close()


# --- the history and the resume state, alone ----------------------------------------------


async def test_memory_history_keeps_the_last_events_in_order() -> None:
    history = MemoryHistory()
    replay = cgt.Replay(events=3)
    ids = [await history.append("s", replay, "g", bytes([n])) for n in range(5)]
    assert [parse_event_id(i) for i in ids] == sorted(parse_event_id(i) for i in ids)
    entries = await history.read("s", (0, 0), 10)
    assert [entry.data for entry in entries] == [b"\x02", b"\x03", b"\x04"]


async def test_memory_history_keeps_a_time_window(monkeypatch: pytest.MonkeyPatch) -> None:
    history = MemoryHistory()
    replay = cgt.Replay(events=None, seconds=10)
    clock = [100.0]
    monkeypatch.setattr("channels_graphql_typed._replay.time.monotonic", lambda: clock[0])
    await history.append("s", replay, "g", b"old")
    clock[0] = 120.0
    await history.append("s", replay, "g", b"new")
    assert [entry.data for entry in await history.read("s", (0, 0), 10)] == [b"new"]


async def test_resume_state_pages_through_a_long_history() -> None:
    history = MemoryHistory()
    replay = cgt.Replay(events=2000)
    first = await history.append("s", replay, "mine", b"0")
    for number in range(1, 1001):
        await history.append("s", replay, "mine" if number % 2 else "other", str(number).encode())
    state = ResumeState(history, "s", parse_event_id(first), {"mine"})
    await state.begin()
    assert not state.missed
    replayed = []
    while (entry := await state.next_replayed()) is not None:
        replayed.append(int(entry.data))
    assert replayed == list(range(1, 1001, 2))
    assert state.done


@pytest.mark.parametrize(
    "arguments",
    [
        {"events": 0},
        {"events": True},
        {"events": 1.5},
        {"seconds": 0},
        {"seconds": float("nan")},
        {"events": None, "seconds": None},
        {"seconds": "1"},
    ],
)
def test_replay_refuses_bad_bounds(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Replay"):
        cgt.Replay(**arguments)


def test_replay_must_be_a_replay() -> None:
    with pytest.raises(TypeError, match="must be a Replay"):

        class OnWrong(cgt.Subscription[int]):
            replay = 100  # type: ignore[assignment]
            number: int


@pytest.mark.parametrize(
    "value", ["", "1", "a-1", "1-b", b"\xff", None, 1, "99999999999999999999-0"]
)
def test_parse_event_id_refuses_what_is_not_an_id(value: object) -> None:
    with pytest.raises(MalformedEventId):
        parse_event_id(value)


# --- the channel layer's messages (untrusted) ---------------------------------------------


@pytest.mark.parametrize("event_id", ["", "x-1", 5, None, ["1-0"], "1-0" * 20])
def test_a_notify_message_with_a_malformed_event_id_is_refused(event_id: object) -> None:
    message = {"type": "cgt.notify", "group": "g", "payload": b"x", "event_id": event_id}
    if event_id is None:
        assert "event_id" not in read_layer_message(message)
        return
    with pytest.raises(MalformedLayerMessage, match="event id"):
        read_layer_message(message)


def test_a_notify_message_keeps_its_event_id() -> None:
    message = {"type": "cgt.notify", "group": "g", "payload": b"x", "event_id": "12-3"}
    assert read_layer_message(message) == message


@pytest.mark.parametrize("token", [None, 5, "t" * 65])
def test_a_join_confirmation_without_a_valid_token_is_refused(token: object) -> None:
    with pytest.raises(MalformedLayerMessage, match="token"):
        read_layer_message({"type": "cgt.joined", "group": "g", "token": token})


async def test_a_history_that_fails_during_the_replay_ends_the_stream_with_an_error(
    subprotocol: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    first = await subscribe(subprotocol)
    await confirmed(first)
    await OnTick.broadcast(payload=0, group="a")
    _, last_id = await tick(first)
    await first.close()
    await OnTick.broadcast(payload=1, group="a")
    reads = 0
    original = MemoryHistory.read

    async def failing_read(self: MemoryHistory, *arguments: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads > 1:
            raise ConnectionError("redis://10.0.0.1:6379 is unreachable")
        return await original(self, *arguments)

    monkeypatch.setattr(MemoryHistory, "read", failing_read)
    second = await subscribe(subprotocol, after=last_id)
    await confirmed(second)
    assert (await tick(second))[0] == 1
    failure = await second.result("s")
    assert failure["errors"][0]["message"] == "Internal server error"
    assert "10.0.0.1" not in str(failure)
    assert "replay history of OnTick failed" in caplog.text
    await second.close()
