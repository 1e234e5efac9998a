"""Model subscriptions: ORM changes reach subscribers, on both subprotocols."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.db import models, transaction

import channels_graphql_typed as cgt
from channels_graphql_typed import _model_subscription as model_subscription
from channels_graphql_typed._fanout import get_fanout
from channels_graphql_typed._groups import group_name
from tests.app.models import Gadget, Message, Note, Room
from tests.helpers import WsSession
from tests.model_subscriptions import (
    DELIVERED,
    EXECUTIONS,
    ModelConsumer,
    OnMessageChanged,
    schema,
)
from tests.redis_support import LAYERS, layer_settings, require_redis

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.django_db(transaction=True)

app = ModelConsumer.as_asgi()
ROOT = Path(__file__).parent.parent
CREATED = cgt.ModelAction.CREATED
UPDATED = cgt.ModelAction.UPDATED
DELETED = cgt.ModelAction.DELETED
MESSAGE_FIELDS = "action node { id roomId text sender created }"


async def subscribe(
    subprotocol: str,
    arguments: str = "",
    *,
    field: str = "onMessageChanged",
    selection: str = MESSAGE_FIELDS,
    payload: dict[str, Any] | None = None,
) -> WsSession:
    """A session subscribed (and confirmed: nothing it should get can be missed)."""
    session = await WsSession.open(app, subprotocol, payload=payload)
    await session.start("s", f"subscription {{ {field}{arguments} {{ {selection} }} }}")
    assert await session.result("s") == {"data": None}
    return session


def message_event(action: cgt.ModelAction, message: Message, pk: int | None = None) -> Any:
    node = {
        "id": str(message.pk if pk is None else pk),
        "roomId": None if message.room_id is None else str(message.room_id),
        "text": message.text,
        "sender": message.sender,
        "created": message.created.isoformat(),
    }
    return {"data": {"onMessageChanged": {"action": action.name, "node": node}}}


def texts(result: Any, field: str = "onMessageChanged", key: str = "text") -> tuple[str, str]:
    value = result["data"][field]
    return value["action"], value["node"][key]


@pytest.fixture(autouse=True)
def _clear_records() -> None:
    DELIVERED.clear()


# --- declaration --------------------------------------------------------------------------


def test_schema() -> None:
    sdl = str(schema)
    assert (
        "onMessageChanged(actions: [ModelAction!] = [CREATED, UPDATED, DELETED], id: ID = null)"
        ": OnMessageChanged!"
    ) in sdl
    assert "enum ModelAction {\n  CREATED\n  UPDATED\n  DELETED\n}" in sdl
    assert (
        "type OnMessageChanged {\n  action: ModelAction!\n  node: OnMessageChangedNode!\n}" in sdl
    )
    assert (
        "type OnMessageChangedNode {\n  id: ID!\n  roomId: ID\n\n"
        '  """What was said."""\n  text: String!\n  sender: String!\n  created: DateTime!\n}'
    ) in sdl
    assert (
        "type OnGadgetChangedNode {\n  id: ID!\n  name: String!\n  color: String!\n"
        "  enabled: Boolean!\n  count: Int\n  ratio: Float!\n  price: Decimal!\n"
        "  made: DateTime\n  day: Date\n  moment: Time\n  serial: UUID\n  settings: JSON!\n"
        "  address: String\n}"
    ) in sdl
    assert '"""Changes to chat messages."""\n  onMessageChanged(' in sdl
    assert OnMessageChanged.model is Message


def test_declaration_mistakes_raise_type_errors() -> None:
    with pytest.raises(TypeError, match=r"class Meta: fields"):

        class NoMeta(cgt.ModelSubscription[Message]):
            pass

    with pytest.raises(TypeError, match=r"class Meta: fields"):

        class EmptyFields(cgt.ModelSubscription[Message]):
            class Meta:
                fields: list[str] = []

    with pytest.raises(TypeError, match=r"no concrete field 'colour' \(it has: id, room, text"):

        class Typo(cgt.ModelSubscription[Message]):
            class Meta:
                fields = ["colour"]

    with pytest.raises(TypeError, match="no concrete field 'tags'"):

        class ManyToMany(cgt.ModelSubscription[Message]):
            class Meta:
                fields = ["tags"]

    with pytest.raises(TypeError, match="listed twice"):

        class Twice(cgt.ModelSubscription[Message]):
            class Meta:
                fields = ["room", "room_id"]

    with pytest.raises(TypeError, match="lifetime is a DurationField, which model subscriptions"):

        class Duration(cgt.ModelSubscription[Gadget]):
            class Meta:
                fields = ["id", "lifetime"]

    with pytest.raises(TypeError, match="takes a Django model class, not <class 'int'>"):

        class NotAModel(cgt.ModelSubscription[int]):  # type: ignore[type-var]
            class Meta:
                fields = ["id"]

    with pytest.raises(TypeError, match="'node' is given by ModelSubscription"):

        class Annotated(cgt.ModelSubscription[Message]):
            node: Message

            class Meta:
                fields = ["id"]

    class Abstract(models.Model):
        class Meta:
            abstract = True
            app_label = "app"

    with pytest.raises(TypeError, match="abstract model"):

        class OfAbstract(cgt.ModelSubscription[Abstract]):
            class Meta:
                fields = ["id"]


async def test_generic_base_classes_are_not_graphql_types(subprotocol: str) -> None:
    session = await subscribe(
        subprotocol, field="onNoteChanged", selection="action node { id text }"
    )
    note = await Note.objects.acreate(text="remember")
    assert await session.result("s") == {
        "data": {
            "onNoteChanged": {"action": "CREATED", "node": {"id": str(note.pk), "text": "remember"}}
        }
    }
    assert DELIVERED == [("OnNoteChanged", CREATED)]
    assert "type Recorded" not in str(schema)
    await session.close()


# --- changes through the ORM -------------------------------------------------------------


async def test_async_orm_create_update_delete(subprotocol: str) -> None:
    session = await subscribe(subprotocol)
    message = await Message.objects.acreate(text="hello", sender="alice")
    assert await session.result("s") == message_event(CREATED, message)
    message.text = "hello again"
    await message.asave()
    assert await session.result("s") == message_event(UPDATED, message)
    pk = message.pk
    await message.adelete()
    assert message.pk is None
    assert await session.result("s") == message_event(DELETED, message, pk=pk)
    assert await session.nothing()
    await session.close()


async def test_sync_orm_in_a_thread_notifies_each_change_with_its_values(subprotocol: str) -> None:
    session = await subscribe(subprotocol)

    def change() -> int:
        room = Room.objects.create(name="lobby")
        with transaction.atomic():
            message = Message.objects.create(room=room, text="draft", sender="bob")
            message.text = "final"
            message.save()
        pk = message.pk
        Message.objects.get(pk=pk).delete()
        return pk

    pk = await sync_to_async(change)()
    # Both notifications of the atomic block are sent at its commit, each with the
    # values the row had when it was saved.
    assert texts(await session.result("s")) == ("CREATED", "draft")
    assert texts(await session.result("s")) == ("UPDATED", "final")
    deleted = (await session.result("s"))["data"]["onMessageChanged"]
    assert deleted["action"] == "DELETED"
    assert deleted["node"]["id"] == str(pk)
    assert deleted["node"]["text"] == "final"
    assert deleted["node"]["roomId"] is not None
    assert await session.nothing()
    await session.close()


async def test_each_change_of_one_row_delivers_its_own_values(subprotocol: str) -> None:
    # Results are shared between the subscribers of one event, never between two changes
    # of one row (model instances compare equal by primary key alone).
    sessions = [await subscribe(subprotocol, selection="action node { text }") for _ in range(5)]
    message = await Message.objects.acreate(text="one", sender="x")
    EXECUTIONS.clear()
    for text in ("two", "three", "two"):
        message.text = text
        await message.asave()
    for session in sessions:
        assert [texts(await session.result("s")) for _ in range(4)] == [
            ("CREATED", "one"),
            ("UPDATED", "two"),
            ("UPDATED", "three"),
            ("UPDATED", "two"),
        ]
        await session.close()
    # Once per change, not per subscriber; the last change has the values of the first
    # update, so the same result.
    assert EXECUTIONS == ["onMessageChanged"] * 2


async def test_fields_of_its_own_are_never_shared_between_subscribers(subprotocol: str) -> None:
    # can_edit is set for each subscriber by publish: the result of an editor must not
    # reach a reader, although the event (action, row, values) is the same for both.
    editor = await subscribe(
        subprotocol,
        field="onEditableNoteChanged",
        selection="action node { text } canEdit",
        payload={"editor": True},
    )
    reader = await subscribe(
        subprotocol, field="onEditableNoteChanged", selection="action node { text } canEdit"
    )
    note = await Note.objects.acreate(text=f"shared? {subprotocol}")
    await note.asave()  # the same values again: the same event for every subscriber
    for session, can_edit in ((editor, True), (reader, False)):
        for action in ("CREATED", "UPDATED"):
            result = (await session.result("s"))["data"]["onEditableNoteChanged"]
            assert result == {
                "action": action,
                "node": {"text": f"shared? {subprotocol}"},
                "canEdit": can_edit,
            }
        await session.close()


def test_the_event_key_covers_every_field_of_the_result() -> None:
    from channels_graphql_typed._result_sharing import event_key
    from tests.model_subscriptions import OnEditableNoteChanged

    def event(can_edit: Any, text: str = "a") -> Any:
        return OnEditableNoteChanged(action=UPDATED, node=Note(pk=1, text=text), can_edit=can_edit)

    assert event_key(event(True)) == event_key(event(True))
    assert event_key(event(True)) != event_key(event(False))
    assert event_key(event(True)) != event_key(event(True, "b"))
    # A value that is not exactly comparable shares nothing.
    assert event_key(event([True])) is None


async def test_delete_delivers_the_last_values(subprotocol: str) -> None:
    message = await Message.objects.acreate(text="first", sender="carol")
    session = await subscribe(subprotocol, "(actions: [DELETED])")
    message.text = "last words"
    await message.asave()
    pk = message.pk
    await Message.objects.filter(pk=pk).aupdate(sender="changed in the database only")
    await message.adelete()
    result = await session.result("s")
    assert result == message_event(DELETED, message, pk=pk)
    assert result["data"]["onMessageChanged"]["node"]["text"] == "last words"
    await session.close()


async def test_cascade_deletion_notifies_each_deleted_row(subprotocol: str) -> None:
    room = await Room.objects.acreate(name="closing")
    first = await Message.objects.acreate(room=room, text="one", sender="a")
    second = await Message.objects.acreate(room=room, text="two", sender="a")
    session = await subscribe(subprotocol, "(actions: [DELETED])", selection="node { id roomId }")
    room_pk = room.pk
    await room.adelete()
    received = [(await session.result("s"))["data"]["onMessageChanged"]["node"] for _ in range(2)]
    assert sorted(received, key=lambda node: int(node["id"])) == [
        {"id": str(message.pk), "roomId": str(room_pk)} for message in (first, second)
    ]
    assert await session.nothing()
    await session.close()


async def test_every_exposed_field_type_round_trips(subprotocol: str) -> None:
    selection = (
        "action node { id name color enabled count ratio price made day moment serial "
        "settings address }"
    )
    session = await subscribe(subprotocol, field="onGadgetChanged", selection=selection)
    made = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)
    serial = uuid.UUID("12345678-1234-5678-1234-567812345678")
    gadget = await Gadget.objects.acreate(
        name="widget",
        color=Gadget.Color.BLUE,
        enabled=False,
        count=3,
        ratio=0.25,
        price=decimal.Decimal("12.50"),
        made=made,
        day=made.date(),
        moment=made.time(),
        serial=serial,
        settings={"a": [1, 2], "b": None},
        address="192.0.2.1",
        manual="manuals/widget.pdf",
        lifetime=datetime.timedelta(days=2),
        blob=b"\x00\x01",
    )
    assert await session.result("s") == {
        "data": {
            "onGadgetChanged": {
                "action": "CREATED",
                "node": {
                    "id": str(gadget.pk),
                    "name": "widget",
                    "color": "blue",
                    "enabled": False,
                    "count": 3,
                    "ratio": 0.25,
                    "price": "12.50",
                    "made": made.isoformat(),
                    "day": "2024-05-06",
                    "moment": "07:08:09.123456",
                    "serial": str(serial),
                    "settings": {"a": [1, 2], "b": None},
                    "address": "192.0.2.1",
                },
            }
        }
    }
    await session.close()


# --- filters and groups ------------------------------------------------------------------


async def test_filter_by_action(subprotocol: str) -> None:
    deletions = await subscribe(subprotocol, "(actions: [DELETED])")
    writes = await subscribe(subprotocol, "(actions: [CREATED, UPDATED])")
    message = await Message.objects.acreate(text="a", sender="x")
    message.text = "b"
    await message.asave()
    await message.adelete()
    assert texts(await writes.result("s")) == ("CREATED", "a")
    assert texts(await writes.result("s")) == ("UPDATED", "b")
    assert texts(await deletions.result("s")) == ("DELETED", "b")
    assert await writes.nothing()
    assert await deletions.nothing()
    await writes.close()
    await deletions.close()


async def test_filter_by_id(subprotocol: str) -> None:
    watched = await Message.objects.acreate(text="watched", sender="x")
    other = await Message.objects.acreate(text="other", sender="x")
    row = await subscribe(subprotocol, f'(id: "{watched.pk}")')
    # The id is compared as the primary key's value: "007" is 7.
    updates = await subscribe(subprotocol, f'(id: "00{watched.pk}", actions: [UPDATED])')
    other.text = "other changed"
    await other.asave()
    watched.text = "watched changed"
    await watched.asave()
    await watched.adelete()
    assert texts(await row.result("s")) == ("UPDATED", "watched changed")
    assert texts(await row.result("s")) == ("DELETED", "watched changed")
    assert texts(await updates.result("s")) == ("UPDATED", "watched changed")
    assert await row.nothing()
    assert await updates.nothing()
    await row.close()
    await updates.close()


async def test_filter_by_uuid_id_in_any_spelling(subprotocol: str) -> None:
    gadget = await Gadget.objects.acreate(name="g")
    session = await subscribe(
        subprotocol,
        f'(id: "{str(gadget.pk).upper()}")',
        field="onGadgetChanged",
        selection="action node { id name }",
    )
    await Gadget.objects.acreate(name="another")
    gadget.name = "renamed"
    await gadget.asave()
    assert texts(await session.result("s"), "onGadgetChanged", "name") == ("UPDATED", "renamed")
    assert await session.nothing()
    await session.close()


async def test_invalid_id_is_an_operation_error(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    await session.start("s", 'subscription { onMessageChanged(id: "seven") { action } }')
    result = await session.result("s")
    assert result["data"] is None
    assert result["errors"][0]["message"].startswith("Invalid id 'seven' for Message")
    await session.completed("s")
    assert not get_fanout("default").members
    await session.close()


async def test_group_layout_wakes_only_the_subscribers_of_that_action_and_row(
    subprotocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = await Message.objects.acreate(text="m", sender="x")
    all_changes = await subscribe(subprotocol)
    deletions = await subscribe(subprotocol, "(actions: [DELETED])")
    row = await subscribe(subprotocol, f'(id: "{message.pk}", actions: [UPDATED, DELETED])')
    namespace = OnMessageChanged.group_namespace
    members = get_fanout("default").members
    assert {name for name in members if name.startswith(namespace)} == {
        group_name(namespace, None),  # every subscription is in its class's default group
        group_name(namespace, "created"),
        group_name(namespace, "updated"),
        group_name(namespace, "deleted"),
        group_name(namespace, f"updated.{message.pk}"),
        group_name(namespace, f"deleted.{message.pk}"),
    }
    assert len(members[group_name(namespace, "deleted")]) == 2
    assert len(members[group_name(namespace, "updated")]) == 1
    assert len(members[group_name(namespace, f"updated.{message.pk}")]) == 1

    layer = get_channel_layer()
    assert layer is not None
    sent: list[str] = []
    original = layer.group_send

    async def spy(group: str, message: dict[str, Any]) -> None:
        sent.append(group)
        await original(group, message)

    monkeypatch.setattr(layer, "group_send", spy)
    other = await Message.objects.acreate(text="other", sender="x")
    other.text = "other changed"
    await other.asave()
    # A change is two channel-layer messages: its action's group and its row's group.
    assert [name for name in sent if name.startswith(namespace)] == [
        group_name(namespace, "created"),
        group_name(namespace, f"created.{other.pk}"),
        group_name(namespace, "updated"),
        group_name(namespace, f"updated.{other.pk}"),
    ]
    assert texts(await all_changes.result("s")) == ("CREATED", "other")
    assert texts(await all_changes.result("s")) == ("UPDATED", "other changed")
    assert await deletions.nothing()
    assert await row.nothing()
    for session in (all_changes, deletions, row):
        await session.close()


async def test_a_hand_broadcast_event_still_honours_the_arguments(subprotocol: str) -> None:
    message = await Message.objects.acreate(text="by hand", sender="x")
    all_changes = await subscribe(subprotocol)
    deletions = await subscribe(subprotocol, "(actions: [DELETED])")
    other_row = await subscribe(subprotocol, f'(id: "{message.pk + 1}")')
    await OnMessageChanged.broadcast(payload=cgt.ModelEvent(UPDATED, message))
    assert await all_changes.result("s") == message_event(UPDATED, message)
    assert await deletions.nothing()
    assert await other_row.nothing()
    for session in (all_changes, deletions, other_row):
        await session.close()


# --- transactions ------------------------------------------------------------------------


async def test_rollback_notifies_nobody(subprotocol: str) -> None:
    session = await subscribe(subprotocol, selection="action node { text }")

    def change() -> None:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            Message.objects.create(text="rolled back", sender="x")
            raise RuntimeError
        with transaction.atomic():
            Message.objects.create(text="committed", sender="x")
            with contextlib.suppress(RuntimeError), transaction.atomic():
                Message.objects.create(text="savepoint rolled back", sender="x")
                raise RuntimeError

    await sync_to_async(change)()
    assert texts(await session.result("s")) == ("CREATED", "committed")
    assert await session.nothing()
    assert [message.text async for message in Message.objects.all()] == ["committed"]
    await session.close()


async def test_notification_waits_for_the_commit(subprotocol: str) -> None:
    session = await subscribe(subprotocol, selection="action node { text }")
    seen_inside: list[bool] = []

    def change() -> None:
        with transaction.atomic():
            Message.objects.create(text="pending", sender="x")
            seen_inside.append(bool(transaction.get_connection().run_on_commit))

    await sync_to_async(change)()
    assert seen_inside == [True]
    assert texts(await session.result("s")) == ("CREATED", "pending")
    await session.close()


# --- explicit notifications --------------------------------------------------------------


async def test_bulk_operations_and_notify(subprotocol: str) -> None:
    session = await subscribe(subprotocol, selection="action node { id text }")
    created = await Message.objects.abulk_create(
        [Message(text="bulk 1", sender="x"), Message(text="bulk 2", sender="x")]
    )
    await Message.objects.filter(text="bulk 1").aupdate(text="updated in bulk")
    assert await session.nothing()  # neither sends a signal

    for message in created:
        await OnMessageChanged.notify(message, CREATED)
    assert texts(await session.result("s")) == ("CREATED", "bulk 1")
    assert texts(await session.result("s")) == ("CREATED", "bulk 2")

    def update_and_notify(commit: bool) -> None:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            queryset = Message.objects.filter(text__startswith="bulk")
            queryset.update(sender="y")
            for message in queryset:
                OnMessageChanged.notify_sync(message, UPDATED)
            if not commit:
                raise RuntimeError

    await sync_to_async(update_and_notify)(commit=False)
    assert await session.nothing()
    await sync_to_async(update_and_notify)(commit=True)
    assert texts(await session.result("s")) == ("UPDATED", "bulk 2")
    assert await session.nothing()

    # QuerySet.delete() does send post_delete, for every row.
    await Message.objects.all().adelete()
    deleted = {texts(await session.result("s")) for _ in range(2)}
    assert deleted == {("DELETED", "updated in bulk"), ("DELETED", "bulk 2")}
    await session.close()


async def test_orm_on_the_event_loop_thread_notifies_without_blocking_it(
    subprotocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await subscribe(subprotocol, selection="action node { text }")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    Message.objects.create(text="unsafe but allowed", sender="x")
    assert texts(await session.result("s")) == ("CREATED", "unsafe but allowed")
    await session.close()


async def test_notify_rejects_what_it_cannot_send() -> None:
    with pytest.raises(ValueError, match="without a primary key"):
        await OnMessageChanged.notify(Message(text="unsaved"), CREATED)
    with pytest.raises(TypeError, match="notifies Message changes, not Room"):
        await OnMessageChanged.notify(Room(pk=1, name="r"), CREATED)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"from async code, await OnMessageChanged.notify"):
        OnMessageChanged.notify_sync(Message(pk=1, text="saved"), CREATED)
    with pytest.raises(ValueError, match="without a primary key"):
        await sync_to_async(OnMessageChanged.notify_sync)(Message(text="unsaved"), CREATED)


async def test_a_failed_notification_never_fails_the_change(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def cannot_serialize(payload: Any) -> bytes:
        raise cgt.PayloadSerializationError("no")

    monkeypatch.setattr(model_subscription, "serialize_payload", cannot_serialize)
    with caplog.at_level(logging.ERROR, logger="channels_graphql_typed"):
        message = await Message.objects.acreate(text="saved anyway", sender="x")
    assert await Message.objects.filter(pk=message.pk).aexists()
    assert f"OnMessageChanged: cannot notify that Message {message.pk} was created" in caplog.text
    monkeypatch.undo()

    async def layer_down(data: bytes, group: str | None) -> None:
        raise ConnectionError("layer down")

    monkeypatch.setattr(OnMessageChanged, "_broadcast_serialized", layer_down)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="channels_graphql_typed"):
        await message.adelete()
    assert not await Message.objects.filter(pk=message.pk).aexists()
    assert "OnMessageChanged: a change notification was lost" in caplog.text


async def test_file_fields_do_not_stop_notifications(subprotocol: str) -> None:
    session = await subscribe(
        subprotocol, field="onGadgetChanged", selection="action node { name }"
    )
    gadget = await Gadget.objects.acreate(name="with manual", manual="manuals/a.pdf")
    assert gadget.__dict__["manual"].name == "manuals/a.pdf"  # a FieldFile once saved
    assert texts(await session.result("s"), "onGadgetChanged", "name") == (
        "CREATED",
        "with manual",
    )
    await session.close()


# --- authorization -----------------------------------------------------------------------


async def test_authorize_subscription(subprotocol: str) -> None:
    for payload, error in (
        ({}, "Not authorized to subscribe to OnGuardedMessageChanged"),
        ({"pass": True, "banned": True}, "Banned"),
    ):
        session = await WsSession.open(app, subprotocol, payload=payload)
        await session.start("s", "subscription { onGuardedMessageChanged { action } }")
        result = await session.result("s")
        assert result["data"] is None
        assert result["errors"][0]["message"] == error
        await session.completed("s")
        await session.close()
    assert not get_fanout("default").members


async def test_authorize_delivery_runs_with_each_subscribers_context(subprotocol: str) -> None:
    selection = "action node { text }"
    field = "onGuardedMessageChanged"
    staff = await subscribe(
        subprotocol,
        field=field,
        selection=selection,
        payload={"pass": True, "staff": True, "rooms": ["lobby"]},
    )
    member = await subscribe(
        subprotocol, field=field, selection=selection, payload={"pass": True, "rooms": ["lobby"]}
    )
    outsider = await subscribe(
        subprotocol, field=field, selection=selection, payload={"pass": True, "rooms": []}
    )
    lobby = await Room.objects.acreate(name="lobby")
    await Message.objects.acreate(room=lobby, text="public", sender="x")
    await Message.objects.acreate(room=lobby, text="secret", sender="x", secret=True)
    await Message.objects.acreate(text="roomless", sender="x")
    assert [texts(await staff.result("s"), field)[1] for _ in range(3)] == [
        "public",
        "secret",
        "roomless",
    ]
    assert [texts(await member.result("s"), field)[1] for _ in range(2)] == ["public", "roomless"]
    assert texts(await outsider.result("s"), field) == ("CREATED", "roomless")
    for session in (staff, member, outsider):
        assert await session.nothing()
        await session.close()


# --- across processes --------------------------------------------------------------------


@pytest.fixture(params=LAYERS, ids=lambda backend: backend.rsplit(".", 1)[-1])
def redis_layer(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    require_redis()
    settings.CHANNEL_LAYERS = layer_settings(request.param)
    channel_layers.backends.clear()
    yield request.param
    channel_layers.backends.clear()


async def test_a_change_in_another_process_reaches_subscribers(redis_layer: str) -> None:
    session = await subscribe(cgt.GRAPHQL_TRANSPORT_WS, selection="action node { id text }")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.model_changes_process",
        json.dumps(layer_settings(redis_layer)),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    pk = stdout.decode().strip()
    for action, text in (
        ("CREATED", "from another process"),
        ("UPDATED", "edited elsewhere"),
        ("DELETED", "edited elsewhere"),
    ):
        assert await session.result("s", timeout=10) == {
            "data": {"onMessageChanged": {"action": action, "node": {"id": pk, "text": text}}}
        }
    assert await session.nothing()
    await session.close()
