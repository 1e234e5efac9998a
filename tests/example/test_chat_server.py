"""The chat example end to end: a real uvicorn process, WebSocket and HTTP clients.

WebSocket clients are :class:`cgt.GraphqlWsClient` over aiohttp, most of them sending
the Origin header that a browser sends (the consumer refuses foreign origins only);
HTTP requests are plain JSON POSTs to the same ``/graphql/``.
"""

from __future__ import annotations

import contextlib
import os
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
SUBSCRIBE: Final = """
subscription Listen($chatroom: String!) {
  onNewChatMessage(chatroom: $chatroom) { chatroom text sender }
}"""
SEND: Final = """
mutation Send($chatroom: String!, $text: String!) {
  sendChatMessage(chatroom: $chatroom, text: $text) { ok }
}"""
LOGIN: Final = """
mutation Login($username: String!, $password: String!) {
  login(username: $username, password: $password) { ok }
}"""
HISTORY: Final = """
query History($chatroom: String!) { history(chatroom: $chatroom) { chatroom text sender } }
"""
ME: Final = "{ me { username } }"


@contextlib.asynccontextmanager
async def ws_client(
    server: ChatServer, cookies: dict[str, str] | None = None
) -> AsyncIterator[cgt.GraphqlWsClient]:
    transport = cgt.GraphqlWsTransportAiohttp(
        server.ws_url, headers={"Origin": server.origin}, cookies=cookies
    )
    async with cgt.GraphqlWsClient(transport, timeout=TIMEOUT) as client:
        yield client


async def post(
    session: aiohttp.ClientSession,
    server: ChatServer,
    query: str,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One GraphQL request over HTTP; returns ``data`` (there must be no errors)."""
    async with session.post(
        server.url("/graphql/"),
        json={"query": query, "variables": variables or {}},
        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
    ) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def send(client: cgt.GraphqlWsClient, chatroom: str, text: str) -> None:
    result = await client.execute(SEND, {"chatroom": chatroom, "text": text})
    assert result.data == {"sendChatMessage": {"ok": True}}


def message(chatroom: str, text: str, sender: str = "Anonymous") -> dict[str, Any]:
    return {"onNewChatMessage": {"chatroom": chatroom, "text": text, "sender": sender}}


async def next_data(stream: cgt.GraphqlWsSubscriptionStream) -> dict[str, Any] | None:
    result = await anext(stream)
    assert result.errors is None, result.errors
    return result.data


async def test_subscriber_gets_a_websocket_message_and_its_sender_does_not(
    chat_server: ChatServer,
) -> None:
    room = new_room()
    async with (
        ws_client(chat_server) as alice,
        ws_client(chat_server) as bob,
        alice.subscribe(SUBSCRIBE, {"chatroom": room}, confirm=True) as alice_stream,
        bob.subscribe(SUBSCRIBE, {"chatroom": room}, confirm=True) as bob_stream,
    ):
        # Confirmed once registered (asked per operation); nothing is missed after.
        await alice_stream.wait_confirmed()
        await bob_stream.wait_confirmed()
        await send(alice, room, "Hi Bob")
        assert await next_data(bob_stream) == message(room, "Hi Bob")
        await send(bob, room, "Hi Alice")
        # Notifications arrive in broadcast order: had Alice been notified of her own
        # message, it would come before Bob's answer.
        assert await next_data(alice_stream) == message(room, "Hi Alice")


async def test_a_message_sent_over_http_reaches_websocket_subscribers(
    chat_server: ChatServer,
) -> None:
    room = new_room()
    async with (
        ws_client(chat_server) as client,
        client.subscribe(SUBSCRIBE, {"chatroom": room}, confirm=True) as stream,
        aiohttp.ClientSession() as session,
    ):
        await stream.wait_confirmed()
        data = await post(session, chat_server, SEND, {"chatroom": room, "text": "over HTTP"})
        assert data == {"sendChatMessage": {"ok": True}}
        assert await next_data(stream) == message(room, "over HTTP")


async def test_login_over_the_websocket_names_the_sender(chat_server: ChatServer) -> None:
    room = new_room()
    async with (
        ws_client(chat_server) as listener,
        ws_client(chat_server) as demo,
        listener.subscribe(SUBSCRIBE, {"chatroom": room}, confirm=True) as stream,
    ):
        await stream.wait_confirmed()
        assert (await demo.execute(ME)).data == {"me": None}
        wrong = await demo.execute(LOGIN, {"username": "demo", "password": "wrong"})
        assert wrong.data == {"login": {"ok": False}}
        right = await demo.execute(LOGIN, {"username": "demo", "password": "demo"})
        assert right.data == {"login": {"ok": True}}
        # The login lasts for the connection's later operations.
        assert (await demo.execute(ME)).data == {"me": {"username": "demo"}}
        await send(demo, room, "Hello as demo")
        assert await next_data(stream) == message(room, "Hello as demo", "demo")
        # Another connection is still anonymous.
        assert (await listener.execute(ME)).data == {"me": None}


async def test_login_over_http_sets_the_session_cookie_for_http_and_websocket(
    chat_server: ChatServer,
) -> None:
    room = new_room()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        assert await post(session, chat_server, ME) == {"me": None}
        data = await post(session, chat_server, LOGIN, {"username": "demo", "password": "demo"})
        assert data == {"login": {"ok": True}}
        assert await post(session, chat_server, ME) == {"me": {"username": "demo"}}
        cookies = {
            cookie.key: cookie.value for cookie in session.cookie_jar if cookie.key == "sessionid"
        }
        assert cookies, "the login set no session cookie"
        async with (
            ws_client(chat_server) as listener,
            listener.subscribe(SUBSCRIBE, {"chatroom": room}, confirm=True) as stream,
            ws_client(chat_server, cookies=cookies) as demo,
        ):
            await stream.wait_confirmed()
            assert (await demo.execute(ME)).data == {"me": {"username": "demo"}}
            await post(session, chat_server, SEND, {"chatroom": room, "text": "via HTTP"})
            assert await next_data(stream) == message(room, "via HTTP", "demo")


async def test_history_returns_the_messages_newest_last(chat_server: ChatServer) -> None:
    room = new_room()
    other_room = new_room()
    async with ws_client(chat_server) as client, aiohttp.ClientSession() as session:
        assert (await client.execute(HISTORY, {"chatroom": room})).data == {"history": []}
        await send(client, room, "first")
        await post(session, chat_server, SEND, {"chatroom": room, "text": "second"})
        await send(client, other_room, "elsewhere")
        await client.execute(LOGIN, {"username": "demo", "password": "demo"})
        await send(client, room, "third")
        refused = await client.execute(SEND, {"chatroom": room, "text": "   "})
        assert refused.data == {"sendChatMessage": {"ok": False}}
        expected = [
            {"chatroom": room, "text": "first", "sender": "Anonymous"},
            {"chatroom": room, "text": "second", "sender": "Anonymous"},
            {"chatroom": room, "text": "third", "sender": "demo"},
        ]
        assert (await client.execute(HISTORY, {"chatroom": room})).data == {"history": expected}
        assert await post(session, chat_server, HISTORY, {"chatroom": room}) == {
            "history": expected
        }


async def test_management_command_stores_and_broadcasts(chat_server: ChatServer) -> None:
    room = new_room()
    # Only a shared channel layer (Redis) carries the command's broadcast to the server;
    # the in-memory layer stays inside the command's process.
    crosses_processes = bool(os.environ.get("REDIS_URL"))
    async with (
        ws_client(chat_server) as client,
        client.subscribe(SUBSCRIBE, {"chatroom": room}, confirm=True) as stream,
    ):
        await stream.wait_confirmed()
        completed = chat_server.manage("send_chat_message", room, "From the command line")
        assert f"Sent to {room}" in completed.stdout
        history = await client.execute(HISTORY, {"chatroom": room})
        assert history.data == {
            "history": [{"chatroom": room, "text": "From the command line", "sender": "system"}]
        }
        if crosses_processes:
            assert await next_data(stream) == message(room, "From the command line", "system")


async def demo_session_cookies(
    session: aiohttp.ClientSession, server: ChatServer
) -> dict[str, str]:
    """Log in as demo over HTTP; the session cookie that the login set."""
    data = await post(session, server, LOGIN, {"username": "demo", "password": "demo"})
    assert data == {"login": {"ok": True}}
    cookies = {
        cookie.key: cookie.value for cookie in session.cookie_jar if cookie.key == "sessionid"
    }
    assert cookies, "the login set no session cookie"
    return cookies


async def test_a_page_of_another_site_cannot_use_the_session_cookie(
    chat_server: ChatServer,
) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        cookies = await demo_session_cookies(session, chat_server)
    for origin in ("http://attacker.example", "http://127.0.0.1.attacker.example", "null"):
        transport = cgt.GraphqlWsTransportAiohttp(
            chat_server.ws_url, headers={"Origin": origin}, cookies=cookies
        )
        with pytest.raises(cgt.GraphqlWsConnectionClosed, match="403"):
            async with cgt.GraphqlWsClient(transport, timeout=TIMEOUT):
                pass
    assert '"WebSocket /graphql/" 403' in chat_server.output()


async def test_the_sites_own_pages_are_accepted_with_the_session(chat_server: ChatServer) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        cookies = await demo_session_cookies(session, chat_server)
    for origin in (chat_server.origin, f"http://localhost:{chat_server.port}"):
        transport = cgt.GraphqlWsTransportAiohttp(
            chat_server.ws_url, headers={"Origin": origin}, cookies=cookies
        )
        async with cgt.GraphqlWsClient(transport, timeout=TIMEOUT) as client:
            assert (await client.execute(ME)).data == {"me": {"username": "demo"}}


@pytest.mark.parametrize("subprotocol", [cgt.GRAPHQL_TRANSPORT_WS, cgt.GRAPHQL_WS])
async def test_clients_that_send_no_origin_are_accepted(
    chat_server: ChatServer, subprotocol: str
) -> None:
    room = new_room()
    transport = cgt.GraphqlWsTransportAiohttp(chat_server.ws_url)
    async with cgt.GraphqlWsClient(transport, subprotocol=subprotocol, timeout=TIMEOUT) as client:
        await send(client, room, "no Origin")
        history = await client.execute(HISTORY, {"chatroom": room})
        assert history.data == {
            "history": [{"chatroom": room, "text": "no Origin", "sender": "Anonymous"}]
        }


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/", "text/html", "<title>Chat"),
        ("/graphiql/", "text/html", "graphiql-page.js"),
        ("/assets/chat.js", "text/javascript", "GraphqlTransportWsClient"),
        ("/assets/graphql-transport-ws.js", "text/javascript", "connection_init"),
        ("/assets/chat.css", "text/css", ".messages"),
    ],
)
async def test_pages_and_front_end_files_are_served(
    chat_server: ChatServer, path: str, content_type: str, marker: str
) -> None:
    async with aiohttp.ClientSession() as session, session.get(chat_server.url(path)) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith(content_type)
        assert marker in await response.text()


async def test_only_listed_files_are_served(chat_server: ChatServer) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/assets/../chat/settings.py", "/assets/settings.py", "/assets/vendor/"):
            async with session.get(chat_server.url(path)) as response:
                assert response.status == 404, path
