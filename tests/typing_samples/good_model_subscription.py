from __future__ import annotations

from typing import TYPE_CHECKING, Self

import strawberry
from django.db import models

import channels_graphql_typed as cgt

if TYPE_CHECKING:
    from collections.abc import Sequence


class Message(models.Model):
    # Annotated for mypy without the django-stubs plugin, which these samples run without.
    chatroom: models.CharField[str, str] = models.CharField(max_length=100)
    text: models.TextField[str, str] = models.TextField()
    secret: models.BooleanField[bool, bool] = models.BooleanField(default=False)


class OnMessageChanged(cgt.ModelSubscription[Message]):
    """Changes to chat messages."""

    class Meta:
        fields = ["id", "chatroom", "text"]

    @classmethod
    async def authorize_subscription(cls, info: cgt.Info) -> bool:
        return info.context.user is not None

    @classmethod
    async def authorize_delivery(cls, event: cgt.ModelEvent[Message], info: cgt.Info) -> bool:
        text: str = event.instance.text
        return not event.instance.secret and bool(text)


class OnMessageEdited(cgt.ModelSubscription[Message]):
    class Meta:
        fields = ("id", "text")

    @classmethod
    async def publish(
        cls,
        payload: cgt.ModelEvent[Message],
        info: cgt.Info,
        actions: Sequence[cgt.ModelAction] | None = None,
        id: strawberry.ID | None = None,
    ) -> Self | cgt.Skip:
        if payload.action is not cgt.ModelAction.UPDATED:
            return cgt.SKIP
        return cls(action=payload.action, node=payload.instance)


@strawberry.type
class Subscription:
    on_message_changed = OnMessageChanged.field()
    on_message_edited = OnMessageEdited.field()


async def notify(message: Message) -> None:
    await OnMessageChanged.notify(message, cgt.ModelAction.CREATED)
    await OnMessageChanged.broadcast(payload=cgt.ModelEvent(cgt.ModelAction.DELETED, message))


def notify_sync(message: Message) -> None:
    OnMessageChanged.notify_sync(message, cgt.ModelAction.UPDATED)
    result = OnMessageChanged(action=cgt.ModelAction.UPDATED, node=message)
    chatroom: str = result.node.chatroom
    assert chatroom
    model: type[models.Model] = OnMessageChanged.model
    assert model
