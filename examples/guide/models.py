"""The README's model subscription guide, as code that mypy --strict checks.

The subscription is declared next to its model: Django imports every installed app's
models module at startup, so every process that changes messages (a server, a management
command, a worker) connects the signal receivers that notify the subscribers.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models, transaction

import channels_graphql_typed as cgt


class Message(models.Model):
    chatroom = models.CharField(max_length=100)
    text = models.TextField()
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)

    class Meta:
        app_label = "guide"


# --8<-- [start:models-1]
class OnMessageChanged(cgt.ModelSubscription[Message]):
    """Changes to chat messages."""

    class Meta:
        fields = ["id", "chatroom", "text", "sender"]  # the node's fields; sender: senderId

    @classmethod
    async def authorize_subscription(cls, info: cgt.Info) -> bool:
        user = info.context.user  # False: the client gets "Not authorized to subscribe"
        return user is not None and user.is_authenticated

    @classmethod
    async def authorize_delivery(cls, event: cgt.ModelEvent[Message], info: cgt.Info) -> bool:
        # Once per change and subscriber, with that subscriber's context.
        return not event.instance.chatroom.startswith("staff-") or info.context.user.is_staff


# --8<-- [end:models-1]


# --8<-- [start:models-2]
def redact(sender_id: int) -> None:
    with transaction.atomic():
        messages = Message.objects.filter(sender_id=sender_id)
        messages.update(text="[redacted]")  # QuerySet.update() sends no signal
        for message in messages:  # evaluated after the update: the new values
            OnMessageChanged.notify_sync(message, cgt.ModelAction.UPDATED)  # sent at commit


async def import_messages(chatroom: str, texts: list[str]) -> None:
    messages = await Message.objects.abulk_create(  # bulk_create sends no signal either
        [Message(chatroom=chatroom, text=text) for text in texts]
    )
    for message in messages:
        await OnMessageChanged.notify(message, cgt.ModelAction.CREATED)


# --8<-- [end:models-2]
