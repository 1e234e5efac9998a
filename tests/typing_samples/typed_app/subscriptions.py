"""Found by the library's autodiscovery: every process that saves a Message notifies."""

from __future__ import annotations

import dataclasses
from typing import Self

import channels_graphql_typed as cgt

from .models import Message


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


class OnMessageChanged(cgt.ModelSubscription[Message]):
    """Edits and deletions of messages."""

    class Meta:
        fields = ["id", "chatroom", "text", "sender", "sent_at"]

    @classmethod
    async def authorize_delivery(cls, event: cgt.ModelEvent[Message], info: cgt.Info) -> bool:
        return not event.instance.chatroom.startswith("staff-")
