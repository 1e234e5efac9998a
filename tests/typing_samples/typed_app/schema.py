from __future__ import annotations

from typing import Any

import strawberry

import channels_graphql_typed as cgt

from .models import Message
from .subscriptions import ChatEvent, OnMessageChanged, OnNewChatMessage


class ChatContext(cgt.Context):
    messages_sent: int = 0


ChatInfo = strawberry.Info[ChatContext, None]


@strawberry.type
class Query:
    @strawberry.field
    async def history(self, chatroom: str) -> list[str]:
        rows = Message.objects.filter(chatroom=chatroom).order_by("id")
        return [row.text async for row in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def send(self, info: ChatInfo, chatroom: str, text: str) -> bool:
        await Message.objects.acreate(chatroom=chatroom, text=text)
        info.context.messages_sent += 1
        event = ChatEvent(
            chatroom=chatroom, text=text, sender="", sender_channel=info.context.channel_name
        )
        await OnNewChatMessage.broadcast(payload=event, group=chatroom)
        return True


@strawberry.type
class Subscription:
    on_new_chat_message = OnNewChatMessage.field()
    on_message_changed = OnMessageChanged.field()


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)


class ChatConsumer(cgt.GraphqlWsConsumer):
    schema = schema
    context_class = ChatContext
    allowed_origins = ["https://chat.example.com"]
    send_ping_every = 20

    async def on_connect(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return {"server": "typed_app"}

    async def on_operation(self, id: str, payload: cgt.OperationPayload) -> None:
        if "__schema" in payload["query"]:
            raise cgt.OperationRejected("Introspection is disabled")
