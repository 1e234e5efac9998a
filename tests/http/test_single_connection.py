"""graphql-sse's single connection mode on GraphqlHttpConsumer, in memory: every status
and error path, the reservation's expiry, the binding to who reserved the stream,
requests forwarded over the channel layer, and a disconnect at every step."""

from __future__ import annotations

import asyncio
import json
import logging
import types
import urllib.parse
from typing import TYPE_CHECKING, Any

import pytest
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator

from channels_graphql_typed import GraphqlHttpConsumer, OperationRejected
from channels_graphql_typed import _event_streams as event_streams
from channels_graphql_typed._drain import process_drain
from channels_graphql_typed._event_streams import EventStreams, get_event_streams, principal_of
from channels_graphql_typed._fanout import get_fanout
from channels_graphql_typed._protocol.sse_single import EventStreamToken
from tests.subscriptions import UNSUBSCRIBED, ChatEvent, OnNewChatMessage
from tests.subscriptions import schema as subscription_schema

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

CHAT = "subscription($room: String!) { onNewChatMessage(chatroom: $room) { text } }"
SLOW = "subscription { onSlowPublish(delay: 0.2) { value } }"
TOKEN = b"x-graphql-event-stream-token"
JSON = (b"content-type", b"application/json")


class StreamsConsumer(GraphqlHttpConsumer):
    schema = subscription_schema
    sse_heartbeat_interval = 0.05

    async def on_operation(self, id: str, payload: Any) -> None:
        if "forbidden" in payload["query"]:
            raise OperationRejected("Not this one")


class QuickExpiryConsumer(StreamsConsumer):
    sse_reservation_timeout = 0.1


class DistinctOnlyConsumer(StreamsConsumer):
    sse_single_connection = False


app = StreamsConsumer.as_asgi()


# --8<-- [start:settings]
class ChatHttpConsumer(GraphqlHttpConsumer):
    schema = subscription_schema
    # graphql-sse's single connection mode is on unless this is False.
    sse_single_connection = True
    # Seconds a reserved event stream waits for its GET; then it is closed.
    sse_reservation_timeout = 10


# --8<-- [end:settings]


@pytest.fixture(autouse=True)
def _no_lingering_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    # Idle is idle at once here (the linger itself has its own test).
    monkeypatch.setattr(event_streams, "CHANNEL_LINGER", 0)


@pytest.fixture(autouse=True)
def _clear_records() -> Iterator[None]:
    UNSUBSCRIBED.clear()
    yield
    UNSUBSCRIBED.clear()


def user(pk: int) -> object:
    return types.SimpleNamespace(pk=pk, is_authenticated=True)


def session(key: str | None) -> object:
    return types.SimpleNamespace(session_key=key)


def scope(
    method: str,
    query: dict[str, str] | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": "/graphql/",
        "query_string": urllib.parse.urlencode(query or {}).encode(),
        "headers": list(headers),
        **extra,
    }


async def request(
    method: str,
    body: bytes = b"",
    *,
    application: Any = app,
    query: dict[str, str] | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    **extra: Any,
) -> tuple[int, dict[bytes, bytes], bytes]:
    communicator = ApplicationCommunicator(  # type: ignore[no-untyped-call]
        application, scope(method, query, headers, **extra)
    )
    await communicator.send_input({"type": "http.request", "body": body})
    start = await communicator.receive_output(3)
    assert start["type"] == "http.response.start", start
    answer = await communicator.receive_output(3)
    await communicator.wait(3)
    return start["status"], dict(start["headers"]), answer["body"]


async def reserve(application: Any = app, **extra: Any) -> str:
    status, headers, body = await request("PUT", application=application, **extra)
    assert status == 201, body
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    return body.decode()


def submission(query: str, operation_id: str | None, **variables: object) -> bytes:
    extensions = {} if operation_id is None else {"operationId": operation_id}
    return json.dumps({"query": query, "variables": variables, "extensions": extensions}).encode()


async def submit(
    token: str, query: str, operation_id: str | None, application: Any = app, **variables: object
) -> tuple[int, Any]:
    status, _, body = await request(
        "POST",
        submission(query, operation_id, **variables),
        application=application,
        headers=[JSON, (TOKEN, token.encode())],
    )
    return status, json.loads(body) if body else None


async def stop(token: str, operation_id: str, **extra: Any) -> int:
    status, _, _ = await request(
        "DELETE", query={"operationId": operation_id}, headers=[(TOKEN, token.encode())], **extra
    )
    return status


class EventStream:
    """The GET that opens a reserved stream, read event by event."""

    def __init__(self, token: str, application: Any = app, **extra: Any) -> None:
        self.communicator = ApplicationCommunicator(  # type: ignore[no-untyped-call]
            application,
            scope(
                "GET",
                {"token": token},
                [(b"accept", b"text/event-stream")],
                **extra,
            ),
        )
        self.buffer = b""
        self.ended = False

    async def open(self) -> dict[str, Any]:
        await self.communicator.send_input({"type": "http.request", "body": b""})
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
                return lines[b"event"].strip().decode(), json.loads(lines[b"data"])
            chunk = await self.communicator.receive_output(3)
            self.buffer += chunk["body"]
            if not chunk.get("more_body", False):
                self.ended = True
                raise EOFError

    async def disconnect(self) -> None:
        await self.communicator.send_input({"type": "http.disconnect"})
        await self.communicator.wait(3)


def chat_event(room: str, text: str) -> ChatEvent:
    return ChatEvent(chatroom=room, text=text, sender="test", sender_channel="test")


async def assert_nothing_left() -> None:
    streams = get_event_streams("default")
    for _ in range(100):
        if not streams.streams and not streams.listening and not streams.tasks:
            break
        await asyncio.sleep(0.01)
    assert streams.streams == {}
    assert not streams.listening
    assert streams.tasks == 0
    assert get_fanout("default").members == {}


# --- the protocol, step by step -------------------------------------------------------------


async def test_subscribe_receive_query_mutation_and_stop() -> None:
    token = await reserve()
    stream = EventStream(token)
    start = await stream.open()
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"x-accel-buffering"] == b"no"
    # 202 once the subscription is in its groups: no broadcast sent afterwards is missed.
    assert await submit(token, CHAT, "chat", room="kittens") == (202, None)
    await OnNewChatMessage.broadcast(payload=chat_event("kittens", "meow"), group="kittens")
    payload = {"data": {"onNewChatMessage": {"text": "meow"}}}
    assert await stream.event() == ("next", {"id": "chat", "payload": payload})
    assert await submit(token, '{ hello(name: "sse") }', "query") == (202, None)
    assert await stream.event() == (
        "next",
        {"id": "query", "payload": {"data": {"hello": "Hello, sse!"}}},
    )
    assert await stream.event() == ("complete", {"id": "query"})
    # An operation ID may be used again once its operation has completed.
    assert await submit(token, '{ hello(name: "again") }', "query") == (202, None)
    assert await stream.event() == (
        "next",
        {"id": "query", "payload": {"data": {"hello": "Hello, again!"}}},
    )
    assert await stream.event() == ("complete", {"id": "query"})
    mutation = 'mutation { broadcastTree(tree: { label: "oak" }) }'
    assert await submit(token, mutation, "mutation") == (202, None)
    assert await stream.event() == (
        "next",
        {"id": "mutation", "payload": {"data": {"broadcastTree": True}}},
    )
    assert await stream.event() == ("complete", {"id": "mutation"})
    assert await stop(token, "chat") == 200
    assert UNSUBSCRIBED == [("chat", "kittens")]
    # Stopping an operation that is not running is no error (as graphql-sse's handler).
    assert await stop(token, "chat") == 200
    await stream.disconnect()
    await assert_nothing_left()


async def test_a_get_submits_a_query_but_not_a_mutation() -> None:
    token = await reserve()
    stream = EventStream(token)
    await stream.open()
    extensions = json.dumps({"operationId": "get"})
    status, _, _ = await request(
        "GET",
        query={"query": "{ hello }", "extensions": extensions},
        headers=[(TOKEN, token.encode())],
    )
    assert status == 202
    assert await stream.event() == (
        "next",
        {"id": "get", "payload": {"data": {"hello": "Hello, world!"}}},
    )
    status, headers, body = await request(
        "GET",
        query={"query": 'mutation { echo(text: "x") }', "extensions": extensions},
        headers=[(TOKEN, token.encode())],
    )
    assert (status, headers[b"allow"]) == (405, b"POST")
    assert json.loads(body)["errors"][0]["message"].startswith("Mutations cannot be sent with GET")
    await stream.disconnect()
    await assert_nothing_left()


async def test_errors_before_execution_answer_the_submitting_request() -> None:
    token = await reserve()
    stream = EventStream(token)
    await stream.open()
    status, answer = await submit(token, "{ nope }", "bad")
    assert status == 400
    assert "nope" in answer["errors"][0]["message"]
    status, answer = await submit(token, "{ hello", "bad")
    assert status == 400
    assert answer["errors"][0]["message"].startswith("Syntax Error")
    status, answer = await submit(token, "{ forbidden: hello }", "refused")
    assert (status, answer) == (403, {"errors": [{"message": "Not this one"}]})
    # Nothing of them reached the stream; the stream still works.
    assert await submit(token, "{ hello }", "fine") == (202, None)
    assert await stream.event() == (
        "next",
        {"id": "fine", "payload": {"data": {"hello": "Hello, world!"}}},
    )
    await stream.disconnect()
    await assert_nothing_left()


def forged(token: str, *, secret: str | None = None, reservation: str | None = None) -> str:
    real = EventStreamToken.parse(token)
    return str(
        EventStreamToken(
            real.channel,
            reservation or real.reservation,
            secret or ("A" * 43 if real.secret != "A" * 43 else "B" * 43),
        )
    )


async def test_status_codes_of_every_error() -> None:
    token = await reserve()
    header = (TOKEN, token.encode())
    # A reservation's token is text/plain.
    status, _, _ = await request("PUT", headers=[(b"accept", b"application/json")])
    assert status == 406
    # A stream is opened once.
    stream = EventStream(token)
    await stream.open()
    start = await EventStream(token).open()
    assert start["status"] == 409
    # Tokens that name no stream of this server.
    for bad, expected in [
        ("nonsense", 400),
        (forged(token), 404),
        (forged(token, reservation="0" * 16), 404),
    ]:
        start = await EventStream(bad).open()
        assert start["status"] == expected, bad
        assert await submit(bad, "{ hello }", "x") == (
            expected,
            {
                "errors": [
                    {
                        "message": "The event stream token is malformed"
                        if expected == 400
                        else "Stream not found"
                    }
                ]
            },
        )
        assert await stop(bad, "x") == expected
    # Submissions.
    assert (await submit(token, "{ hello }", None))[0] == 400
    assert (await submit(token, "{ hello }", ""))[0] == 400
    assert await submit(token, SLOW, "slow") == (202, None)
    assert await submit(token, SLOW, "slow") == (
        409,
        {"errors": [{"message": "Operation with ID already exists"}]},
    )
    for body, headers, expected in [
        (b"{ hello }", [(b"content-type", b"text/plain"), header], 415),
        (b"[]", [JSON, header], 400),
        (b"{", [JSON, header], 400),
        (submission("{ hello }", "h"), [JSON, header, (b"accept", b"text/html")], 406),
        (b"x" * (StreamsConsumer.max_message_size or 0 + 1) + b"x", [JSON, header], 413),
    ]:
        status, _, answer = await request("POST", body, headers=headers)
        assert status == expected, body[:20]
        assert json.loads(answer)["errors"][0]["message"]
    # Stops.
    status, _, answer = await request("DELETE", query={"operationId": "slow"})
    assert status == 400
    assert "token is missing" in json.loads(answer)["errors"][0]["message"]
    status, _, answer = await request("DELETE", headers=[header])
    assert (status, json.loads(answer)["errors"][0]["message"].split(":")[0]) == (
        400,
        "Operation ID is missing",
    )
    assert await stop(token, "slow") == 200
    await stream.disconnect()
    await assert_nothing_left()


async def test_single_connection_mode_can_be_turned_off() -> None:
    status, headers, _ = await request("PUT", application=DistinctOnlyConsumer.as_asgi())
    assert (status, headers[b"allow"]) == (405, b"GET, POST")


async def test_a_method_not_served_is_405_with_the_methods_that_are() -> None:
    status, headers, _ = await request("PATCH")
    assert (status, headers[b"allow"]) == (405, b"GET, POST, PUT, DELETE")
    status, headers, _ = await request("PATCH", application=DistinctOnlyConsumer.as_asgi())
    assert (status, headers[b"allow"]) == (405, b"GET, POST")


async def test_a_reservation_never_opened_expires() -> None:
    application = QuickExpiryConsumer.as_asgi()
    token = await reserve(application)
    # Another server class holds no such stream.
    assert (await submit(token, CHAT, "early", room="early"))[0] == 404
    assert await submit(token, CHAT, "early", application, room="early") == (202, None)
    await asyncio.sleep(0.3)
    assert UNSUBSCRIBED == [("chat", "early")]
    start = await EventStream(token, application).open()
    assert start["status"] == 404
    await assert_nothing_left()


async def test_events_wait_for_the_stream_to_open() -> None:
    token = await reserve()
    assert await submit(token, "{ hello }", "early") == (202, None)
    stream = EventStream(token)
    await stream.open()
    assert await stream.event() == (
        "next",
        {"id": "early", "payload": {"data": {"hello": "Hello, world!"}}},
    )
    assert await stream.event() == ("complete", {"id": "early"})
    await stream.disconnect()
    await assert_nothing_left()


@pytest.mark.parametrize(
    ("owner", "other"),
    [
        ({"user": user(1)}, {"user": user(2)}),
        ({"user": user(1)}, {}),
        ({"session": session("alice-session")}, {"session": session("mallory-session")}),
        ({"session": session("alice-session")}, {"session": session(None)}),
        ({}, {"user": user(1)}),
    ],
    ids=["other-user", "anonymous", "other-session", "no-session", "anonymous-stream"],
)
async def test_a_stream_is_bound_to_who_reserved_it(
    owner: dict[str, Any], other: dict[str, Any]
) -> None:
    token = await reserve(**owner)
    header = [JSON, (TOKEN, token.encode())]
    assert (await EventStream(token, **other).open())["status"] == 404
    stream = EventStream(token, **owner)
    assert (await stream.open())["status"] == 200
    body = submission(CHAT, "chat", room="private")
    status, _, answer = await request("POST", body, headers=header, **other)
    assert (status, json.loads(answer)) == (404, {"errors": [{"message": "Stream not found"}]})
    status, _, _ = await request("POST", body, headers=header, **owner)
    assert status == 202
    assert await stop(token, "chat", **other) == 404
    assert UNSUBSCRIBED == []
    assert await stop(token, "chat", **owner) == 200
    assert UNSUBSCRIBED == [("chat", "private")]
    await stream.disconnect()
    await assert_nothing_left()


async def test_the_same_user_in_another_session_may_use_the_stream() -> None:
    alice = user(1)
    token = await reserve(user=alice, session=session("phone"))
    stream = EventStream(token, user=alice, session=session("laptop"))
    assert (await stream.open())["status"] == 200
    await stream.disconnect()
    await assert_nothing_left()


# --- other processes ------------------------------------------------------------------------


async def test_requests_of_another_process_are_forwarded_to_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(event_streams, "FORWARD_TIMEOUT", 0.5)
    token = await reserve(user=user(7))
    stream = EventStream(token, user=user(7))
    await stream.open()
    layer = get_channel_layer()
    assert layer is not None
    here = get_event_streams("default")
    elsewhere = EventStreams(layer)  # another process's, on the same layer
    server = f"{StreamsConsumer.__module__}.{StreamsConsumer.__qualname__}"
    parsed = EventStreamToken.parse(token)
    alice = principal_of({"user": user(7)})
    body = submission(CHAT, "chat", room="far").decode()
    answer = await elsewhere.submit(parsed, alice, server, "POST", body)
    assert (answer.status, answer.body) == (202, b"")
    await OnNewChatMessage.broadcast(payload=chat_event("far", "hi"), group="far")
    assert (await stream.event())[1]["payload"] == {"data": {"onNewChatMessage": {"text": "hi"}}}
    # What the stream's process does not admit, forwarded or not.
    answer = await elsewhere.submit(parsed, principal_of({"user": user(8)}), server, "POST", body)
    assert answer.status == 404
    answer = await elsewhere.submit(parsed, alice, "another.Server", "POST", body)
    assert answer.status == 404
    answer = await elsewhere.submit(parsed, alice, server, "POST", body)
    assert (answer.status, answer.headers) == (
        409,
        (("content-type", "application/json; charset=utf-8"),),
    )
    answer = await elsewhere.submit(
        parsed, alice, server, "POST", '{"query": "{ nope }", "extensions": {"operationId": "q"}}'
    )
    assert answer.status == 400
    answer = await elsewhere.submit(
        parsed, alice, server, "GET", submission('mutation { echo(text: "x") }', "m").decode()
    )
    assert (answer.status, dict(answer.headers)["allow"]) == (405, "POST")
    answer = await elsewhere.stop(parsed, alice, server, "chat")
    assert answer.status == 200
    assert UNSUBSCRIBED == [("chat", "far")]
    # Malformed messages on the streams' channel are dropped, counted, and answer nothing.
    assert here.channel is not None
    assert here.health is not None
    malformed: list[dict[str, Any]] = [
        {"type": "cgt.stream.submit"},
        {"type": "cgt.stream.stop", "token": 1, "principal": "", "server": "", "reply": "x"},
        {
            "type": "cgt.stream.submit",
            "token": str(parsed),
            "principal": alice,
            "server": server,
            "method": "PUT",
            "body": "{}",
            "reply": "x",
        },
        {"type": "cgt.notify", "group": "far", "payload": b""},
        {
            "type": "cgt.stream.stop",
            "token": "x" * 5000,
            "principal": "",
            "server": "",
            "operation_id": "",
            "reply": "x",
        },
    ]
    for message in malformed:
        await layer.send(here.channel, message)
    for _ in range(100):
        if here.health.malformed == 5:
            break
        await asyncio.sleep(0.01)
    assert here.health.malformed == 5
    await stream.disconnect()
    await assert_nothing_left()
    # The stream is gone, and the process listens no more: nobody answers in time.
    answer = await elsewhere.submit(parsed, alice, server, "POST", body)
    assert answer.status == 504


# --- disconnects at every step --------------------------------------------------------------


STEPS = ["reserved", "opened", "subscribing", "subscribed", "querying", "stopped"]


async def one_cycle(step: str, room: str) -> None:
    """Reserve, open, subscribe, query and stop; the stream's client leaves at ``step``."""
    token = await reserve()
    if step == "reserved":
        return  # never opened: the reservation expires (see test_..._expires)
    stream = EventStream(token)
    await stream.open()
    if step == "opened":
        await stream.disconnect()
        return
    if step == "subscribing":
        # The client leaves while the subscription's subscribe() still runs.
        posting = asyncio.ensure_future(submit(token, SLOW, "slow"))
        await asyncio.sleep(0.05)
        await stream.disconnect()
        assert (await posting)[0] == 404
        return
    assert await submit(token, CHAT, "chat", room=room) == (202, None)
    if step == "subscribed":
        await stream.disconnect()
        return
    posting = asyncio.ensure_future(submit(token, "{ rows(count: 3) }", "rows"))
    if step == "querying":
        await stream.disconnect()
        await posting
        return
    await posting
    assert await stop(token, "chat") == 200
    await stream.disconnect()


@pytest.mark.parametrize("step", STEPS)
async def test_disconnect_at_every_step_leaves_nothing(step: str) -> None:
    for index in range(5):
        await one_cycle(step, f"churn-{index}")
    if step == "reserved":
        streams = get_event_streams("default")
        assert len(streams.streams) == 5
        for stream in list(streams.streams.values()):
            await stream.close()
    await assert_nothing_left()
    subscribed = step not in ("reserved", "opened", "subscribing")
    chat = [("chat", f"churn-{index}") for index in range(5)] if subscribed else []
    # (A subscription stopped inside its subscribe() was never registered: it has no
    # unsubscribed() to run.)
    assert sorted(UNSUBSCRIBED) == chat


async def test_the_documented_settings() -> None:
    application = ChatHttpConsumer.as_asgi()
    token = await reserve(application)
    stream = EventStream(token, application)
    assert (await stream.open())["status"] == 200
    assert await submit(token, "{ hello }", "q", application) == (202, None)
    assert (await stream.event())[1] == {"id": "q", "payload": {"data": {"hello": "Hello, world!"}}}
    await stream.disconnect()
    await assert_nothing_left()


async def test_an_open_stream_gets_heartbeats() -> None:
    token = await reserve()
    stream = EventStream(token)
    await stream.open()
    # The first comment comes with the headers, then one per sse_heartbeat_interval.
    chunks = [await stream.communicator.receive_output(3) for _ in range(3)]
    assert [chunk["body"] for chunk in chunks] == [b":\n\n"] * 3
    await stream.disconnect()
    await assert_nothing_left()


async def test_a_reservation_that_gathers_too_many_events_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(event_streams, "MAX_PENDING_EVENTS_SIZE", 100)
    token = await reserve()
    assert await submit(token, "{ rows(count: 10) }", "big") == (202, None)
    await assert_nothing_left()
    assert (await EventStream(token).open())["status"] == 404


def our_groups() -> dict[str, object]:
    layer = get_channel_layer()
    groups: dict[str, object] = getattr(layer, "groups", {})
    return {name: members for name, members in groups.items() if name.startswith("cgt.")}


async def test_churn_leaves_tasks_streams_and_groups_at_baseline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    baseline_tasks = len(asyncio.all_tasks())
    steps = [*STEPS[1:], "stopped-while-subscribing"]
    for index in range(120):
        step = steps[index % len(steps)]
        if step == "stopped-while-subscribing":
            token = await reserve()
            stream = EventStream(token)
            await stream.open()
            posting = asyncio.ensure_future(submit(token, SLOW, "slow"))
            await asyncio.sleep(0.02)
            assert await stop(token, "slow") == 200
            assert await posting == (204, None)
            await stream.disconnect()
        else:
            await one_cycle(step, f"churn-{index % 7}")
    await assert_nothing_left()
    assert our_groups() == {}
    assert len(asyncio.all_tasks()) == baseline_tasks
    # Every disconnect path is an ordinary one: nothing was logged as an error.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_the_channel_lingers_for_late_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_streams, "CHANNEL_LINGER", 0.3)
    token = await reserve()
    stream = EventStream(token)
    await stream.open()
    await stream.disconnect()
    here = get_event_streams("default")
    assert here.streams == {}
    assert here.listening
    layer = get_channel_layer()
    assert layer is not None
    server = f"{StreamsConsumer.__module__}.{StreamsConsumer.__qualname__}"
    answer = await EventStreams(layer).submit(
        EventStreamToken.parse(token), "", server, "POST", submission("{ hello }", "q").decode()
    )
    assert answer.status == 404
    # A reservation meanwhile keeps the channel; once idle again, it stops after the linger.
    token = await reserve()
    assert EventStreamToken.parse(token).channel == here.channel
    for stream_left in list(here.streams.values()):
        await stream_left.close()
    await asyncio.sleep(0.2)
    assert here.listening
    await asyncio.sleep(0.3)
    await assert_nothing_left()


async def test_the_graceful_drain_ends_the_streams() -> None:
    token = await reserve()
    stream = EventStream(token)
    await stream.open()
    assert await submit(token, CHAT, "chat", room="draining") == (202, None)
    idle = await reserve()  # reserved, never opened
    assert idle
    await process_drain().drain(window=0, in_flight_timeout=1)
    # The stream ends without complete: graphql-sse's client reconnects elsewhere.
    with pytest.raises(EOFError):
        await stream.event()
    assert UNSUBSCRIBED == [("chat", "draining")]
    await stream.disconnect()
    await assert_nothing_left()


async def test_a_stream_is_one_connection_for_the_metrics() -> None:
    from prometheus_client import CollectorRegistry

    from channels_graphql_typed import observability
    from tests.test_observability import samples

    registry = CollectorRegistry()
    observability.enable_metrics(registry)
    try:
        token = await reserve()
        stream = EventStream(token)
        await stream.open()
        assert await submit(token, "{ hello }", "q") == (202, None)
        await stream.disconnect()
        await reserve(QuickExpiryConsumer.as_asgi())  # never opened: it expires
        await asyncio.sleep(0.3)
        await assert_nothing_left()
        values = samples(registry)
    finally:
        observability.disable()
    labels = (("protocol", "graphql-sse-single"), ("transport", "http"))
    assert values[("channels_graphql_connections_opened_total", labels)] == 2
    assert values[("channels_graphql_connections_open", labels)] == 0
    closed = "channels_graphql_connections_closed_total"
    assert values[(closed, (("code", "200"), ("transport", "http")))] == 1
    assert values[(closed, (("code", "408"), ("transport", "http")))] == 1
    assert values[("channels_graphql_operations_completed_total", (("type", "query"),))] == 1
    # Its requests (the PUTs, the GET, the POST) are not connections of their own.
    assert (("protocol", "http"), ("transport", "http")) not in {
        series[1] for series in values if series[0] == "channels_graphql_connections_opened_total"
    }
