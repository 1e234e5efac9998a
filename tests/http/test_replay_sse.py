"""Resumable subscriptions over SSE: each event's ``id:`` is its event id, and a request
with ``Last-Event-ID`` resumes after it (in memory, in-memory layer)."""

from __future__ import annotations

import json
from typing import Any

import strawberry
from channels.testing import ApplicationCommunicator

import channels_graphql_typed as cgt
from tests.replay_subscriptions import OnTick, Subscription
from tests.schema import Query

TICKS = "subscription($room: String!) { onTick(room: $room) { number } }"


class ReplayHttpConsumer(cgt.GraphqlHttpConsumer):
    schema = strawberry.Schema(query=Query, subscription=Subscription)


app = ReplayHttpConsumer.as_asgi()


class EventStream:
    """One SSE request, read event by event as (fields) dicts."""

    def __init__(self, last_event_id: str | None = None) -> None:
        headers = [(b"content-type", b"application/json"), (b"accept", b"text/event-stream")]
        if last_event_id is not None:
            headers.append((b"last-event-id", last_event_id.encode()))
        # asgiref leaves ApplicationCommunicator.__init__ unannotated.
        self.communicator = ApplicationCommunicator(  # type: ignore[no-untyped-call]
            app,
            {
                "type": "http",
                "http_version": "1.1",
                "method": "POST",
                "path": "/graphql/",
                "query_string": b"",
                "headers": headers,
            },
        )
        self.buffer = b""

    async def open(self, room: str) -> None:
        body = json.dumps({"query": TICKS, "variables": {"room": room}}).encode()
        await self.communicator.send_input({"type": "http.request", "body": body})
        start = await self.communicator.receive_output(3)
        assert start["type"] == "http.response.start"
        assert start["status"] == 200

    async def event(self) -> dict[str, Any]:
        while True:
            if b"\n\n" in self.buffer:
                block, self.buffer = self.buffer.split(b"\n\n", 1)
                if block.startswith(b":"):
                    continue
                fields = dict(line.split(b": ", 1) for line in block.split(b"\n"))
                return {key.decode(): value.decode() for key, value in fields.items()}
            chunk = await self.communicator.receive_output(3)
            self.buffer += chunk["body"]

    async def close(self) -> None:
        await self.communicator.send_input({"type": "http.disconnect"})
        await self.communicator.wait(3)


def number(event: dict[str, Any]) -> int:
    value: int = json.loads(event["data"])["data"]["onTick"]["number"]
    return value


async def test_sse_events_carry_their_id_and_last_event_id_resumes() -> None:
    first = EventStream()
    await first.open("sse")
    await OnTick.broadcast(payload=1, group="sse")
    event = await first.event()
    assert event["event"] == "next"
    assert number(event) == 1
    assert event["id"] == json.loads(event["data"])["extensions"][cgt.EVENT_ID_EXTENSION]
    await first.close()
    await OnTick.broadcast(payload=2, group="sse")
    await OnTick.broadcast(payload=3, group="sse")
    second = EventStream(last_event_id=event["id"])
    await second.open("sse")
    assert [number(await second.event()) for _ in range(2)] == [2, 3]
    await OnTick.broadcast(payload=4, group="sse")
    assert number(await second.event()) == 4
    await second.close()


async def test_a_malformed_last_event_id_is_refused_clearly() -> None:
    stream = EventStream(last_event_id="yesterday")
    await stream.open("sse-bad")
    event = await stream.event()
    errors = json.loads(event["data"])["errors"]
    assert cgt.RESUME_AFTER_EXTENSION in errors[0]["message"]
    assert "id" not in event
    await stream.close()
