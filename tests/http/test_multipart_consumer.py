"""GraphqlHttpConsumer in memory, answering multipart subscriptions: parts, heartbeats,
the same hooks and limits as the other transports, and disconnects that leave nothing
behind."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar, Final

import pytest
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator

from channels_graphql_typed import GraphqlHttpConsumer, OperationRejected
from channels_graphql_typed._fanout import get_fanout
from tests.schema import CounterContext
from tests.schema import schema as query_schema
from tests.subscriptions import (
    UNSUBSCRIBED,
    ChatEvent,
    OnNewChatMessage,
    OnPersonal,
    OnSlowPublish,
)
from tests.subscriptions import schema as subscription_schema

APOLLO_ACCEPT: Final = (
    "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,"
    "application/graphql-response+json,application/json;q=0.9"
)
CHAT: Final = "subscription($room: String!) { onNewChatMessage(chatroom: $room) { text } }"
DELIMITER: Final = b"\r\n--graphql"


class MultipartConsumer(GraphqlHttpConsumer):
    schema = subscription_schema
    multipart_heartbeat_interval = 0.05
    allowed_origins = ("https://chat.example.com",)
    max_query_depth = 3

    async def on_operation(self, id: str, payload: Any) -> None:
        if "forbidden" in payload["query"]:
            raise OperationRejected("This operation is not allowed")


class QuietConsumer(GraphqlHttpConsumer):
    schema = query_schema
    multipart_heartbeat_interval = None


application = MultipartConsumer.as_asgi()


@pytest.fixture(autouse=True)
def _clear_records() -> None:
    UNSUBSCRIBED.clear()


class MultipartResponse:
    """A multipart request read part by part, the way Apollo Client splits it."""

    def __init__(
        self,
        payload: object,
        *,
        app: Any = application,
        accept: str = APOLLO_ACCEPT,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        # asgiref leaves ApplicationCommunicator.__init__ unannotated.
        self.communicator = ApplicationCommunicator(  # type: ignore[no-untyped-call]
            app,
            {
                "type": "http",
                "http_version": "1.1",
                "method": "POST",
                "path": "/graphql/",
                "query_string": b"",
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"accept", accept.encode()),
                    *headers,
                ],
            },
        )
        self.payload = payload
        self.buffer = b""
        self.ended = False

    async def send(self) -> None:
        await self.communicator.send_input(
            {"type": "http.request", "body": json.dumps(self.payload).encode()}
        )

    async def open(self) -> dict[str, Any]:
        await self.send()
        start: dict[str, Any] = await self.communicator.receive_output(3)
        assert start["type"] == "http.response.start"
        return start

    async def _more(self) -> None:
        chunk = await self.communicator.receive_output(3)
        assert chunk["type"] == "http.response.body"
        self.buffer += chunk["body"]
        self.ended = not chunk.get("more_body", False)

    async def part(self, *, heartbeats: bool = False) -> Any:
        """The next part's JSON (heartbeats skipped unless asked for); None after the
        closing delimiter."""
        while True:
            while not self.buffer.startswith(DELIMITER) or (
                DELIMITER not in self.buffer[len(DELIMITER) :]
                and not self.buffer[len(DELIMITER) :].startswith(b"--")
            ):
                assert not self.ended, self.buffer
                await self._more()
            rest = self.buffer[len(DELIMITER) :]
            if rest.startswith(b"--"):
                assert rest == b"--\r\n"
                while not self.ended:
                    await self._more()
                return None
            end = rest.index(DELIMITER)
            head, _, body = rest[:end].partition(b"\r\n\r\n")
            assert head == b"\r\nContent-Type: application/json; charset=utf-8"
            self.buffer = rest[end:]
            value = json.loads(body)
            if value != {} or heartbeats:
                return value


async def test_a_subscription_gets_broadcasts_and_heartbeats_and_leaves_on_disconnect() -> None:
    response = MultipartResponse({"query": CHAT, "variables": {"room": "kittens"}})
    start = await response.open()
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"multipart/mixed;boundary=graphql;subscriptionSpec=1.0"
    assert headers[b"cache-control"] == b"no-cache"
    assert headers[b"x-accel-buffering"] == b"no"
    # The headers come once the subscription is in its groups: no broadcast is missed.
    event = ChatEvent(chatroom="kittens", text="meow", sender="alice", sender_channel="x")
    await OnNewChatMessage.broadcast(payload=event, group="kittens")
    assert await response.part() == {"payload": {"data": {"onNewChatMessage": {"text": "meow"}}}}
    # Heartbeats keep the idle response open.
    assert await response.part(heartbeats=True) == {}
    await response.communicator.send_input({"type": "http.disconnect"})
    await response.communicator.wait(3)
    assert UNSUBSCRIBED == [("chat", "kittens")]


async def test_a_subscription_to_its_end() -> None:
    response = MultipartResponse(
        {"query": "subscription { count(to: 2) }"}, app=QuietConsumer.as_asgi()
    )
    assert (await response.open())["status"] == 200
    assert await response.part() == {"payload": {"data": {"count": 1}}}
    assert await response.part() == {"payload": {"data": {"count": 2}}}
    assert await response.part() is None
    assert response.ended
    await response.communicator.wait(3)


async def test_errors_of_a_resolver_are_in_the_payload() -> None:
    response = MultipartResponse({"query": "subscription { onSlowPublish { value } }"})
    assert (await response.open())["status"] == 200
    await OnSlowPublish.broadcast(payload=-1)
    part = await response.part()
    assert part["payload"]["data"] is None
    assert part["payload"]["errors"]
    await response.communicator.send_input({"type": "http.disconnect"})
    await response.communicator.wait(3)


async def http_answer(response: MultipartResponse) -> tuple[int, dict[bytes, bytes], Any]:
    start = await response.open()
    while not response.ended:
        await response._more()
    await response.communicator.wait(3)
    return start["status"], dict(start["headers"]), json.loads(response.buffer)


async def test_a_query_with_apollos_accept_gets_plain_json() -> None:
    status, headers, answer = await http_answer(MultipartResponse({"query": "{ hello }"}))
    assert (status, answer) == (200, {"data": {"hello": "Hello, world!"}})
    assert headers[b"content-type"].startswith(b"application/graphql-response+json")


async def test_a_mutation_for_a_multipart_only_client_is_one_part() -> None:
    response = MultipartResponse(
        {"query": 'mutation { echo(text: "x") }'}, accept='multipart/mixed;subscriptionSpec="1.0"'
    )
    assert (await response.open())["status"] == 200
    assert await response.part() == {"payload": {"data": {"echo": "x"}}}
    assert await response.part() is None
    await response.communicator.wait(3)


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        (
            "subscription { forbidden: onSlowPublish { value } }",
            403,
            "This operation is not allowed",
        ),
        ("subscription { nope }", 400, "Cannot query field 'nope'"),
        (
            "subscription { onTree { children { children { children { label } } } } }",
            400,
            "more than 3 levels deep",
        ),
    ],
    ids=["on_operation", "validation", "limits"],
)
async def test_hooks_and_limits_apply(query: str, status: int, message: str) -> None:
    got, _, answer = await http_answer(MultipartResponse({"query": query}))
    assert got == status
    assert message in answer["errors"][0]["message"]


async def test_a_foreign_origin_is_refused() -> None:
    response = MultipartResponse(
        {"query": "subscription { onTree { label } }"},
        headers=((b"origin", b"https://evil.example"),),
    )
    status, _, answer = await http_answer(response)
    assert status == 403
    assert answer == {"errors": [{"message": "Origin not allowed"}]}


def our_groups() -> dict[str, object]:
    layer = get_channel_layer()
    groups: dict[str, object] = getattr(layer, "groups", {})
    return {name: members for name, members in groups.items() if name.startswith("cgt.")}


async def test_disconnect_during_every_step_leaves_nothing_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Disconnect before the body is complete, while the hook and the subscription's
    subscribe run, while a sync resolver runs in a thread, while the response streams and
    while an event is published; many times over: no task, registration or group stays."""
    baseline_tasks = len(asyncio.all_tasks())
    steps: list[tuple[str, object]] = [
        ("partial body", {"query": CHAT, "variables": {"room": "a"}}),
        ("subscribing", {"query": "subscription { onSlowPublish(delay: 0.2) { value } }"}),
        ("in a thread", {"query": "{ syncSleep(seconds: 0.1) }"}),
        ("streaming", {"query": CHAT, "variables": {"room": "b"}}),
        ("publishing", {"query": "subscription { onSlowPublish { value } }"}),
        ("heartbeating", {"query": "subscription { onTree { label } }"}),
    ]
    for cycle in range(20):
        for step, payload in steps:
            response = MultipartResponse(payload)
            if step == "partial body":
                await response.communicator.send_input(
                    {"type": "http.request", "body": b'{"query":', "more_body": True}
                )
            elif step in ("subscribing", "in a thread"):
                await response.send()
                await asyncio.sleep(0.01 if cycle else 0.05)
            else:
                await response.open()
                if step == "publishing":
                    await OnSlowPublish.broadcast(payload=cycle)
                elif step == "heartbeating":
                    assert await response.part(heartbeats=True) == {}
            await response.communicator.send_input({"type": "http.disconnect"})
            await response.communicator.wait(3)
    await asyncio.sleep(0.3)  # let the abandoned threads finish their sleep
    fanout = get_fanout("default")
    assert fanout.members == {}
    assert not fanout.listening
    assert our_groups() == {}
    assert len(asyncio.all_tasks()) == baseline_tasks
    assert ("chat", "b") in UNSUBSCRIBED
    # Nothing was logged as an error: every disconnect path is an ordinary one.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    # And the machinery still works afterwards.
    response = MultipartResponse({"query": CHAT, "variables": {"room": "b"}})
    await response.open()
    event = ChatEvent(chatroom="b", text="alive", sender="x", sender_channel="y")
    await OnNewChatMessage.broadcast(payload=event, group="b")
    assert await response.part() == {"payload": {"data": {"onNewChatMessage": {"text": "alive"}}}}
    await response.communicator.send_input({"type": "http.disconnect"})
    await response.communicator.wait(3)


class ContextConsumer(GraphqlHttpConsumer):
    schema = subscription_schema
    context_class = CounterContext
    contexts: ClassVar[list[object]] = []

    async def on_operation(self, id: str, payload: Any) -> None:
        self.contexts.append(self.context)


async def test_each_request_has_its_own_context_of_the_context_class() -> None:
    app = ContextConsumer.as_asgi()
    query = {"query": "subscription { onPersonal { value viewer } }"}
    first, second = MultipartResponse(query, app=app), MultipartResponse(query, app=app)
    await first.open()
    await second.open()
    await OnPersonal.broadcast(payload=7)
    one, two = await first.part(), await second.part()
    assert one["payload"]["data"]["onPersonal"]["value"] == 7
    assert two["payload"]["data"]["onPersonal"]["value"] == 7
    # A field that reads the context: not shared between the two requests.
    assert (
        one["payload"]["data"]["onPersonal"]["viewer"]
        != (two["payload"]["data"]["onPersonal"]["viewer"])
    )
    assert [type(context) for context in ContextConsumer.contexts] == [CounterContext] * 2
    for response in (first, second):
        await response.communicator.send_input({"type": "http.disconnect"})
        await response.communicator.wait(3)
