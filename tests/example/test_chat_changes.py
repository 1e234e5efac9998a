"""The chat example's edits, deletions and logout, over the WebSocket and over HTTP, and
its model subscription (OnChatMessageChanged) that tells every client about them."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import pytest

import channels_graphql_typed as cgt
from tests.example.conftest import new_room

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.example.conftest import ChatServer

pytestmark = pytest.mark.slow

TIMEOUT: Final = 5.0
SEND: Final = """
mutation ($room: String!, $text: String!) {
  sendChatMessage(chatroom: $room, text: $text) { ok id }
}
"""
EDIT: Final = "mutation ($id: ID!, $text: String!) { editChatMessage(id: $id, text: $text) { ok } }"
DELETE: Final = "mutation ($id: ID!) { deleteChatMessage(id: $id) { ok } }"
LOGIN: Final = 'mutation { login(username: "demo", password: "demo") { ok } }'
LOGOUT: Final = "mutation { logout { ok } }"
ME: Final = "{ me { username } }"
HISTORY: Final = "query ($room: String!) { history(chatroom: $room) { id text sender } }"
CHANGES: Final = """
subscription {
  onChatMessageChanged(actions: [UPDATED, DELETED]) { action node { id chatroom text sender } }
}
"""


@contextlib.asynccontextmanager
async def ws_client(server: ChatServer, subprotocol: str) -> AsyncIterator[cgt.GraphqlWsClient]:
    transport = cgt.GraphqlWsTransportAiohttp(server.ws_url)
    async with cgt.GraphqlWsClient(transport, subprotocol=subprotocol, timeout=TIMEOUT) as client:
        yield client


async def data(client: cgt.GraphqlWsClient, query: str, **variables: Any) -> Any:
    result = await client.execute(query, variables)
    assert result.errors is None, result.errors
    return result.data


async def test_edits_and_deletions_reach_every_subscriber(
    chat_server: ChatServer, subprotocol: str
) -> None:
    room = new_room()
    async with (
        ws_client(chat_server, subprotocol) as author,
        ws_client(chat_server, subprotocol) as reader,
        reader.subscribe(CHANGES, confirm=True) as changes,
    ):
        await changes.wait_confirmed()
        assert await data(author, LOGIN) == {"login": {"ok": True}}
        sent = await data(author, SEND, room=room, text="draft")
        message_id = sent["sendChatMessage"]["id"]
        assert sent["sendChatMessage"]["ok"] is True

        assert await data(author, EDIT, id=message_id, text="final") == {
            "editChatMessage": {"ok": True}
        }
        node = {"id": message_id, "chatroom": room, "text": "final", "sender": "demo"}
        change = await anext(changes)
        assert change.data == {"onChatMessageChanged": {"action": "UPDATED", "node": node}}

        assert await data(author, DELETE, id=message_id) == {"deleteChatMessage": {"ok": True}}
        change = await anext(changes)
        assert change.data == {"onChatMessageChanged": {"action": "DELETED", "node": node}}
        assert await data(reader, HISTORY, room=room) == {"history": []}


async def test_only_the_sender_may_change_a_message(
    chat_server: ChatServer, subprotocol: str
) -> None:
    room = new_room()
    async with (
        ws_client(chat_server, subprotocol) as anonymous,
        ws_client(chat_server, subprotocol) as demo,
    ):
        await data(demo, LOGIN)
        anonymous_id = (await data(anonymous, SEND, room=room, text="mine"))["sendChatMessage"][
            "id"
        ]
        demo_id = (await data(demo, SEND, room=room, text="demo's"))["sendChatMessage"]["id"]
        refused = {"editChatMessage": {"ok": False}}
        assert await data(anonymous, EDIT, id=demo_id, text="hijacked") == refused
        assert await data(anonymous, EDIT, id=anonymous_id, text="anonymous edit") == refused
        assert await data(demo, EDIT, id=anonymous_id, text="not demo's") == refused
        assert await data(demo, EDIT, id="not-a-number", text="x") == refused
        assert await data(demo, EDIT, id=demo_id, text="  ") == refused
        assert await data(anonymous, DELETE, id=demo_id) == {"deleteChatMessage": {"ok": False}}
        history = await data(demo, HISTORY, room=room)
        assert [row["text"] for row in history["history"]] == ["mine", "demo's"]


async def test_logout_over_the_websocket(chat_server: ChatServer, subprotocol: str) -> None:
    room = new_room()
    async with ws_client(chat_server, subprotocol) as client:
        await data(client, LOGIN)
        assert await data(client, ME) == {"me": {"username": "demo"}}
        sent = await data(client, SEND, room=room, text="before")
        assert await data(client, LOGOUT) == {"logout": {"ok": True}}
        assert await data(client, ME) == {"me": None}
        # Anonymous now: demo's message is no longer this connection's to change.
        message_id = sent["sendChatMessage"]["id"]
        assert await data(client, EDIT, id=message_id, text="x") == {
            "editChatMessage": {"ok": False}
        }
        await data(client, SEND, room=room, text="after")
        history = await data(client, HISTORY, room=room)
        assert [row["sender"] for row in history["history"]] == ["demo", "Anonymous"]


async def post(
    session: aiohttp.ClientSession, server: ChatServer, query: str, **variables: Any
) -> Any:
    async with session.post(
        server.url("/graphql/"),
        json={"query": query, "variables": variables},
        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
    ) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    assert "errors" not in body, body
    return body["data"]


async def test_edit_delete_and_logout_over_http_notify_the_websocket(
    chat_server: ChatServer,
) -> None:
    room = new_room()
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session,
        ws_client(chat_server, cgt.GRAPHQL_TRANSPORT_WS) as reader,
        reader.subscribe(CHANGES, confirm=True) as changes,
    ):
        await changes.wait_confirmed()
        assert await post(session, chat_server, LOGIN) == {"login": {"ok": True}}
        sent = await post(session, chat_server, SEND, room=room, text="over HTTP")
        message_id = sent["sendChatMessage"]["id"]
        edited = await post(session, chat_server, EDIT, id=message_id, text="edited over HTTP")
        assert edited == {"editChatMessage": {"ok": True}}
        change = await anext(changes)
        assert change.data is not None
        assert change.data["onChatMessageChanged"]["node"]["text"] == "edited over HTTP"
        deleted = await post(session, chat_server, DELETE, id=message_id)
        assert deleted == {"deleteChatMessage": {"ok": True}}
        change = await anext(changes)
        assert change.data is not None
        assert change.data["onChatMessageChanged"]["action"] == "DELETED"
        assert await post(session, chat_server, LOGOUT) == {"logout": {"ok": True}}
        assert await post(session, chat_server, ME) == {"me": None}
