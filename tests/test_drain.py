"""The graceful drain in memory: its close times, what it delivers before a close, its
bounds, what it refuses, and the wrapper's lifespan and signal handling.

The drain of the test's event loop is :func:`process_drain`; each test has a loop of
its own, so a drain never outlives its test. Timings are generous upper bounds only:
they prove that nothing waits longer than the drain's settings say.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any, Final, Self

import pytest
import strawberry
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator

import channels_graphql_typed as cgt
from channels_graphql_typed._drain import close_offsets, process_drain
from channels_graphql_typed._fanout import get_fanout
from channels_graphql_typed._groups import group_name
from channels_graphql_typed._notification_queue import NotificationQueue, Registration
from tests.helpers import WsSession
from tests.http.test_consumer import Stream
from tests.http.test_multipart_consumer import MultipartResponse
from tests.schema import Query
from tests.schema import schema as query_schema
from tests.subscriptions import (
    UNSUBSCRIBED,
    ChatEvent,
    ConfirmingConsumer,
    OnNewChatMessage,
)
from tests.subscriptions import schema as subscription_schema

if TYPE_CHECKING:
    from types import FrameType

CHAT: Final = "subscription($room: String!) { onNewChatMessage(chatroom: $room) { text } }"
GENEROUS: Final = 5.0
"""Seconds that prove that a wait is bounded (the settings under test are far shorter)."""


class QueryHttpConsumer(cgt.GraphqlHttpConsumer):
    schema = query_schema


class ChatHttpConsumer(cgt.GraphqlHttpConsumer):
    schema = subscription_schema


ws_app = ConfirmingConsumer.as_asgi()


class OnSlowNews(cgt.Subscription[str]):
    """Each notification takes a while to publish: they wait in the queue."""

    text: str

    @classmethod
    async def publish(cls, payload: str, info: cgt.Info) -> Self:
        await asyncio.sleep(0.01)
        return cls(text=payload)


@strawberry.type
class SlowSubscription:
    on_slow_news = OnSlowNews.field()


class SlowConsumer(cgt.GraphqlWsConsumer):
    schema = strawberry.Schema(query=Query, subscription=SlowSubscription)
    confirm_subscriptions = True


def wrapped(**settings: Any) -> Any:
    """The test application (WebSocket and HTTP at ``/graphql/``) in the drain's wrapper,
    which hooks no signal unless asked to."""
    settings.setdefault("signals", ())
    return cgt.drain_on_shutdown(
        ProtocolTypeRouter(
            {
                "http": URLRouter([QueryHttpConsumer.as_route("graphql/")]),
                "websocket": URLRouter([ConfirmingConsumer.as_route("graphql/")]),
            }
        ),
        **settings,
    )


@pytest.fixture(autouse=True)
def _clear_records() -> None:
    UNSUBSCRIBED.clear()


def event(text: str) -> ChatEvent:
    return ChatEvent(chatroom="kittens", text=text, sender="alice", sender_channel="x")


async def subscribed(application: Any, subprotocol: str) -> WsSession:
    socket = await WsSession.open(application, subprotocol)
    await socket.start("chat", CHAT, {"room": "kittens"})
    assert await socket.result("chat") == {"data": None}  # in its groups
    return socket


# --- close times ------------------------------------------------------------------------------


def test_close_offsets_put_one_close_in_each_slot_of_the_window() -> None:
    assert close_offsets(4, 8.0, uniform=lambda: 0.5) == [1.0, 3.0, 5.0, 7.0]
    assert close_offsets(0, 8.0) == []
    offsets = close_offsets(100, 10.0)
    assert offsets == sorted(offsets)
    for slot, offset in enumerate(offsets):
        assert slot * 0.1 <= offset < (slot + 1) * 0.1


def test_a_negative_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        cgt.drain_on_shutdown(ws_app, window=-1)


# --- a queue's delivery --------------------------------------------------------------------------


async def test_a_queue_is_delivered_once_its_taker_is_back_for_more() -> None:
    queue = NotificationQueue(2, "test")
    await queue.delivered()  # nothing queued: at once
    for number in range(3):
        queue.put(number)  # the first is dropped (limit 2)
    delivered = asyncio.ensure_future(queue.delivered())
    assert await queue.get() == 1
    assert await queue.get() == 2
    await asyncio.sleep(0)
    assert not delivered.done()  # the last one is taken, maybe not yet handled
    queue.put(3)  # after the call: not waited for
    assert await queue.get() == 3  # back for more: 2 is handled
    async with asyncio.timeout(GENEROUS):
        await delivered


# --- the fan-out's fence -----------------------------------------------------------------------


async def test_the_fence_returns_once_what_is_on_the_channel_is_queued() -> None:
    fanout = get_fanout("default")
    await fanout.fence()  # nothing listens: at once
    registration = Registration(NotificationQueue(None, "test"))
    await fanout.join(registration, {group_name(OnNewChatMessage.group_namespace, "kittens")})
    for number in range(20):
        await OnNewChatMessage.broadcast(payload=event(f"meow {number}"), group="kittens")
    await fanout.fence()
    assert len(registration.queue) == 20
    await fanout.leave(registration)


# --- one connection's drain ---------------------------------------------------------------------


async def test_notifications_queued_before_the_drain_are_sent_before_1012(
    subprotocol: str,
) -> None:
    socket = await WsSession.open(SlowConsumer.as_asgi(), subprotocol)
    await socket.start("news", "subscription { onSlowNews { text } }")
    assert await socket.result("news") == {"data": None}  # in its group
    texts = [f"news {number}" for number in range(20)]
    for text in texts:
        await OnSlowNews.broadcast(payload=text)
    # Most of them still wait in the subscriber's queue (each takes 10 ms to publish).
    await process_drain().drain(window=0, in_flight_timeout=GENEROUS)
    received = [(await socket.result("news"))["data"]["onSlowNews"]["text"] for _ in texts]
    assert received == texts
    assert await socket.receive_close() == (1012, "Service Restart")
    await socket.close()


async def test_a_subscription_leaves_its_groups_after_the_close(subprotocol: str) -> None:
    socket = await subscribed(ws_app, subprotocol)
    await OnNewChatMessage.broadcast(payload=event("meow"), group="kittens")
    await process_drain().drain(window=0, in_flight_timeout=GENEROUS)
    assert await socket.result("chat") == {"data": {"onNewChatMessage": {"text": "meow"}}}
    assert await socket.receive_close() == (1012, "Service Restart")
    await socket.close()
    assert UNSUBSCRIBED == [("chat", "kittens")]


async def test_a_query_under_way_finishes_before_the_close(subprotocol: str) -> None:
    socket = await WsSession.open(ws_app, subprotocol)
    await socket.start("sleep", "{ asyncSleep(seconds: 0.3) }")
    await asyncio.sleep(0.05)
    await process_drain().drain(window=0, in_flight_timeout=GENEROUS)
    assert await socket.result("sleep") == {"data": {"asyncSleep": 0.3}}
    await socket.completed("sleep")
    assert await socket.receive_close() == (1012, "Service Restart")
    await socket.close()


async def test_the_in_flight_limit_bounds_the_wait_for_a_query(subprotocol: str) -> None:
    socket = await WsSession.open(ws_app, subprotocol)
    await socket.start("sleep", "{ asyncSleep(seconds: 60) }")
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await process_drain().drain(window=0, in_flight_timeout=0.2)
    assert time.monotonic() - started < GENEROUS
    assert await socket.receive_close() == (1012, "Service Restart")
    await socket.close()


async def test_a_new_operation_during_the_drain_closes_its_socket_at_once(
    subprotocol: str,
) -> None:
    socket = await subscribed(ws_app, subprotocol)
    # A long window: this connection's close time is probably far off.
    draining = asyncio.ensure_future(process_drain().drain(window=60, in_flight_timeout=1))
    await asyncio.sleep(0.05)
    await socket.start("late", "{ hello }")
    assert await socket.receive_close(timeout=GENEROUS) == (1012, "Service Restart")
    await socket.close()
    async with asyncio.timeout(GENEROUS):
        await draining


async def test_a_connection_that_leaves_during_the_drain_does_not_hold_it(
    subprotocol: str,
) -> None:
    socket = await subscribed(ws_app, subprotocol)
    draining = asyncio.ensure_future(process_drain().drain(window=60, in_flight_timeout=60))
    await asyncio.sleep(0.05)
    await socket.close()
    async with asyncio.timeout(GENEROUS):
        await draining


async def test_connections_close_within_the_window() -> None:
    sockets = [await subscribed(ws_app, cgt.GRAPHQL_TRANSPORT_WS) for _ in range(5)]
    started = time.monotonic()
    await process_drain().drain(window=0.5, in_flight_timeout=0.5)
    assert time.monotonic() - started < GENEROUS
    for socket in sockets:
        assert await socket.receive_close() == (1012, "Service Restart")
        await socket.close()


# --- HTTP and Server-Sent Events ----------------------------------------------------------------


async def test_an_event_stream_ends_after_what_was_broadcast_before_the_drain() -> None:
    stream = Stream(ChatHttpConsumer.as_asgi(), {"query": CHAT, "variables": {"room": "kittens"}})
    assert (await stream.open())["status"] == 200
    for text in ("one", "two"):
        await OnNewChatMessage.broadcast(payload=event(text), group="kittens")
    await process_drain().drain(window=0, in_flight_timeout=GENEROUS)
    assert await stream.event() == ("next", {"data": {"onNewChatMessage": {"text": "one"}}})
    assert await stream.event() == ("next", {"data": {"onNewChatMessage": {"text": "two"}}})
    assert await stream.end() == b""  # the body ends, with no complete event
    await stream.communicator.wait(GENEROUS)
    assert UNSUBSCRIBED == [("chat", "kittens")]


async def test_a_multipart_response_ends_with_an_error_after_what_was_broadcast() -> None:
    response = MultipartResponse(
        {"query": CHAT, "variables": {"room": "kittens"}}, app=ChatHttpConsumer.as_asgi()
    )
    assert (await response.open())["status"] == 200
    for text in ("one", "two"):
        await OnNewChatMessage.broadcast(payload=event(text), group="kittens")
    await process_drain().drain(window=0, in_flight_timeout=GENEROUS)
    for text in ("one", "two"):
        assert await response.part() == {"payload": {"data": {"onNewChatMessage": {"text": text}}}}
    # A transport-level error, then the closing delimiter: the subscription failed.
    assert await response.part() == {"payload": None, "errors": [{"message": "Service Restart"}]}
    assert await response.part() is None
    await response.communicator.wait(GENEROUS)
    assert UNSUBSCRIBED == [("chat", "kittens")]


async def post(application: Any, query: str) -> tuple[int, dict[bytes, bytes], Any]:
    communicator = HttpCommunicator(
        application,
        "POST",
        "/graphql/",
        json.dumps({"query": query}).encode(),
        [(b"content-type", b"application/json"), (b"accept", b"application/json")],
    )
    response = await communicator.get_response(timeout=GENEROUS)
    return response["status"], dict(response["headers"]), json.loads(response["body"])


async def test_a_request_under_way_gets_its_response() -> None:
    application = QueryHttpConsumer.as_asgi()
    request = asyncio.ensure_future(post(application, "{ asyncSleep(seconds: 0.3) }"))
    await asyncio.sleep(0.05)
    await process_drain().drain(window=0, in_flight_timeout=GENEROUS)
    status, _, body = await request
    assert (status, body) == (200, {"data": {"asyncSleep": 0.3}})


async def test_a_request_past_the_in_flight_limit_gets_503() -> None:
    application = QueryHttpConsumer.as_asgi()
    request = asyncio.ensure_future(post(application, "{ asyncSleep(seconds: 60) }"))
    await asyncio.sleep(0.05)
    await process_drain().drain(window=0, in_flight_timeout=0.1)
    status, headers, body = await request
    assert status == 503
    assert headers[b"retry-after"] == b"1"
    assert body == {"errors": [{"message": "Service Restart"}]}


# --- the wrapper ------------------------------------------------------------------------------


async def test_during_the_drain_a_new_request_gets_503_with_retry_after() -> None:
    application = wrapped(retry_after=7)
    await application.drain()
    status, headers, body = await post(application, "{ hello }")
    assert status == 503
    assert headers[b"retry-after"] == b"7"
    assert body == {"errors": [{"message": "Service Restart"}]}


async def test_during_the_drain_a_new_websocket_is_closed_1012(subprotocol: str) -> None:
    application = wrapped()
    await process_drain().drain(window=0, in_flight_timeout=0)
    communicator = WebsocketCommunicator(application, "/graphql/", subprotocols=[subprotocol])
    connected, chosen = await communicator.connect()
    assert connected
    assert chosen == subprotocol
    closed = await communicator.receive_output(GENEROUS)
    assert closed == {"type": "websocket.close", "code": 1012, "reason": "Service Restart"}
    await communicator.wait(GENEROUS)


async def test_before_the_drain_the_wrapper_passes_everything_on() -> None:
    status, _, body = await post(wrapped(), "{ hello }")
    assert (status, body) == (200, {"data": {"hello": "Hello, world!"}})


async def lifespan(application: Any) -> Any:
    # asgiref leaves ApplicationCommunicator.__init__ unannotated.
    communicator = ApplicationCommunicator(application, {"type": "lifespan"})  # type: ignore[no-untyped-call]
    await communicator.send_input({"type": "lifespan.startup"})
    assert await communicator.receive_output(GENEROUS) == {"type": "lifespan.startup.complete"}
    return communicator


async def test_the_lifespan_shutdown_drains(subprotocol: str) -> None:
    application = wrapped(window=0.2, in_flight_timeout=1)
    communicator = await lifespan(application)
    socket = await subscribed(application, subprotocol)
    await OnNewChatMessage.broadcast(payload=event("last"), group="kittens")
    await communicator.send_input({"type": "lifespan.shutdown"})
    assert await socket.result("chat") == {"data": {"onNewChatMessage": {"text": "last"}}}
    assert await socket.receive_close() == (1012, "Service Restart")
    assert await communicator.receive_output(GENEROUS) == {"type": "lifespan.shutdown.complete"}
    await socket.close()


async def test_a_signal_drains_then_reaches_the_servers_handler() -> None:
    calls: list[tuple[int, bool]] = []
    called = asyncio.Event()

    def servers_handler(number: int, frame: FrameType | None) -> None:
        calls.append((number, process_drain().draining))
        called.set()

    original = signal.signal(signal.SIGUSR1, servers_handler)
    try:
        application = wrapped(window=0.2, in_flight_timeout=1, signals=(signal.SIGUSR1,))
        communicator = await lifespan(application)
        assert signal.getsignal(signal.SIGUSR1) != servers_handler  # the wrapper's first
        socket = await subscribed(application, cgt.GRAPHQL_TRANSPORT_WS)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert await socket.receive_close(timeout=GENEROUS) == (1012, "Service Restart")
        await socket.close()
        async with asyncio.timeout(GENEROUS):
            await called.wait()
        assert calls == [(signal.SIGUSR1, True)]  # after the drain
        await communicator.send_input({"type": "lifespan.shutdown"})
        assert await communicator.receive_output(GENEROUS) == {"type": "lifespan.shutdown.complete"}
        assert signal.getsignal(signal.SIGUSR1) == servers_handler  # given back
    finally:
        signal.signal(signal.SIGUSR1, original)
