from __future__ import annotations

from typing import TYPE_CHECKING, Self

from django.db import models

import channels_graphql_typed as cgt

if TYPE_CHECKING:
    from collections.abc import Sequence

    import strawberry


class Message(models.Model):
    text: models.TextField[str, str] = models.TextField()


class Room(models.Model):
    name: models.CharField[str, str] = models.CharField(max_length=100)


class OnMessageChanged(cgt.ModelSubscription[Message]):
    class Meta:
        fields = ["id", "text"]

    @classmethod
    async def authorize_subscription(cls, info: cgt.Info) -> str:  # error: override
        return "yes"

    @classmethod
    async def authorize_delivery(
        cls,
        event: cgt.ModelEvent[Room],  # error: override
        info: cgt.Info,
    ) -> bool:
        return True


class NotAModel(cgt.ModelSubscription[int]):  # error: type-var
    class Meta:
        fields = ["id"]


class WrongNode(cgt.ModelSubscription[Message]):
    class Meta:
        fields = ["id"]

    @classmethod
    async def publish(
        cls,
        payload: cgt.ModelEvent[Message],
        info: cgt.Info,
        actions: Sequence[cgt.ModelAction] | None = None,
        id: strawberry.ID | None = None,
    ) -> Self | cgt.Skip:
        room = Room(name=payload.instance.text)
        return cls(action=payload.action, node=room)  # error: arg-type


class PublishWithoutTheArguments(cgt.ModelSubscription[Message]):
    class Meta:
        fields = ["id"]

    @classmethod
    async def publish(  # error: override
        cls, payload: cgt.ModelEvent[Message], info: cgt.Info
    ) -> Self | cgt.Skip:
        return cls(action=payload.action, node=payload.instance)


async def notify(message: Message, room: Room) -> None:
    await OnMessageChanged.notify(room, cgt.ModelAction.CREATED)  # error: arg-type
    await OnMessageChanged.notify(message, "created")  # error: arg-type
    await OnMessageChanged.broadcast(payload=message)  # error: arg-type


def notify_sync(message: Message) -> None:
    OnMessageChanged.notify_sync(message, cgt.ModelAction.CHANGED)  # error: attr-defined
    result = OnMessageChanged(action=cgt.ModelAction.CREATED, node=message)
    print(result.node.title)  # error: attr-defined
