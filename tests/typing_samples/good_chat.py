from __future__ import annotations

import dataclasses
from typing import Self

import strawberry

import channels_graphql_typed as cgt


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
    async def unsubscribed(cls, info: cgt.Info, chatroom: str) -> None: ...


@strawberry.type
class Subscription:
    on_new_chat_message = OnNewChatMessage.field()


async def notify() -> None:
    event = ChatEvent(chatroom="kittens", text="hi", sender="a", sender_channel="c")
    await OnNewChatMessage.broadcast(payload=event, group="kittens")
    await OnNewChatMessage.unsubscribe(group="kittens")


def notify_sync() -> None:
    event = ChatEvent(chatroom="kittens", text="hi", sender="a", sender_channel="c")
    OnNewChatMessage.broadcast_sync(payload=event, group="kittens")
    OnNewChatMessage.unsubscribe_sync(group="kittens")
    message: OnNewChatMessage = OnNewChatMessage(chatroom="k", text="t", sender="s")
    assert message.text == "t"
