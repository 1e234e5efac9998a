"""Mistakes in a subscription class fail when the class is defined (or at the broadcast
call, in the sender's process), with a message that says what to write."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, Self, TypeVar

import pytest

import channels_graphql_typed as cgt
from tests.app.models import Note
from tests.subscriptions import ChatEvent, OnAnything, OnMeasurement, OnNewChatMessage

if TYPE_CHECKING:
    import contextlib

T = TypeVar("T")


def fails(match: str) -> contextlib.AbstractContextManager[pytest.ExceptionInfo[TypeError]]:
    return pytest.raises(TypeError, match=re.escape(match))


def test_a_sync_subscribe_is_refused_with_the_fix() -> None:
    with fails("OnSync.subscribe must be async: write `async def subscribe(cls, ...)`"):

        class OnSync(cgt.Subscription[ChatEvent]):
            text: str

            @classmethod
            def subscribe(cls, info: cgt.Info) -> list[str]:  # type: ignore[override]
                return []


def test_a_sync_publish_is_refused_with_the_fix() -> None:
    with fails("OnSync.publish must be async: write `async def publish(cls, ...)`"):

        class OnSync(cgt.Subscription[ChatEvent]):
            text: str

            @classmethod
            def publish(cls, payload: ChatEvent, info: cgt.Info) -> Self:  # type: ignore[override]
                return cls(text=payload.text)


def test_a_sync_unsubscribed_is_refused() -> None:
    with fails("OnSync.unsubscribed must be async"):

        class OnSync(cgt.Subscription[ChatEvent]):
            text: str

            @classmethod
            def unsubscribed(cls, info: cgt.Info) -> None:  # type: ignore[override]
                pass


def test_a_subscribe_without_classmethod_is_refused_with_the_fix() -> None:
    with fails(
        "OnPlain.subscribe must be a class method: put @classmethod above "
        "`async def subscribe(cls, info, ...)`"
    ):

        class OnPlain(cgt.Subscription[ChatEvent]):
            text: str

            async def subscribe(self, info: cgt.Info) -> list[str]:  # type: ignore[override]
                return []


def test_a_static_publish_is_refused() -> None:
    with fails("OnStatic.publish must be a class method"):

        class OnStatic(cgt.Subscription[ChatEvent]):
            text: str

            @staticmethod
            async def publish(payload: ChatEvent, info: cgt.Info) -> Any:
                return None


def test_a_generator_subscribe_is_refused() -> None:
    with fails("OnGenerator.subscribe must return its result, not yield"):

        class OnGenerator(cgt.Subscription[ChatEvent]):
            text: str

            @classmethod
            async def subscribe(cls, info: cgt.Info) -> Any:
                yield "room"


def test_sync_model_subscription_hooks_are_refused() -> None:
    with fails("OnNoteSync.authorize_subscription must be async"):

        class OnNoteSync(cgt.ModelSubscription[Note]):
            class Meta:
                fields = ["id"]

            @classmethod
            def authorize_subscription(cls, info: cgt.Info) -> bool:  # type: ignore[override]
                return True

    with fails("OnNoteDelivery.authorize_delivery must be a class method"):

        class OnNoteDelivery(cgt.ModelSubscription[Note]):
            class Meta:
                fields = ["id"]

            async def authorize_delivery(  # type: ignore[override]
                self, event: cgt.ModelEvent[Note], info: cgt.Info
            ) -> bool:
                return True


def test_a_class_without_result_fields_is_refused_with_the_fix() -> None:
    with fails("OnNothing has no result fields: annotate the fields of its result type"):

        class OnNothing(cgt.Subscription[ChatEvent]):
            text = "not annotated"


def test_a_generic_base_needs_no_fields() -> None:
    class Base(cgt.Subscription[T]):
        @classmethod
        async def subscribe(cls, info: cgt.Info) -> list[str]:
            return []

    class Concrete(Base[int]):
        value: int

    assert Concrete._payload_class is int


@dataclasses.dataclass
class Other:
    text: str


async def test_broadcasting_a_payload_of_another_type_raises_at_the_call() -> None:
    payload: Any = {"chatroom": "kittens", "text": "hi", "sender": "a", "sender_channel": ""}
    with fails(
        "OnNewChatMessage.broadcast: the payload must be a ChatEvent (the type parameter "
        "of OnNewChatMessage), not dict"
    ):
        await OnNewChatMessage.broadcast(payload=payload, group="kittens")


def test_broadcast_sync_checks_the_payload_too() -> None:
    payload: Any = Other("hi")
    with fails("OnNewChatMessage.broadcast: the payload must be a ChatEvent"):
        OnNewChatMessage.broadcast_sync(payload=payload, group="kittens")


async def test_generic_payload_types_check_their_class() -> None:
    bad: Any = [("value", 1)]
    with fails("OnAnything.broadcast: the payload must be a dict"):
        await OnAnything.broadcast(payload=bad)
    await OnAnything.broadcast(payload={"value": 1})


async def test_numbers_are_promoted_and_unions_are_checked() -> None:
    class OnFloat(cgt.Subscription[float]):
        value: float

    class OnEither(cgt.Subscription[int | str | None]):
        value: str

    await OnFloat.broadcast(payload=1)
    await OnEither.broadcast(payload=None)
    bad: Any = b"bytes"
    with fails("OnEither.broadcast: the payload must be int or str or NoneType"):
        await OnEither.broadcast(payload=bad)


async def test_any_and_declared_classes_are_not_in_the_way() -> None:
    class OnWhatever(cgt.Subscription[Any]):
        value: int

    assert OnWhatever._payload_class is None
    await OnWhatever.broadcast(payload={"value": 1})
    assert OnMeasurement._payload_class is not None


async def test_a_model_subscription_checks_its_event_class() -> None:
    class OnNoteChanged(cgt.ModelSubscription[Note]):
        class Meta:
            fields = ["id"]

    bad: Any = Note(id=1)
    with fails("OnNoteChanged.broadcast: the payload must be a ModelEvent"):
        await OnNoteChanged.broadcast(payload=bad)
