"""Model subscriptions used by the tests, declared exactly as users declare them.

Importing this module connects their signal receivers: a process that changes the
models notifies only once it has imported it (tests/model_changes_process.py does).
"""

from __future__ import annotations

from collections.abc import Sequence  # noqa: TC003 (publish's annotations are evaluated)
from typing import Self, TypeVar

import strawberry
from django.db import models

import channels_graphql_typed as cgt
from channels_graphql_typed import GraphqlWsConsumer
from channels_graphql_typed import _model_subscription as model_subscription
from tests.app.models import Gadget, Message, Note, Room
from tests.schema import Query
from tests.subscriptions import ROOT_RESOLUTIONS, count_root_resolutions

ModelT = TypeVar("ModelT", bound=models.Model)


class OnMessageChanged(cgt.ModelSubscription[Message]):
    """Changes to chat messages."""

    class Meta:
        fields = ["id", "room", "text", "sender", "created"]


class OnGuardedMessageChanged(cgt.ModelSubscription[Message]):
    """Changes to the messages this connection may see."""

    # Only connections with a pass subscribe; secret messages go to staff only, and
    # messages of a room only to connections that joined it (their "rooms" connection
    # parameter), checked with the async ORM.

    class Meta:
        fields = ("id", "text")

    @classmethod
    async def authorize_subscription(cls, info: cgt.Info) -> bool:
        if info.context.connection_params.get("banned"):
            raise PermissionError("Banned")
        return bool(info.context.connection_params.get("pass"))

    @classmethod
    async def authorize_delivery(cls, event: cgt.ModelEvent[Message], info: cgt.Info) -> bool:
        params = info.context.connection_params
        if event.instance.secret and not params.get("staff"):
            return False
        if event.instance.room_id is None:
            return True
        room = await Room.objects.filter(pk=event.instance.room_id).afirst()
        return room is not None and room.name in params.get("rooms", [])


class OnGadgetChanged(cgt.ModelSubscription[Gadget]):
    """Every field type a model subscription exposes; a UUID primary key."""

    class Meta:
        fields = [
            "id",
            "name",
            "color",
            "enabled",
            "count",
            "ratio",
            "price",
            "made",
            "day",
            "moment",
            "serial",
            "settings",
            "address",
        ]


DELIVERED: list[tuple[str, cgt.ModelAction]] = []


class Recorded(cgt.ModelSubscription[ModelT]):
    """A base of model subscriptions, still generic: records what it delivers."""

    @classmethod
    async def authorize_delivery(cls, event: cgt.ModelEvent[ModelT], info: cgt.Info) -> bool:
        DELIVERED.append((cls.__name__, event.action))
        return True


class OnNoteChanged(Recorded[Note]):
    """Changes to notes."""

    class Meta:
        fields = ["id", "text"]


class OnEditableNoteChanged(cgt.ModelSubscription[Note]):
    """Changes to notes, and whether this connection may edit them: a field of its own,
    set for each subscriber."""

    can_edit: bool = False

    class Meta:
        fields = ["id", "text"]

    @classmethod
    async def publish(
        cls,
        payload: cgt.ModelEvent[Note],
        info: cgt.Info,
        actions: Sequence[cgt.ModelAction] | None = model_subscription.ALL_ACTIONS,
        id: strawberry.ID | None = None,
    ) -> Self | cgt.Skip:
        result = await super().publish(payload, info, actions, id)
        if isinstance(result, cgt.Skip):
            return result
        editor = bool(info.context.connection_params.get("editor"))
        return cls(action=result.action, node=result.node, can_edit=editor)


@strawberry.type
class Subscription:
    on_message_changed = OnMessageChanged.field()
    on_guarded_message_changed = OnGuardedMessageChanged.field()
    on_gadget_changed = OnGadgetChanged.field()
    on_note_changed = OnNoteChanged.field()
    on_editable_note_changed = OnEditableNoteChanged.field()


schema = strawberry.Schema(query=Query, subscription=Subscription)


# The typed subscriptions' counting middleware, and its record of executions.
EXECUTIONS = ROOT_RESOLUTIONS


class ModelConsumer(GraphqlWsConsumer):
    schema = schema
    confirm_subscriptions = True
    middleware = (count_root_resolutions,)
    share_results_under_middleware = True  # counting does not depend on the subscriber
