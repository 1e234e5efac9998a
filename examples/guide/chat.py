"""The README's guide, as code that mypy --strict checks (the README quotes this file)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Self

import strawberry

import channels_graphql_typed as cgt

from .models import OnMessageChanged

logger = logging.getLogger(__name__)


# --8<-- [start:chat-2]
@dataclasses.dataclass
class ChatEvent:  # what broadcast() carries
    chatroom: str
    text: str
    sender: str
    sender_channel: str  # the Channels channel name of the sending connection


class OnNewChatMessage(cgt.Subscription[ChatEvent]):
    """New messages in one chatroom."""  # becomes the GraphQL description

    chatroom: str  # result fields, annotated like a Strawberry type
    text: str
    sender: str

    @classmethod
    async def subscribe(cls, info: cgt.Info, chatroom: str) -> list[str]:
        return [chatroom]  # group names; the GraphQL arguments come from this signature

    @classmethod
    async def publish(cls, payload: ChatEvent, info: cgt.Info, chatroom: str) -> Self | cgt.Skip:
        if payload.sender_channel == info.context.channel_name:
            return cgt.SKIP  # no self-notification: suppressed for this subscriber only
        return cls(chatroom=payload.chatroom, text=payload.text, sender=payload.sender)

    @classmethod
    async def unsubscribed(cls, info: cgt.Info, chatroom: str) -> None:
        # The subscription ended: client complete, disconnect or server unsubscribe.
        logger.info("%s left %s", info.context.channel_name, chatroom)


# --8<-- [end:chat-2]


@strawberry.type
class Query:
    @strawberry.field
    def server_name(self) -> str:  # a sync resolver: runs in the thread pool
        return "chat"


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def send_chat_message(self, info: cgt.Info, chatroom: str, text: str) -> bool:
        event = ChatEvent(chatroom, text, "Anonymous", info.context.channel_name)
        await OnNewChatMessage.broadcast(payload=event, group=chatroom)
        return True


@strawberry.type
class Subscription:
    on_new_chat_message = OnNewChatMessage.field()
    on_message_changed = OnMessageChanged.field()  # see models.py


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)


# --8<-- [start:chat-5]
class ChatContext(cgt.Context):
    messages_sent: int = 0


# --8<-- [end:chat-5]


# --8<-- [start:chat-1]
class ChatConsumer(cgt.GraphqlWsConsumer):
    schema = schema
    context_class = ChatContext
    confirm_subscriptions = True
    send_ping_every = 20
    # --8<-- [end:chat-1]

    # --8<-- [start:chat-4]
    async def on_connect(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        if payload.get("token") != "let me in":
            raise cgt.ConnectionRejected({"message": "Bad token"})
        return {"server": "chat"}  # the connection_ack payload (None: no payload)

    async def on_operation(self, id: str, payload: cgt.OperationPayload) -> None:
        # Raise (for example cgt.OperationRejected) to refuse this one operation.
        if "__schema" in payload["query"]:
            raise cgt.OperationRejected("Introspection is disabled")

    async def on_disconnect(self, code: int) -> None:
        # Every task of the connection has ended.
        logger.info("connection closed with code %s", code)

    # --8<-- [end:chat-4]


# --8<-- [start:chat-3]
def close_room(chatroom: str) -> None:  # sync code: a view, a command, a Celery task
    OnNewChatMessage.unsubscribe_sync(group=chatroom)


def announce(text: str) -> None:
    event = ChatEvent(chatroom="lobby", text=text, sender="system", sender_channel="")
    OnNewChatMessage.broadcast_sync(payload=event)  # group=None: every subscriber


# --8<-- [end:chat-3]
