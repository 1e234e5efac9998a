"""A socket logged in to the chat example stops acting as its user once the login ends
elsewhere: the user's sessions deleted (a logout everywhere) or the password changed.
Its next operations are anonymous. Real sockets to a real uvicorn process.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

import pytest

from tests.example.accounts import ME, create_user, login, new_username, run_in_shell, ws_client
from tests.example.conftest import new_room

if TYPE_CHECKING:
    import channels_graphql_typed as cgt
    from tests.example.conftest import ChatServer

pytestmark = pytest.mark.slow

SEND: Final = """
mutation Send($chatroom: String!, $text: String!) {
  sendChatMessage(chatroom: $chatroom, text: $text) { ok }
}"""
SUBSCRIBE: Final = """
subscription Listen($chatroom: String!) { onNewChatMessage(chatroom: $chatroom) { text sender } }
"""
DELETE_SESSIONS: Final = """
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
user = get_user_model()._default_manager.get(username={username!r})
deleted = [
    session.delete()
    for session in Session.objects.all()
    if session.get_decoded().get("_auth_user_id") == str(user.pk)
]
print("deleted", len(deleted))
"""
CHANGE_PASSWORD: Final = """
from django.contrib.auth import get_user_model
user = get_user_model()._default_manager.get(username={username!r})
user.set_password({password!r})
user.save()
print("changed")
"""


async def next_data(stream: cgt.GraphqlWsSubscriptionStream) -> Any:
    result = await anext(stream)
    assert result.errors is None, result.errors
    return result.data


@pytest.mark.parametrize("how", ["sessions deleted", "password changed"])
async def test_a_socket_stops_acting_as_its_user_when_the_login_ends_elsewhere(
    chat_server: ChatServer, subprotocol: str, how: str
) -> None:
    username, password, new_password = new_username(), "first password", "second password"
    await asyncio.to_thread(create_user, chat_server, username, password)
    room = new_room()
    async with (
        ws_client(chat_server) as listener,
        listener.subscribe(SUBSCRIBE, {"chatroom": room}, confirm=True) as stream,
        ws_client(chat_server, subprotocol) as client,
    ):
        await stream.wait_confirmed()  # registered
        assert await login(client, username, password) == {"login": {"ok": True}}
        assert (await client.execute(ME)).data == {"me": {"username": username}}
        await client.execute(SEND, {"chatroom": room, "text": "as the user"})
        assert await next_data(stream) == {
            "onNewChatMessage": {"text": "as the user", "sender": username}
        }

        if how == "sessions deleted":
            output = await run_in_shell(chat_server, DELETE_SESSIONS.format(username=username))
            assert "deleted 1" in output  # the socket's login was a stored session
        else:
            code = CHANGE_PASSWORD.format(username=username, password=new_password)
            assert "changed" in await run_in_shell(chat_server, code)

        # The socket is anonymous from its next operation on.
        assert (await client.execute(ME)).data == {"me": None}
        await client.execute(SEND, {"chatroom": room, "text": "after the end"})
        assert await next_data(stream) == {
            "onNewChatMessage": {"text": "after the end", "sender": "Anonymous"}
        }
        # The old password (if it changed) no longer logs in; the current one does.
        if how == "password changed":
            assert await login(client, username, password) == {"login": {"ok": False}}
        current = password if how == "sessions deleted" else new_password
        assert await login(client, username, current) == {"login": {"ok": True}}
        assert (await client.execute(ME)).data == {"me": {"username": username}}


async def test_only_the_sockets_of_the_user_whose_sessions_ended_become_anonymous(
    chat_server: ChatServer,
) -> None:
    username, other, password = new_username(), new_username(), "a password"
    await asyncio.to_thread(create_user, chat_server, username, password)
    await asyncio.to_thread(create_user, chat_server, other, password)
    async with ws_client(chat_server) as client, ws_client(chat_server) as other_client:
        assert await login(client, username, password) == {"login": {"ok": True}}
        assert await login(other_client, other, password) == {"login": {"ok": True}}
        output = await run_in_shell(chat_server, DELETE_SESSIONS.format(username=other))
        assert "deleted 1" in output
        assert (await other_client.execute(ME)).data == {"me": None}
        # The check is made for every operation, and this socket's session is alive.
        for _ in range(3):
            assert (await client.execute(ME)).data == {"me": {"username": username}}
