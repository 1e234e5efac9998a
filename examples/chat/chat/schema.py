"""The chat's GraphQL schema, served at ``/graphql/`` over WebSocket by
:class:`ChatConsumer` and over HTTP (GraphQL over HTTP, Server-Sent Events, multipart)
by :class:`ChatHttpConsumer`, with the settings of :class:`ChatServer`::

    type Query {
      history(chatroom: String!): [Message!]!
      me: User
    }
    type Mutation {
      sendChatMessage(chatroom: String!, text: String!): SendChatMessageResult!
      editChatMessage(id: ID!, text: String!): ChangeChatMessageResult!
      deleteChatMessage(id: ID!): ChangeChatMessageResult!
      login(username: String!, password: String!): LoginResult!
      logout: LogoutResult!
    }
    type Subscription {
      onNewChatMessage(chatroom: String!): OnNewChatMessage!
      onChatMessageChanged(actions: [ModelAction!], id: ID): OnChatMessageChanged!
    }

The resolvers are async and use Django's async ORM API (the library would run sync
resolvers in its thread pool as well).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Final, Self, cast

import strawberry
from channels.auth import login as channels_login
from channels.auth import logout as channels_logout
from channels.db import database_sync_to_async
from graphql import GraphQLError

import channels_graphql_typed as cgt

from .authentication import authenticate_limited, end_login_if_session_ended
from .login_attempts import TooManyLoginAttempts
from .models import ChatMessage
from .subscriptions import OnChatMessageChanged

logger = logging.getLogger(__name__)

NO_CHANNEL: Final = ""
"""The sender channel of messages sent by the management command: no connection has
this channel name, so every subscriber of the chatroom is notified."""

HISTORY_LENGTH: Final = 100
"""How many of a chatroom's last messages ``history`` returns."""

MAX_CHATROOM_LENGTH: Final = 100
MAX_TEXT_LENGTH: Final = 2000


class ChatContext(cgt.Context):
    """``info.context`` on every transport: the WebSocket connection's, or the HTTP
    request's (an HTTP request is a connection of its own, with a channel name that no
    other request has). ``scope`` is the Channels scope, with the ``user`` and
    ``session`` of Channels' auth middleware on both."""

    @property
    def login_client(self) -> str:
        """Whom failed logins count against, besides the username: the WebSocket
        connection, or over HTTP the client's address."""
        if self.scope.get("type") == "http":
            host, _port = self.scope.get("client") or ("", 0)
            return f"address:{host}"
        return f"connection:{self.channel_name}"


ChatInfo = strawberry.Info[ChatContext, None]


def sender_name(user: Any) -> str:
    """The logged-in user's name, else ``Anonymous``."""
    if user is not None and user.is_authenticated:
        name: str = user.get_username()
        return name
    return "Anonymous"


@dataclasses.dataclass
class ChatEvent:
    """What a broadcast carries across the channel layer."""

    id: int
    """The stored message's primary key."""
    chatroom: str
    text: str
    sender: str
    sender_channel: str
    """The Channels channel name of the sending connection (or :data:`NO_CHANNEL`)."""


class OnNewChatMessage(cgt.Subscription[ChatEvent]):
    """A new message in the chatroom; the connection that sent it is not notified."""

    id: strawberry.ID
    chatroom: str
    text: str
    sender: str

    @classmethod
    async def subscribe(cls, info: cgt.Info, chatroom: str) -> list[str]:
        return [chatroom]

    @classmethod
    async def publish(cls, payload: ChatEvent, info: cgt.Info, chatroom: str) -> Self | cgt.Skip:
        if payload.sender_channel == info.context.channel_name:
            return cgt.SKIP  # the sender shows its own message already
        return cls(
            id=strawberry.ID(str(payload.id)),
            chatroom=payload.chatroom,
            text=payload.text,
            sender=payload.sender,
        )


# --8<-- [start:schema-2]
def store_and_broadcast_sync(chatroom: str, text: str, sender: str) -> None:
    """Store a message and notify the chatroom's subscribers, from sync code."""
    row = ChatMessage.objects.create(chatroom=chatroom, text=text, sender=sender)
    event = ChatEvent(row.pk, chatroom, text, sender, sender_channel=NO_CHANNEL)
    OnNewChatMessage.broadcast_sync(payload=event, group=chatroom)


# --8<-- [end:schema-2]


@strawberry.type(description="A stored chat message.")
class Message:
    id: strawberry.ID
    chatroom: str
    text: str
    sender: str


@strawberry.type(description="A user account.")
class User:
    username: str


@strawberry.type(description="ok is true when the message was stored and broadcast.")
class SendChatMessageResult:
    ok: bool
    id: strawberry.ID | None = strawberry.field(
        default=None, description="The stored message's id (null when ok is false)."
    )


@strawberry.type(
    description="ok is true when the message was changed: it exists, and the logged-in "
    "user sent it."
)
class ChangeChatMessageResult:
    ok: bool


@strawberry.type(description="ok is true: the connection (or the HTTP session) is anonymous.")
class LogoutResult:
    ok: bool


@strawberry.type(description="ok is true when the password was right: the user is logged in.")
class LoginResult:
    ok: bool


@strawberry.type
class Query:
    @strawberry.field
    async def history(self, chatroom: str) -> list[Message]:
        newest_first = ChatMessage.objects.filter(chatroom=chatroom).order_by("-id")
        rows = [row async for row in newest_first[:HISTORY_LENGTH]]
        rows.reverse()
        return [
            Message(
                id=strawberry.ID(str(row.pk)),
                chatroom=row.chatroom,
                text=row.text,
                sender=row.sender,
            )
            for row in rows
        ]

    @strawberry.field
    async def me(self, info: ChatInfo) -> User | None:
        user = info.context.user
        if user is None or not user.is_authenticated:
            return None
        return User(username=user.get_username())


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def send_chat_message(
        self, info: ChatInfo, chatroom: str, text: str
    ) -> SendChatMessageResult:
        if not chatroom or len(chatroom) > MAX_CHATROOM_LENGTH:
            return SendChatMessageResult(ok=False)
        if not text.strip() or len(text) > MAX_TEXT_LENGTH:
            return SendChatMessageResult(ok=False)
        sender = sender_name(info.context.user)
        row = await ChatMessage.objects.acreate(chatroom=chatroom, text=text, sender=sender)
        event = ChatEvent(row.pk, chatroom, text, sender, info.context.channel_name)
        await OnNewChatMessage.broadcast(payload=event, group=chatroom)
        return SendChatMessageResult(ok=True, id=strawberry.ID(str(row.pk)))

    @strawberry.mutation  # a message of the logged-in user only
    async def edit_chat_message(
        self, info: ChatInfo, id: strawberry.ID, text: str
    ) -> ChangeChatMessageResult:
        if not text.strip() or len(text) > MAX_TEXT_LENGTH:
            return ChangeChatMessageResult(ok=False)
        row = await own_message(info, id)
        if row is None:
            return ChangeChatMessageResult(ok=False)
        row.text = text
        # post_save: OnChatMessageChanged notifies its subscribers (UPDATED).
        await row.asave(update_fields=["text"])
        return ChangeChatMessageResult(ok=True)

    @strawberry.mutation  # a message of the logged-in user only
    async def delete_chat_message(
        self, info: ChatInfo, id: strawberry.ID
    ) -> ChangeChatMessageResult:
        row = await own_message(info, id)
        if row is None:
            return ChangeChatMessageResult(ok=False)
        # post_delete: OnChatMessageChanged notifies its subscribers (DELETED).
        await row.adelete()
        return ChangeChatMessageResult(ok=True)

    @strawberry.mutation
    async def login(self, info: ChatInfo, username: str, password: str) -> LoginResult:
        context = info.context
        # The password is checked off the event loop, and not at all after too many
        # failures for the username or the client (see chat.authentication).
        try:
            user = await authenticate_limited(username, password, client=context.login_client)
        except TooManyLoginAttempts as exc:
            # A GraphQL error rather than a resolver's exception: expected, so not
            # logged with a traceback each time.
            raise GraphQLError(str(exc), extensions={"retryAfter": exc.retry_after}) from None
        if user is None:
            return LoginResult(ok=False)
        # Channels' login updates scope["user"] and the session. Over HTTP, Channels'
        # session middleware sends the session cookie with the response; a WebSocket's
        # following operations see the user (until the session ends:
        # ChatConsumer.on_operation).
        await channels_login(cast("Any", context.scope), user)
        await database_sync_to_async(context.scope["session"].save)()
        logger.info("%s logged in", user.get_username())
        return LoginResult(ok=True)

    @strawberry.mutation
    async def logout(self, info: ChatInfo) -> LogoutResult:
        # Channels' logout flushes the session (every socket and page that shares it is
        # logged out too; over HTTP the response deletes the cookie) and makes
        # scope["user"] anonymous.
        await channels_logout(cast("Any", info.context.scope))
        return LogoutResult(ok=True)


async def own_message(info: ChatInfo, id: strawberry.ID) -> ChatMessage | None:
    """The message ``id`` if the logged-in user sent it, else None."""
    user = info.context.user
    if user is None or not user.is_authenticated or not id.isdigit():
        return None
    return await ChatMessage.objects.filter(pk=int(id), sender=user.get_username()).afirst()


# --8<-- [start:schema-1]
@strawberry.type
class Subscription:
    on_new_chat_message = OnNewChatMessage.field()
    # --8<-- [end:schema-1]
    on_chat_message_changed = OnChatMessageChanged.field()


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)


class ChatServer(cgt.GraphqlServer):
    """What both endpoints serve, and how."""

    schema = schema
    context_class = ChatContext
    # A page that falls behind gets the newest 100 notifications once it catches up; the
    # older ones are dropped (logged, and counted at /metrics).
    notification_queue_limit = 100


class ChatHttpConsumer(ChatServer, cgt.GraphqlHttpConsumer):
    """The HTTP endpoint ``/graphql/``: GraphQL over HTTP (GraphiQL's queries and
    mutations, ``curl``), Server-Sent Events and multipart subscriptions (the chat page
    when it cannot open a WebSocket)."""


class ChatConsumer(ChatServer, cgt.GraphqlWsConsumer):
    """The WebSocket endpoint ``/graphql/``."""

    # No consumer-wide confirmation: standard clients would take its {"data": null} for a
    # message. A client that wants to know when its subscription is registered asks in
    # the operation's extensions (cgt.CONFIRM_SUBSCRIPTION_EXTENSION), as the chat page
    # does.
    send_ping_every = 20

    async def on_operation(self, id: str, payload: cgt.OperationPayload) -> None:
        # A socket does not outlive its login: once the user's session is gone (a
        # logout elsewhere, expiry) or was made with another password, the connection
        # is anonymous from this operation on.
        await end_login_if_session_ended(self.context)
