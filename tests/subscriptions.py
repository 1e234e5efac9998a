"""Typed subscriptions used by the tests, declared exactly as users declare them."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import TYPE_CHECKING, Any, NewType, Self

import strawberry
from strawberry.schema.config import StrawberryConfig

import channels_graphql_typed as cgt
from channels_graphql_typed import GraphqlWsConsumer
from tests.app.models import Note
from tests.schema import Mutation, Query

if TYPE_CHECKING:
    from channels_graphql_typed._protocol.messages import OperationPayload


@dataclasses.dataclass
class ChatEvent:
    chatroom: str
    text: str
    sender: str
    sender_channel: str


class OnNewChatMessage(cgt.Subscription[ChatEvent]):
    """New messages in one chatroom."""

    chatroom: str
    text: str
    sender: str

    @classmethod
    async def subscribe(cls, info: cgt.Info, chatroom: str) -> list[str]:
        return [chatroom]

    @classmethod
    async def publish(cls, payload: ChatEvent, info: cgt.Info, chatroom: str) -> Self | cgt.Skip:
        if payload.sender_channel == info.context.channel_name:
            return cgt.SKIP
        return cls(chatroom=payload.chatroom, text=payload.text, sender=payload.sender)

    @classmethod
    async def unsubscribed(cls, info: cgt.Info, chatroom: str) -> None:
        UNSUBSCRIBED.append(("chat", chatroom))


UNSUBSCRIBED: list[tuple[str, str]] = []


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.input
class Filter:
    min_value: int = 0


@dataclasses.dataclass
class Measurement:
    sensor: str
    value: int


class OnMeasurement(cgt.Subscription[Measurement]):
    """Measurements; no publish: built from the payload's attributes."""

    sensor: str
    value: int

    @classmethod
    async def subscribe(
        cls,
        info: cgt.Info,
        sensors: list[str] | None = None,
        color: Color = Color.RED,
        filter: Filter | None = None,
    ) -> list[str]:
        return sensors or []


class OnAnything(cgt.Subscription[dict[str, int]]):
    """No subscribe, no publish: the default group; the payload dict gives the fields."""

    value: int


class OnSlowPublish(cgt.Subscription[int]):
    """publish sleeps, raises or returns garbage depending on the payload."""

    value: int

    @classmethod
    async def subscribe(cls, info: cgt.Info, delay: float = 0.0) -> list[str]:
        if delay < 0:
            raise PermissionError("negative delays are not allowed")
        await asyncio.sleep(delay)
        return []

    @classmethod
    async def publish(cls, payload: int, info: cgt.Info, delay: float = 0.0) -> Self | cgt.Skip:
        if payload == -1:
            raise ValueError("publish failed on purpose")
        if payload == -2:
            return "garbage"  # type: ignore[return-value]  # tests the runtime check
        return cls(value=payload)

    @classmethod
    async def unsubscribed(cls, info: cgt.Info, delay: float = 0.0) -> None:
        UNSUBSCRIBED.append(("slow", str(delay)))


class OnLimited(cgt.Subscription[int]):
    """A tiny queue to observe overflow."""

    notification_queue_limit = 5
    value: int

    @classmethod
    async def publish(cls, payload: int, info: cgt.Info) -> Self | cgt.Skip:
        return cls(value=payload)


class OnKittens(cgt.Subscription[ChatEvent]):
    """Same group names as OnNewChatMessage: must never see its broadcasts."""

    text: str

    @classmethod
    async def subscribe(cls, info: cgt.Info, chatroom: str) -> list[str]:
        return [chatroom]


@dataclasses.dataclass(frozen=True)
class Everything:
    """A payload with every type that must round-trip through the channel layer."""

    when: datetime.datetime
    day: datetime.date
    moment: datetime.time
    span: datetime.timedelta
    key: uuid.UUID
    amount: decimal.Decimal
    color: Color
    pair: tuple[int, str]
    items: list[Any]
    mapping: dict[Any, Any]
    tags: frozenset[str]
    nested: Measurement | None


RECEIVED: list[Any] = []


class OnEverything(cgt.Subscription[Any]):
    """Records the payload objects it receives."""

    # Typed Any: what may travel in its payloads is named here.
    payload_types = (Everything, Note)

    ok: bool

    @classmethod
    async def publish(cls, payload: Any, info: cgt.Info) -> Self | cgt.Skip:
        RECEIVED.append(payload)
        return cls(ok=True)


class OnPersonal(cgt.Subscription[int]):
    """A field that reads the context: results must not be shared between subscribers."""

    value: int

    @strawberry.field
    def viewer(self, info: cgt.Info) -> str:
        return info.context.channel_name

    @classmethod
    async def publish(cls, payload: int, info: cgt.Info) -> Self | cgt.Skip:
        return cls(value=payload)


class OnPrivate(cgt.Subscription[int]):
    """Only for authenticated users."""

    value: int

    @classmethod
    async def subscribe(cls, info: cgt.Info) -> list[str]:
        user = info.context.user
        if user is None or not user.is_authenticated:
            raise PermissionError("You must be logged in")
        return []

    @classmethod
    async def publish(cls, payload: int, info: cgt.Info) -> Self | cgt.Skip:
        return cls(value=payload)


class OnBig(cgt.Subscription[int]):
    """Large notifications, to fill a socket that is not read."""

    seq: int
    text: str

    @classmethod
    async def publish(cls, payload: int, info: cgt.Info) -> Self | cgt.Skip:
        return cls(seq=payload, text="x" * 2000)


@dataclasses.dataclass
class Tree:
    """A recursive payload type: what an app builds from a recursive input object."""

    label: str
    child: Tree | None = None


@strawberry.input
class TreeInput:
    label: str
    child: TreeInput | None = None


def tree_from_input(tree: TreeInput) -> Tree:
    labels = []
    node: TreeInput | None = tree
    while node is not None:
        labels.append(node.label)
        node = node.child
    built: Tree | None = None
    for label in reversed(labels):
        built = Tree(label, built)
    assert built is not None
    return built


class OnTree(cgt.Subscription[Tree]):
    """Trees broadcast by ``broadcastTree``: a client-built payload."""

    label: str


class OnRooms(cgt.Subscription[ChatEvent]):
    """Chat messages of every room the client names: its groups come from its
    arguments, that is from the client."""

    chatroom: str
    text: str

    @classmethod
    async def subscribe(cls, info: cgt.Info, rooms: list[str]) -> list[str]:
        return rooms


@dataclasses.dataclass
class Thread:
    messages: list[str]


class OnThread(cgt.Subscription[Thread]):
    """Its publish changes the payload in place: the fan-out's decoded payload must not
    carry one subscriber's change to another."""

    messages: list[str]

    @classmethod
    async def publish(cls, payload: Thread, info: cgt.Info) -> Self | cgt.Skip:
        payload.messages.append(f"seen by {info.context.connection_params.get('name')}")
        return cls(messages=payload.messages)


@strawberry.type
class Mutations(Mutation):
    @strawberry.mutation
    async def broadcast_tree(self, tree: TreeInput) -> bool:
        """Broadcast what the client sent, as apps do with what clients submit."""
        await OnTree.broadcast(payload=tree_from_input(tree))
        return True


@strawberry.type
class Subscription:
    on_new_chat_message = OnNewChatMessage.field()
    on_measurement = OnMeasurement.field(description="Custom description")
    on_anything = OnAnything.field(name="anything")
    on_slow_publish = OnSlowPublish.field()
    on_limited = OnLimited.field()
    on_kittens = OnKittens.field(deprecation_reason="Use onNewChatMessage")
    on_everything = OnEverything.field()
    on_personal = OnPersonal.field()
    on_private = OnPrivate.field()
    on_big = OnBig.field()
    on_tree = OnTree.field()
    on_rooms = OnRooms.field()
    on_thread = OnThread.field()


schema = strawberry.Schema(query=Query, mutation=Mutations, subscription=Subscription)


class TypedConsumer(GraphqlWsConsumer):
    schema = schema


class ConfirmingConsumer(GraphqlWsConsumer):
    schema = schema
    confirm_subscriptions = True


ROOT_RESOLUTIONS: list[str] = []


def count_root_resolutions(next_: Any, root: Any, info: Any, **args: Any) -> Any:
    """Middleware recording each execution of a subscription root field."""
    if info.parent_type.name == "Subscription":
        ROOT_RESOLUTIONS.append(info.field_name)
    return next_(root, info, **args)


class CountingConsumer(GraphqlWsConsumer):
    schema = schema
    confirm_subscriptions = True
    middleware = (count_root_resolutions,)
    share_results_under_middleware = True  # counting does not depend on the subscriber


class OrderedTypedConsumer(GraphqlWsConsumer):
    schema = schema
    strict_ordering = True
    confirm_subscriptions = True


class SmallQueueConsumer(GraphqlWsConsumer):
    schema = schema
    confirm_subscriptions = True
    notification_queue_limit = 100


# --- custom scalars: a result that reaches one may render differently per connection ---

VIEWER_UTC_OFFSET: contextvars.ContextVar[int] = contextvars.ContextVar(
    "viewer_utc_offset", default=0
)
"""Hours east of UTC of the connection's viewer, set for each of its operations."""

LocalDateTime = NewType("LocalDateTime", datetime.datetime)
"""A custom scalar: an instant, rendered in the viewer's time zone."""
Celsius = NewType("Celsius", float)
"""A custom scalar whose rendering depends on the value alone."""


def in_viewer_zone(value: datetime.datetime) -> str:
    zone = datetime.timezone(datetime.timedelta(hours=VIEWER_UTC_OFFSET.get()))
    return value.astimezone(zone).isoformat()


@dataclasses.dataclass
class Appointment:
    at: datetime.datetime
    temperature: float


class OnAppointment(cgt.Subscription[Appointment]):
    """Appointments, their time in the viewer's zone; no publish."""

    at: LocalDateTime


class OnTemperature(cgt.Subscription[Appointment]):
    """The temperature of appointments; no publish."""

    temperature: Celsius


@strawberry.type(name="Subscription")
class ZonedSubscription:
    on_appointment = OnAppointment.field()
    on_temperature = OnTemperature.field()


zoned_schema = strawberry.Schema(
    query=Query,
    subscription=ZonedSubscription,
    config=StrawberryConfig(
        scalar_map={
            LocalDateTime: strawberry.scalar(name="LocalDateTime", serialize=in_viewer_zone),
            Celsius: strawberry.scalar(name="Celsius", serialize=lambda value: f"{value} C"),
        }
    ),
)


class ZonedConsumer(GraphqlWsConsumer):
    """Sets the viewer's time zone from the connection parameters, like an app that
    activates each user's time zone; counts executions."""

    schema = zoned_schema
    confirm_subscriptions = True
    middleware = (count_root_resolutions,)
    share_results_under_middleware = True

    async def on_operation(self, id: str, payload: OperationPayload) -> None:
        VIEWER_UTC_OFFSET.set(int(self.context.connection_params.get("utcOffset", 0)))


class CelsiusDeclaredConsumer(ZonedConsumer):
    context_free_scalars = ("Celsius",)
