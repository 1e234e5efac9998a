"""Typed subscriptions through the consumer, on both subprotocols, with the in-memory layer."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import logging
import uuid
from typing import Any, NamedTuple

import pytest
from asgiref.sync import sync_to_async

import channels_graphql_typed as cgt
from channels_graphql_typed._fanout import get_fanout
from channels_graphql_typed._groups import group_name
from channels_graphql_typed._layer_messages import notify_message
from channels_graphql_typed._serialization import serialize_payload
from tests.helpers import WsSession
from tests.subscriptions import (
    RECEIVED,
    UNSUBSCRIBED,
    ChatEvent,
    Color,
    ConfirmingConsumer,
    Everything,
    Measurement,
    OnAnything,
    OnEverything,
    OnKittens,
    OnLimited,
    OnMeasurement,
    OnNewChatMessage,
    OnSlowPublish,
    OnThread,
    OrderedTypedConsumer,
    Thread,
    TypedConsumer,
)

app = TypedConsumer.as_asgi()
confirming = ConfirmingConsumer.as_asgi()

CHAT = "subscription($room: String!) { onNewChatMessage(chatroom: $room) { chatroom text sender } }"


def chat_event(text: str, room: str = "kittens", sender_channel: str = "elsewhere") -> ChatEvent:
    return ChatEvent(chatroom=room, text=text, sender="alice", sender_channel=sender_channel)


async def subscribe_chat(subprotocol: str, room: str = "kittens", id: str = "s") -> WsSession:
    """A session subscribed to a chatroom, confirmed so that no broadcast can be missed."""
    session = await WsSession.open(confirming, subprotocol)
    await session.start(id, CHAT, {"room": room})
    assert await session.result(id) == {"data": None}
    return session


def chat_result(text: str, room: str = "kittens") -> dict[str, Any]:
    return {"data": {"onNewChatMessage": {"chatroom": room, "text": text, "sender": "alice"}}}


@pytest.fixture(autouse=True)
def _clear_records() -> None:
    UNSUBSCRIBED.clear()
    RECEIVED.clear()


# --- groups -------------------------------------------------------------------------------


async def test_broadcast_reaches_the_group_only(subprotocol: str) -> None:
    kittens = await subscribe_chat(subprotocol, "kittens")
    puppies = await subscribe_chat(subprotocol, "puppies")
    await OnNewChatMessage.broadcast(payload=chat_event("meow"), group="kittens")
    assert await kittens.result("s") == chat_result("meow")
    assert await puppies.nothing()
    await kittens.close()
    await puppies.close()


async def test_default_group_reaches_every_subscriber_of_the_class(subprotocol: str) -> None:
    kittens = await subscribe_chat(subprotocol, "kittens")
    puppies = await subscribe_chat(subprotocol, "puppies")
    await OnNewChatMessage.broadcast(payload=chat_event("hello all"))
    assert await kittens.result("s") == chat_result("hello all")
    assert await puppies.result("s") == chat_result("hello all")
    await kittens.close()
    await puppies.close()


async def test_groups_are_namespaced_per_class(subprotocol: str) -> None:
    chat = await subscribe_chat(subprotocol, "kittens")
    other = await WsSession.open(confirming, subprotocol)
    await other.start("k", 'subscription { onKittens(chatroom: "kittens") { text } }')
    assert await other.result("k") == {"data": None}
    await OnNewChatMessage.broadcast(payload=chat_event("for chat"), group="kittens")
    assert await chat.result("s") == chat_result("for chat")
    assert await other.nothing()
    await OnKittens.broadcast(payload=chat_event("for kittens"), group="kittens")
    assert await other.result("k") == {"data": {"onKittens": {"text": "for kittens"}}}
    assert await chat.nothing()
    await chat.close()
    await other.close()


@pytest.mark.parametrize(
    "room",
    ["kittens", "a" * 300, "комната котиков", "with spaces/and:colons", "u_x", "h_0"],
)
async def test_any_group_string_is_a_valid_distinct_channels_group(room: str) -> None:
    name = group_name(OnNewChatMessage.group_namespace, room)
    assert len(name) < 100
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
    assert name != group_name(OnNewChatMessage.group_namespace, room + "!")
    assert name != group_name(OnNewChatMessage.group_namespace, None)
    assert name != group_name(OnKittens.group_namespace, room)


async def test_unusual_group_names_work_end_to_end(subprotocol: str) -> None:
    room = "комната " + "x" * 200
    session = await subscribe_chat(subprotocol, room)
    await OnNewChatMessage.broadcast(payload=chat_event("hi", room=room), group=room)
    assert await session.result("s") == chat_result("hi", room=room)
    await session.close()


async def test_shared_group_on_one_socket_is_reference_counted(subprotocol: str) -> None:
    session = await subscribe_chat(subprotocol, "kittens", id="a")
    await session.start("b", CHAT, {"room": "kittens"})
    assert await session.result("b") == {"data": None}
    await session.stop("a")
    if subprotocol == cgt.GRAPHQL_WS:
        await session.completed("a")
    await OnNewChatMessage.broadcast(payload=chat_event("still here"), group="kittens")
    assert await session.result("b") == chat_result("still here")
    assert await session.nothing()
    await session.close()


# --- publish ------------------------------------------------------------------------------


async def test_skip_suppresses_for_that_subscriber_only(subprotocol: str) -> None:
    sender = await subscribe_chat(subprotocol)
    listener = await subscribe_chat(subprotocol)
    channel = (await sender.query("c", "{ channelName }"))["data"]["channelName"]
    await OnNewChatMessage.broadcast(payload=chat_event("mine", sender_channel=channel))
    assert await listener.result("s") == chat_result("mine")
    assert await sender.nothing()
    await sender.close()
    await listener.close()


async def test_publish_changing_its_payload_changes_no_other_subscribers(subprotocol: str) -> None:
    # The process decodes a broadcast once; each publish of a class's own gets a copy.
    names = ("ann", "bob", "cy")
    sessions = []
    for name in names:
        session = await WsSession.open(confirming, subprotocol, payload={"name": name})
        await session.start("s", "subscription { onThread { messages } }")
        assert await session.result("s") == {"data": None}
        sessions.append(session)
    await OnThread.broadcast(payload=Thread(messages=["hello"]))
    for session, name in zip(sessions, names, strict=True):
        assert await session.result("s") == {
            "data": {"onThread": {"messages": ["hello", f"seen by {name}"]}}
        }
        await session.close()


def test_only_classes_whose_own_code_gets_the_payload_copy_it() -> None:
    from tests.model_subscriptions import OnEditableNoteChanged, OnMessageChanged, OnNoteChanged
    from tests.subscriptions import OnPersonal

    # Default publish (and authorize_delivery): the subscribers share the decoded payload.
    assert not OnMeasurement._cgt_payload_reaches_user_code()
    assert not OnAnything._cgt_payload_reaches_user_code()
    assert not OnMessageChanged._cgt_payload_reaches_user_code()
    # A publish, an authorize_delivery or resolvers of the user's: a copy each.
    assert OnThread._cgt_payload_reaches_user_code()
    assert OnNewChatMessage._cgt_payload_reaches_user_code()
    assert OnNoteChanged._cgt_payload_reaches_user_code()
    assert OnEditableNoteChanged._cgt_payload_reaches_user_code()
    assert OnPersonal._cgt_payload_reaches_user_code()


async def test_default_publish_builds_from_attributes_and_arguments_work(subprotocol: str) -> None:
    session = await WsSession.open(confirming, subprotocol)
    query = (
        'subscription { onMeasurement(sensors: ["t1"], color: BLUE, filter: {minValue: 3})'
        " { sensor value } }"
    )
    await session.start("m", query)
    assert await session.result("m") == {"data": None}
    await OnMeasurement.broadcast(payload=Measurement(sensor="t1", value=7), group="t1")
    await OnMeasurement.broadcast(payload=Measurement(sensor="t2", value=8), group="t2")
    assert await session.result("m") == {"data": {"onMeasurement": {"sensor": "t1", "value": 7}}}
    assert await session.nothing()
    await session.close()


async def test_no_subscribe_no_publish_uses_default_group_and_mapping(subprotocol: str) -> None:
    session = await WsSession.open(confirming, subprotocol)
    await session.start("a", "subscription { anything { value } }")
    assert await session.result("a") == {"data": None}
    await OnAnything.broadcast(payload={"value": 42})
    assert await session.result("a") == {"data": {"anything": {"value": 42}}}
    await session.close()


async def test_publish_error_reaches_client_and_subscription_continues(subprotocol: str) -> None:
    session = await WsSession.open(confirming, subprotocol)
    await session.start("p", "subscription { onSlowPublish { value } }")
    assert await session.result("p") == {"data": None}
    await OnSlowPublish.broadcast(payload=-1)
    await OnSlowPublish.broadcast(payload=-2)
    await OnSlowPublish.broadcast(payload=5)
    failed = await session.result("p")
    assert failed["data"] is None
    assert failed["errors"][0]["message"] == "publish failed on purpose"
    garbage = await session.result("p")
    assert "expected OnSlowPublish or SKIP" in garbage["errors"][0]["message"]
    assert await session.result("p") == {"data": {"onSlowPublish": {"value": 5}}}
    await session.close()


async def test_subscribe_error_is_an_operation_error_and_registers_nothing(
    subprotocol: str,
) -> None:
    session = await WsSession.open(app, subprotocol)
    await session.start("p", "subscription { onSlowPublish(delay: -1) { value } }")
    payload = await session.result("p")
    assert payload["data"] is None
    assert payload["errors"][0]["message"] == "negative delays are not allowed"
    await session.completed("p")
    assert not get_fanout("default").members
    assert UNSUBSCRIBED == []
    await session.close()


# --- ordering, limits ---------------------------------------------------------------------


async def test_order_kept_under_1000_rapid_broadcasts(subprotocol: str) -> None:
    session = await WsSession.open(confirming, subprotocol)
    await session.start("o", "subscription { onSlowPublish { value } }")
    assert await session.result("o") == {"data": None}
    for number in range(1000):
        await OnSlowPublish.broadcast(payload=number)
    for number in range(1000):
        assert await session.result("o") == {"data": {"onSlowPublish": {"value": number}}}
    assert await session.nothing()
    await session.close()


async def test_queue_limit_drops_oldest_and_warns(
    subprotocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    session = await WsSession.open(confirming, subprotocol)
    await session.start("l", "subscription { onLimited { value } }")
    assert await session.result("l") == {"data": None}
    fanout = get_fanout("default")
    (registration,) = fanout.members[group_name(OnLimited.group_namespace, None)]
    # Fill the queue faster than the subscriber can drain it: deliver straight into the
    # fan-out without yielding to the loop.
    with caplog.at_level(logging.WARNING, "channels_graphql_typed"):
        for number in range(100):
            fanout.dispatch(
                notify_message(
                    group_name(OnLimited.group_namespace, None),
                    serialize_payload(number),
                )
            )
    assert len(registration.queue) == 5
    assert registration.queue.dropped == 95
    assert sum("does not keep up" in record.message for record in caplog.records) == 1
    values = [(await session.result("l"))["data"]["onLimited"]["value"] for _ in range(5)]
    assert values == [95, 96, 97, 98, 99]
    assert await session.nothing()
    await session.close()


# --- confirmation and races ---------------------------------------------------------------


async def test_broadcast_right_after_confirmation_is_never_lost(subprotocol: str) -> None:
    for attempt in range(20):
        session = await WsSession.open(confirming, subprotocol)
        await session.start("s", CHAT, {"room": f"race{attempt}"})
        assert await session.result("s") == {"data": None}
        await OnNewChatMessage.broadcast(
            payload=chat_event("first", room=f"race{attempt}"), group=f"race{attempt}"
        )
        assert await session.result("s") == chat_result("first", room=f"race{attempt}")
        await session.close()


async def test_strict_ordering_subscription_then_query(subprotocol: str) -> None:
    session = await WsSession.open(OrderedTypedConsumer.as_asgi(), subprotocol)
    await session.start("s", "subscription { onSlowPublish(delay: 0.2) { value } }")
    await session.start("q", "{ hello }")
    assert await session.result("s") == {"data": None}
    assert await session.result("q") == {"data": {"hello": "Hello, world!"}}
    await session.completed("q")
    await session.close()


async def test_complete_during_subscribe_ends_cleanly(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    await session.start("p", "subscription { onSlowPublish(delay: 0.3) { value } }")
    await asyncio.sleep(0.05)
    await session.stop("p")
    if subprotocol == cgt.GRAPHQL_WS:
        await session.completed("p")
    await asyncio.sleep(0.4)
    await OnSlowPublish.broadcast(payload=1)
    assert await session.nothing(0.2)
    assert not get_fanout("default").members
    await session.close()


# --- unsubscribe and unsubscribed ---------------------------------------------------------


async def test_server_side_unsubscribe_completes_each_subscription(subprotocol: str) -> None:
    kittens = await subscribe_chat(subprotocol, "kittens")
    second = await subscribe_chat(subprotocol, "kittens")
    puppies = await subscribe_chat(subprotocol, "puppies")
    await OnNewChatMessage.broadcast(payload=chat_event("last"), group="kittens")
    await OnNewChatMessage.unsubscribe(group="kittens")
    for session in (kittens, second):
        assert await session.result("s") == chat_result("last")
        await session.completed("s")
    assert await puppies.nothing()
    assert sorted(UNSUBSCRIBED) == [("chat", "kittens"), ("chat", "kittens")]
    await OnNewChatMessage.broadcast(payload=chat_event("after"), group="kittens")
    assert await kittens.nothing()
    for session in (kittens, second, puppies):
        await session.close()


async def test_unsubscribed_runs_on_client_complete_and_on_disconnect(subprotocol: str) -> None:
    session = await subscribe_chat(subprotocol, "one")
    await session.stop("s")
    if subprotocol == cgt.GRAPHQL_WS:
        await session.completed("s")
    await asyncio.sleep(0.05)
    assert UNSUBSCRIBED == [("chat", "one")]
    await session.start("t", CHAT, {"room": "two"})
    await asyncio.sleep(0.05)
    await session.close()
    assert UNSUBSCRIBED == [("chat", "one"), ("chat", "two")]
    assert not get_fanout("default").members


async def test_unsubscribe_sync_from_a_thread(subprotocol: str) -> None:
    session = await subscribe_chat(subprotocol, "sync")
    await sync_to_async(OnNewChatMessage.unsubscribe_sync, thread_sensitive=False)(group="sync")
    await session.completed("s")
    await session.close()


# --- broadcast from sync and async code ---------------------------------------------------


async def test_broadcast_sync_from_a_worker_thread(subprotocol: str) -> None:
    session = await subscribe_chat(subprotocol, "sync")

    def send() -> None:
        OnNewChatMessage.broadcast_sync(payload=chat_event("from sync", room="sync"), group="sync")

    await sync_to_async(send, thread_sensitive=False)()
    assert await session.result("s") == chat_result("from sync", room="sync")
    await session.close()


async def test_broadcast_from_sync_and_async_django_views(subprotocol: str) -> None:
    from django.test import AsyncClient

    session = await subscribe_chat(subprotocol, "views")
    client = AsyncClient()
    response = await client.get("/broadcast-sync/", {"room": "views", "text": "sync view"})
    assert response.status_code == 200
    assert await session.result("s") == chat_result("sync view", room="views")
    response = await client.get("/broadcast-async/", {"room": "views", "text": "async view"})
    assert response.status_code == 200
    assert await session.result("s") == chat_result("async view", room="views")
    await session.close()


# --- serialization ------------------------------------------------------------------------


async def test_payload_types_round_trip_through_the_layer(subprotocol: str) -> None:
    session = await WsSession.open(confirming, subprotocol)
    await session.start("e", "subscription { onEverything { ok } }")
    assert await session.result("e") == {"data": None}
    payload = Everything(
        when=datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
        day=datetime.date(2026, 1, 2),
        moment=datetime.time(3, 4, 5),
        span=datetime.timedelta(days=1, seconds=2, microseconds=3),
        key=uuid.uuid4(),
        amount=decimal.Decimal("12.345"),
        color=Color.BLUE,
        pair=(1, "two"),
        items=[1, 2.5, "three", None, True, b"bytes", [Color.RED]],
        mapping={"a": 1, 2: "b", "nested": {"t": (1, 2)}},
        tags=frozenset({"x", "y"}),
        nested=Measurement(sensor="s", value=1),
    )
    await OnEverything.broadcast(payload=payload)
    assert await session.result("e") == {"data": {"onEverything": {"ok": True}}}
    (received,) = RECEIVED
    assert received == payload
    assert type(received.pair) is tuple
    assert type(received.nested) is Measurement
    assert received.color is Color.BLUE
    await session.close()


@pytest.mark.django_db(transaction=True)
async def test_django_model_round_trips_even_after_deletion(subprotocol: str) -> None:
    from tests.app.models import Note

    session = await WsSession.open(confirming, subprotocol)
    await session.start("e", "subscription { onEverything { ok } }")
    assert await session.result("e") == {"data": None}
    note = await Note.objects.acreate(text="remember")
    await note.adelete()
    note.pk = note.id = 7  # what it was is what travels; the row is gone
    await OnEverything.broadcast(payload={"note": note})
    assert await session.result("e") == {"data": {"onEverything": {"ok": True}}}
    received = RECEIVED[0]["note"]
    assert type(received) is Note
    assert (received.pk, received.text, received.created) == (7, "remember", note.created)
    await session.close()


class NotSerializable:
    pass


@pytest.mark.parametrize(
    "payload",
    [NotSerializable(), {"x": NotSerializable()}, [object()], lambda: None],
)
async def test_unserializable_payload_raises_type_error_at_the_call_site(payload: Any) -> None:
    with pytest.raises(TypeError, match="Cannot broadcast"):
        await OnEverything.broadcast(payload=payload)


async def test_local_dataclass_payload_is_rejected_clearly() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    with pytest.raises(cgt.PayloadSerializationError, match="module level"):
        await OnEverything.broadcast(payload=Local(x=1))


@cgt.register_payload_type
class Point(NamedTuple):
    x: int
    y: int


@cgt.register_payload_type
@dataclasses.dataclass
class Tagged:
    room: str
    text: str

    def __post_init__(self) -> None:
        self.text = f"[{self.room}] {self.text}"


def test_named_tuples_and_post_init_dataclasses_round_trip_unchanged() -> None:
    from channels_graphql_typed._serialization import deserialize_payload, serialize_payload

    point = deserialize_payload(serialize_payload(Point(1, 2)))
    assert type(point) is Point
    assert point == Point(1, 2)
    tagged = Tagged(room="lobby", text="hi")
    assert deserialize_payload(serialize_payload(tagged)) == tagged  # no second prefix
