"""The README's model subscription guide (examples/guide/models.py) works as it says."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from examples.guide.chat import ChatConsumer
from examples.guide.models import Message, import_messages, redact
from tests.helpers import WsSession

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = {"token": "let me in"}
SUBSCRIPTION = "subscription { onMessageChanged { action node { chatroom text senderId } } }"


def as_user(user: Any) -> Any:
    """The guide's consumer, with ``scope["user"]`` set as Channels' auth middleware does."""
    consumer: Any = ChatConsumer.as_asgi()

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await consumer({**scope, "user": user}, receive, send)

    return application


async def subscribed(user: Any, subprotocol: str) -> WsSession:
    session = await WsSession.open(as_user(user), subprotocol, payload=TOKEN)
    await session.start("s", SUBSCRIPTION)
    assert await session.result("s") == {"data": None}
    return session


def change(action: str, chatroom: str, text: str, sender: User | None = None) -> Any:
    node = {"chatroom": chatroom, "text": text, "senderId": sender and str(sender.pk)}
    return {"data": {"onMessageChanged": {"action": action, "node": node}}}


async def test_anonymous_clients_may_not_subscribe(subprotocol: str) -> None:
    session = await WsSession.open(as_user(None), subprotocol, payload=TOKEN)
    await session.start("s", SUBSCRIPTION)
    result = await session.result("s")
    assert result["errors"][0]["message"] == "Not authorized to subscribe to OnMessageChanged"
    await session.close()


async def test_changes_reach_the_users_allowed_to_see_them(subprotocol: str) -> None:
    alice = await User.objects.acreate(username="alice")
    admin = await User.objects.acreate(username="admin", is_staff=True)
    user_session = await subscribed(alice, subprotocol)
    staff_session = await subscribed(admin, subprotocol)

    await Message.objects.acreate(chatroom="staff-only", text="for staff", sender=admin)
    await Message.objects.acreate(chatroom="lobby", text="hi", sender=alice)
    assert await staff_session.result("s") == change("CREATED", "staff-only", "for staff", admin)
    for session in (user_session, staff_session):
        assert await session.result("s") == change("CREATED", "lobby", "hi", alice)

    await sync_to_async(redact)(alice.pk)
    await import_messages("lobby", ["imported"])
    for session in (user_session, staff_session):
        assert await session.result("s") == change("UPDATED", "lobby", "[redacted]", alice)
        assert await session.result("s") == change("CREATED", "lobby", "imported")
        assert await session.nothing()
        await session.close()
