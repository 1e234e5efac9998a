"""Churn over every HTTP transport against a real server: clients of Server-Sent Events
(distinct connections mode), of Apollo's multipart subscriptions and of plain GraphQL
over HTTP that go away in the middle of every step, over real sockets to uvicorn, leave
no task, fan-out registration or group behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from typing import Final

import pytest
from channels.layers import get_channel_layer

from channels_graphql_typed import GraphqlHttpConsumer
from channels_graphql_typed._fanout import get_fanout
from tests.client.conftest import HOST, eventually, serve
from tests.subscriptions import UNSUBSCRIBED, ChatEvent, OnNewChatMessage, OnSlowPublish
from tests.subscriptions import schema as subscription_schema

CHAT: Final = "subscription($room: String!) { onNewChatMessage(chatroom: $room) { text } }"
CYCLES: Final = 10
TIMEOUT: Final = 5.0
SSE: Final = "text/event-stream"
MULTIPART: Final = "multipart/mixed;subscriptionSpec=1.0"
JSON: Final = "application/graphql-response+json"
STREAMS: Final = {
    # What a stream's response starts with once the subscription is in its groups, and
    # its heartbeat: a comment, or the opening delimiter and an empty part.
    SSE: (b"content-type: text/event-stream", b":\n\n"),
    MULTIPART: (b"content-type: multipart/mixed;boundary=graphql", b"{}"),
}


class StreamingConsumer(GraphqlHttpConsumer):
    schema = subscription_schema
    sse_heartbeat_interval = 0.05
    multipart_heartbeat_interval = 0.05


class RawHttpRequest:
    """One request over a socket of its own, written and read by hand, so that the
    client can leave at any point: mid-body, before the response, while it streams."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, accept: str
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.accept = accept
        self.received = b""

    @classmethod
    async def open(cls, port: int, accept: str) -> RawHttpRequest:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer, accept)

    def post(self, payload: object, *, partial: bool = False) -> None:
        body = json.dumps(payload).encode()
        head = (
            "POST /graphql/ HTTP/1.1\r\n"
            f"Host: {HOST}\r\n"
            "Content-Type: application/json\r\n"
            f"Accept: {self.accept}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + (body[: len(body) // 2] if partial else body))

    def get(self, payload: dict[str, str]) -> None:
        query = urllib.parse.urlencode(payload)
        head = f"GET /graphql/?{query} HTTP/1.1\r\nHost: {HOST}\r\nAccept: {self.accept}\r\n\r\n"
        self.writer.write(head.encode())

    async def until(self, part: bytes, count: int = 1) -> None:
        """Read until ``part`` was received ``count`` times."""
        async with asyncio.timeout(TIMEOUT):
            while self.received.count(part) < count:
                chunk = await self.reader.read(65536)
                assert chunk, self.received
                self.received += chunk

    async def started(self) -> None:
        """The response's head and its first heartbeat: the stream is open, the
        subscription in its groups."""
        content_type, heartbeat = STREAMS[self.accept]
        await self.until(heartbeat)
        assert self.received.startswith(b"HTTP/1.1 200 "), self.received
        assert content_type in self.received.lower(), self.received

    async def heartbeats(self, count: int) -> None:
        await self.until(STREAMS[self.accept][1], count)

    async def leave(self, *, abruptly: bool) -> None:
        if abruptly:
            self.writer.transport.abort()  # a reset, without a FIN
        else:
            self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def our_groups() -> dict[str, object]:
    layer = get_channel_layer()
    groups: dict[str, object] = getattr(layer, "groups", {})
    return {name: members for name, members in groups.items() if name.startswith("cgt.")}


STEPS: Final = {
    SSE: (
        "partial body",
        "subscribing",
        "in a thread",
        "streaming",
        "publishing",
        "heartbeating",
        "streaming over GET",
        "querying",
    ),
    MULTIPART: (
        "partial body",
        "subscribing",
        "in a thread",
        "streaming",
        "publishing",
        "heartbeating",
        "querying",
    ),
    JSON: ("partial body", "in a thread", "querying", "querying over GET"),
}


async def one_step(port: int, accept: str, step: str, cycle: int) -> None:
    request = await RawHttpRequest.open(port, accept)
    if step == "partial body":
        request.post({"query": CHAT, "variables": {"room": "a"}}, partial=True)
        await asyncio.sleep(0.01)
    elif step == "subscribing":
        request.post({"query": "subscription { onSlowPublish(delay: 0.2) { value } }"})
        await asyncio.sleep(0.01 if cycle else 0.05)
    elif step == "in a thread":
        request.post({"query": "{ syncSleep(seconds: 0.1) }"})
        await asyncio.sleep(0.01 if cycle else 0.05)
    elif step == "streaming":
        request.post({"query": CHAT, "variables": {"room": "b"}})
        await request.started()
    elif step == "publishing":
        request.post({"query": "subscription { onSlowPublish { value } }"})
        await request.started()
        await OnSlowPublish.broadcast(payload=cycle)
    elif step == "heartbeating":
        request.post({"query": "subscription { onTree { label } }"})
        await request.started()
        await request.heartbeats(2)
    elif step == "streaming over GET":
        request.get({"query": CHAT, "variables": json.dumps({"room": "c"})})
        await request.started()
    elif step == "querying over GET":
        request.get({"query": "{ asyncSleep(seconds: 30) }"})
        await asyncio.sleep(0.01)
    else:  # a query under way
        request.post({"query": "{ asyncSleep(seconds: 30) }"})
        await asyncio.sleep(0.01)
    await request.leave(abruptly=cycle % 2 == 1)


@pytest.mark.parametrize("accept", [SSE, MULTIPART, JSON], ids=["sse", "multipart", "json"])
async def test_leaving_during_every_step_leaves_nothing_behind(
    accept: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Leave (closing the socket, or resetting it) before the body is complete, while
    the subscription's subscribe runs, while a sync resolver runs in a thread, while the
    stream is open (POST, and GET for SSE), while an event is published, between
    heartbeats and while a query runs; many times over."""
    UNSUBSCRIBED.clear()
    async with serve(StreamingConsumer.as_asgi()) as server:
        await asyncio.sleep(0.05)
        baseline_tasks = len(asyncio.all_tasks())
        for cycle in range(CYCLES):
            for step in STEPS[accept]:
                await one_step(server.port, accept, step, cycle)
        await asyncio.sleep(0.3)  # let the abandoned threads finish their sleep
        fanout = get_fanout("default")
        await eventually(
            lambda: not fanout.members and len(asyncio.all_tasks()) <= baseline_tasks,
            timeout=TIMEOUT,
        )
        assert not fanout.listening
        assert our_groups() == {}
        if accept in STREAMS:
            assert ("chat", "b") in UNSUBSCRIBED
        if accept == SSE:
            assert ("chat", "c") in UNSUBSCRIBED
        # Nothing was logged as an error: every way of leaving is an ordinary one.
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        # And the machinery still works afterwards.
        stream = SSE if accept == JSON else accept
        request = await RawHttpRequest.open(server.port, stream)
        request.post({"query": CHAT, "variables": {"room": "b"}})
        await request.started()
        event = ChatEvent(chatroom="b", text="alive", sender="x", sender_channel="y")
        await OnNewChatMessage.broadcast(payload=event, group="b")
        await request.until(b'{"onNewChatMessage":{"text":"alive"}}')
        await request.leave(abruptly=False)
        await eventually(lambda: not fanout.members, timeout=TIMEOUT)
