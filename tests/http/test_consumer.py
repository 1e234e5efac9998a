"""GraphqlHttpConsumer in memory: JSON responses, event streams, disconnects."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.testing import ApplicationCommunicator, HttpCommunicator

from channels_graphql_typed import (
    GraphqlHttpConsumer,
    GraphqlServer,
    GraphqlWsConsumer,
    OperationRejected,
)
from tests.schema import schema as query_schema
from tests.subscriptions import UNSUBSCRIBED, ChatEvent, OnNewChatMessage
from tests.subscriptions import schema as subscription_schema

GRAPHQL_RESPONSE = "application/graphql-response+json"
CHAT = "subscription($room: String!) { onNewChatMessage(chatroom: $room) { text } }"


class QueryHttpConsumer(GraphqlHttpConsumer):
    schema = query_schema
    allowed_origins = ("https://chat.example.com",)

    async def on_operation(self, id: str, payload: Any) -> None:
        if "forbidden" in payload["query"]:
            raise OperationRejected("This operation is not allowed")


class ChatHttpConsumer(GraphqlHttpConsumer):
    schema = subscription_schema
    sse_heartbeat_interval = 0.05


query_app = QueryHttpConsumer.as_asgi()
chat_app = ChatHttpConsumer.as_asgi()


@pytest.fixture(autouse=True)
def _clear_records() -> None:
    UNSUBSCRIBED.clear()


async def post(
    payload: object,
    *,
    accept: str = GRAPHQL_RESPONSE,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, dict[bytes, bytes], Any]:
    communicator = HttpCommunicator(
        query_app,
        "POST",
        "/graphql/",
        json.dumps(payload).encode(),
        [(b"content-type", b"application/json"), (b"accept", accept.encode()), *(headers or [])],
    )
    answer = await communicator.get_response()
    await communicator.wait()
    return answer["status"], dict(answer["headers"]), json.loads(answer["body"])


async def test_a_query() -> None:
    status, headers, answer = await post({"query": '{ hello(name: "http") }'})
    assert (status, answer) == (200, {"data": {"hello": "Hello, http!"}})
    assert headers[b"content-type"] == b"application/graphql-response+json; charset=utf-8"


async def test_a_mutation() -> None:
    status, _, answer = await post({"query": 'mutation { echo(text: "x") }'})
    assert (status, answer) == (200, {"data": {"echo": "x"}})


@pytest.mark.parametrize(("accept", "status"), [(GRAPHQL_RESPONSE, 400), ("application/json", 200)])
@pytest.mark.parametrize(
    "query",
    ["{", "{ nope }", "query($n: String!) { hello(name: $n) }"],
    ids=["parse", "validate", "variables"],
)
async def test_request_errors(accept: str, status: int, query: str) -> None:
    got, _, answer = await post({"query": query}, accept=accept)
    assert got == status
    assert answer["errors"]
    assert ("data" in answer) is (accept == "application/json" and "$n" in query)


async def test_on_operation_refuses() -> None:
    status, _, answer = await post({"query": "{ forbidden: hello }"})
    assert (status, answer) == (403, {"errors": [{"message": "This operation is not allowed"}]})


async def test_a_mutation_over_get_is_refused() -> None:
    communicator = HttpCommunicator(query_app, "GET", '/graphql/?query=mutation{echo(text:"x")}')
    answer = await communicator.get_response()
    assert answer["status"] == 405
    assert (b"allow", b"POST") in answer["headers"]


async def test_a_foreign_origin_is_refused() -> None:
    status, _, answer = await post(
        {"query": "{ hello }"}, headers=[(b"origin", b"https://evil.example")]
    )
    assert status == 403
    assert answer["errors"][0]["message"] == "Origin not allowed"
    status, _, _ = await post(
        {"query": "{ hello }"}, headers=[(b"origin", b"https://chat.example.com")]
    )
    assert status == 200


async def test_a_subscription_over_plain_http_is_refused() -> None:
    status, _, answer = await post({"query": "subscription { count(to: 2) }"})
    assert status == 400
    assert "text/event-stream" in answer["errors"][0]["message"]


class Stream:
    """An SSE request read event by event."""

    def __init__(self, application: Any, payload: object) -> None:
        # asgiref leaves ApplicationCommunicator.__init__ unannotated.
        self.communicator = ApplicationCommunicator(  # type: ignore[no-untyped-call]
            application,
            {
                "type": "http",
                "http_version": "1.1",
                "method": "POST",
                "path": "/graphql/",
                "query_string": b"",
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"accept", b"text/event-stream"),
                ],
            },
        )
        self.payload = payload
        self.buffer = b""
        self.ended = False

    async def open(self) -> dict[str, Any]:
        await self.communicator.send_input(
            {"type": "http.request", "body": json.dumps(self.payload).encode()}
        )
        start: dict[str, Any] = await self.communicator.receive_output(3)
        assert start["type"] == "http.response.start"
        return start

    async def event(self) -> tuple[str, Any]:
        """The next event (comments skipped)."""
        while True:
            if b"\n\n" in self.buffer:
                block, self.buffer = self.buffer.split(b"\n\n", 1)
                if block.startswith(b":"):
                    continue
                lines = dict(line.split(b":", 1) for line in block.split(b"\n"))
                data = lines[b"data"].strip()
                return lines[b"event"].strip().decode(), json.loads(data) if data else None
            chunk = await self.communicator.receive_output(3)
            assert chunk["type"] == "http.response.body"
            self.buffer += chunk["body"]
            if not chunk.get("more_body", False):
                self.ended = True

    async def end(self) -> bytes:
        """What remains of the body up to its end."""
        while not self.ended:
            chunk = await self.communicator.receive_output(3)
            self.buffer += chunk["body"]
            self.ended = not chunk.get("more_body", False)
        return self.buffer

    async def comments(self) -> int:
        chunk = await self.communicator.receive_output(3)
        return int(chunk["body"] == b":\n\n")


async def test_sse_subscription_receives_broadcasts_and_leaves_on_disconnect() -> None:
    stream = Stream(chat_app, {"query": CHAT, "variables": {"room": "kittens"}})
    start = await stream.open()
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"cache-control"] == b"no-cache"
    assert headers[b"x-accel-buffering"] == b"no"
    assert headers[b"connection"] == b"keep-alive"
    # The headers come once the subscription is in its groups: no broadcast is missed.
    event = ChatEvent(chatroom="kittens", text="meow", sender="alice", sender_channel="x")
    await OnNewChatMessage.broadcast(payload=event, group="kittens")
    assert await stream.event() == ("next", {"data": {"onNewChatMessage": {"text": "meow"}}})
    # Heartbeats keep the idle stream open.
    assert await stream.comments() == 1
    await stream.communicator.send_input({"type": "http.disconnect"})
    await stream.communicator.wait(3)
    assert UNSUBSCRIBED == [("chat", "kittens")]


async def test_sse_subscription_to_its_end() -> None:
    stream = Stream(query_app, {"query": "subscription { count(to: 2) }"})
    assert (await stream.open())["status"] == 200
    assert await stream.event() == ("next", {"data": {"count": 1}})
    assert await stream.event() == ("next", {"data": {"count": 2}})
    assert await stream.event() == ("complete", None)
    assert await stream.end() == b""
    await stream.communicator.wait(3)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('{ hello(name: "sse") }', {"data": {"hello": "Hello, sse!"}}),
        ("{ nope }", None),
    ],
)
async def test_sse_query_and_errors(query: str, expected: object) -> None:
    stream = Stream(query_app, {"query": query})
    assert (await stream.open())["status"] == 200
    kind, data = await stream.event()
    assert kind == "next"
    if expected is None:
        assert "data" not in data
        assert data["errors"]
    else:
        assert data == expected
    assert await stream.event() == ("complete", None)
    assert await stream.end() == b""
    await stream.communicator.wait(3)


async def test_disconnect_while_a_query_runs_cancels_it() -> None:
    stream = Stream(query_app, {"query": "{ asyncSleep(seconds: 30) }"})
    await stream.communicator.send_input(
        {"type": "http.request", "body": json.dumps(stream.payload).encode()}
    )
    await asyncio.sleep(0)
    await stream.communicator.send_input({"type": "http.disconnect"})
    await stream.communicator.wait(3)


class Declaration(GraphqlServer):
    schema = query_schema
    max_query_depth = 2


class DeclaredHttpConsumer(Declaration, GraphqlHttpConsumer):
    pass


class DeclaredWsConsumer(Declaration, GraphqlWsConsumer):
    pass


async def test_one_declaration_serves_both_transports() -> None:
    assert DeclaredHttpConsumer.max_query_depth == DeclaredWsConsumer.max_query_depth == 2
    communicator = HttpCommunicator(
        DeclaredHttpConsumer.as_asgi(),
        "GET",
        "/graphql/?query=%7B+tree+%7B+children(count%3A+1)+%7B+children(count%3A+1)+%7B+label+%7D+%7D+%7D+%7D",
        headers=[(b"accept", GRAPHQL_RESPONSE.encode())],
    )
    answer = await communicator.get_response()
    assert answer["status"] == 400
    assert "more than 2 levels deep" in json.loads(answer["body"])["errors"][0]["message"]
