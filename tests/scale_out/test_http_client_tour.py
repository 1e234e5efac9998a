"""Standard HTTP clients, with their defaults, no Origin header and a cookie jar, do the
README's tour of the chat example's ``/graphql/`` served by uvicorn on Redis, on one
process and on two (see ``test_client_tour.py`` for the WebSocket clients).

The tour: read the history, send as Anonymous, log in as demo (the response sets the
session cookie, which the client's later requests carry), send as demo, subscribe to
the room; then receive the messages of others (another client's, sent to the other
process when there are two, and the management command's), and not the client's own.

"Not its own", over HTTP: every request is a connection of its own, so the example's
``publish``, which skips the connection that sent a message, notifies the subscription
of the messages that the same client sent in other requests. The clients do what the
chat page does: they keep the ids that ``sendChatMessage`` returned and ignore the
notifications of those ids (holding the notifications that come while a message is
being sent: one may come before the mutation's answer). The test asserts that the
client's own message did reach the subscription and was ignored, and that the client
ignored no other message.

In graphql-sse's single connection mode the stream is one connection, and its own
messages are skipped as over a WebSocket. Its operations run in the context of the
request that reserved the stream, whose response is gone, so a ``login`` there sets no
cookie: that client logs in with a plain POST, then reserves a new stream (a stream is
bound to who reserved it).

The clients: the Node ``graphql-sse`` client in its distinct connections mode and in
its single connection mode (with two processes, its operations posted to the process
that does not hold the stream, which forwards them), ``graphql-http``'s client for queries and
mutations (with ``graphql-sse``'s for the subscription), Apollo Client 4 over its
``HttpLink`` (multipart subscriptions) in ``tests/node/chat-http-tour.mjs``, and
Python's ``gql`` over its aiohttp transport (multipart), here. None of them asks for a
confirmation, so the test sends probes until the subscription receives one.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import pytest
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport

from tests.e2e.test_node_clients import NODE_DIR, node  # noqa: F401 (a fixture)
from tests.example.conftest import run_manage
from tests.processes import HOST
from tests.scale_out.conftest import CLIENT_TIMEOUT, new_room
from tests.scale_out.test_client_tour import (
    HISTORY,
    LOGIN,
    ME,
    PROBE_WAIT,
    PROBES,
    TOUR_TIMEOUT,
    NodeTourist,
    Tourist,
    tour_servers,  # noqa: F401 (a fixture)
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.scale_out.conftest import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SEND: Final = """mutation Send($room: String!, $text: String!) {
  sendChatMessage(chatroom: $room, text: $text) { ok id }
}"""
LISTEN: Final = """subscription Listen($room: String!) {
  onNewChatMessage(chatroom: $room) { id chatroom text sender }
}"""


def http_url(server: ServerProcess) -> str:
    return f"http://{HOST}:{server.port}/graphql/"


@contextlib.asynccontextmanager
async def node_tourist(
    executable: str, kind: str, url: str, room: str, *other_urls: str
) -> AsyncIterator[Tourist]:
    process = await asyncio.create_subprocess_exec(
        executable,
        str(NODE_DIR / "chat-http-tour.mjs"),
        kind,
        url,
        room,
        *other_urls,
        cwd=NODE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield NodeTourist(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


class GqlHttpTourist:
    """Python's gql client over its aiohttp transport, with a cookie jar that accepts
    the cookies of an IP address (aiohttp's default jar refuses them)."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.commands: asyncio.Queue[str] = asyncio.Queue()

    async def next_event(self) -> dict[str, Any]:
        return await self.events.get()

    async def command(self, line: str) -> None:
        await self.commands.put(line)

    async def tour(self, url: str, room: str) -> None:
        transport = AIOHTTPTransport(
            url=url, client_session_args={"cookie_jar": aiohttp.CookieJar(unsafe=True)}
        )
        sent: set[str] = set()
        ignored: list[str] = []
        # The notification of a message may come before the mutation's answer (its id):
        # while a message is being sent, the notifications wait.
        sending = 0
        held: list[dict[str, Any]] = []
        async with Client(transport=transport) as session:

            async def request(query: str, **variables: Any) -> dict[str, Any]:
                result = await session.execute(GraphQLRequest(query, variable_values=variables))
                assert isinstance(result, dict)
                return result

            async def send(text: str) -> None:
                nonlocal sending
                sending += 1
                try:
                    result = await request(SEND, room=room, text=text)
                    assert result["sendChatMessage"]["ok"] is True, result
                    sent.add(result["sendChatMessage"]["id"])
                finally:
                    sending -= 1
                if not sending:
                    for data in held:
                        await notice(data)
                    held.clear()

            async def notice(data: dict[str, Any]) -> None:
                message = data["onNewChatMessage"]
                if message["id"] in sent:
                    ignored.append(message["text"])
                    return
                await self.events.put({"step": "message", "data": data, "errors": None})
                if message["text"] == "the end":
                    await self.events.put({"step": "done", "ignored": ignored})

            await self.events.put({"step": "history", "data": await request(HISTORY, room=room)})
            await send("anonymous from gql")
            assert await request(LOGIN) == {"login": {"ok": True}}
            await self.events.put({"step": "me", "data": await request(ME)})
            await send("demo from gql")

            async def listen() -> None:
                listening = GraphQLRequest(LISTEN, variable_values={"room": room})
                async for data in session.subscribe(listening):
                    if sending:
                        held.append(data)
                        continue
                    await notice(data)
                    if data["onNewChatMessage"]["text"] == "the end":
                        return

            listener = asyncio.ensure_future(listen())
            await self.events.put({"step": "subscribed"})
            try:
                while not listener.done():
                    commanded = asyncio.ensure_future(self.commands.get())
                    await asyncio.wait({listener, commanded}, return_when=asyncio.FIRST_COMPLETED)
                    if not commanded.done():
                        commanded.cancel()
                        break
                    if commanded.result() == "own":
                        await send("own from gql")
                        await self.events.put({"step": "own-sent"})
                await listener
            finally:
                listener.cancel()


@contextlib.asynccontextmanager
async def gql_tourist(url: str, room: str) -> AsyncIterator[Tourist]:
    tourist = GqlHttpTourist()
    task = asyncio.ensure_future(tourist.tour(url, room))

    class Watched:
        """The tourist's events, or the tour's own error if it fails first."""

        async def next_event(self) -> dict[str, Any]:
            getting = asyncio.ensure_future(tourist.next_event())
            try:
                await asyncio.wait({getting, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # Also when this wait is cancelled (the test's probe timed out): a getter
                # left behind would take the next event from the queue, and lose it.
                if not getting.done():
                    getting.cancel()
            if not getting.cancelled():
                return getting.result()
            task.result()  # raises the tour's error
            return await tourist.next_event()

        async def command(self, line: str) -> None:
            await tourist.command(line)

    try:
        yield Watched()
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


class OtherClient:
    """Another client, anonymous, over GraphQL over HTTP (plain JSON POSTs)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url

    async def execute(self, query: str, **variables: Any) -> dict[str, Any]:
        async with self.http.post(
            self.url, json={"query": query, "variables": variables}
        ) as response:
            assert response.status == 200, await response.text()
            answer: dict[str, Any] = await response.json(content_type=None)
        assert "errors" not in answer, answer
        data: dict[str, Any] = answer["data"]
        return data

    async def send(self, room: str, text: str) -> None:
        data = await self.execute(SEND, room=room, text=text)
        assert data["sendChatMessage"]["ok"] is True, data


async def follow_the_tour(
    tourist: Tourist, environment: dict[str, str], servers: list[ServerProcess], room: str
) -> tuple[list[dict[str, Any]], list[str], list[tuple[str, str]]]:
    """Drive one tourist through the tour; return the messages it received, the texts it
    ignored as its own, and the room's stored messages."""
    assert await tourist.next_event() == {"step": "history", "data": {"history": []}}
    assert await tourist.next_event() == {"step": "me", "data": {"me": {"username": "demo"}}}
    assert await tourist.next_event() == {"step": "subscribed"}
    received: list[dict[str, Any]] = []
    # Another client, of the other process when there are two.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(CLIENT_TIMEOUT)) as http:
        other = OtherClient(http, http_url(servers[-1]))
        for probe in range(PROBES):
            await other.send(room, f"probe {probe}")
            with contextlib.suppress(TimeoutError):
                received.append(await asyncio.wait_for(tourist.next_event(), PROBE_WAIT))
                break
        else:
            pytest.fail(f"no probe reached the subscription in {PROBES * PROBE_WAIT} s")
        await tourist.command("own")
        while (event := await tourist.next_event())["step"] != "own-sent":
            received.append(event)
        await other.send(room, "from another client")
        completed = await asyncio.to_thread(
            run_manage, environment, "send_chat_message", room, "from the command"
        )
        assert f"Sent to {room}" in completed.stdout
        await other.send(room, "the end")
        while (event := await tourist.next_event())["step"] != "done":
            received.append(event)
        ignored: list[str] = event["ignored"]
        history = await other.execute(HISTORY, room=room)
    stored = [(row["sender"], row["text"]) for row in history["history"]]
    return received, ignored, stored


def check_tour(
    received: list[dict[str, Any]], ignored: list[str], stored: list[tuple[str, str]], kind: str
) -> None:
    assert all(event["step"] == "message" and event["errors"] is None for event in received)
    # No {"data": null}: the example confirms only the subscriptions that ask.
    messages = [event["data"]["onNewChatMessage"] for event in received]
    texts = [(message["sender"], message["text"]) for message in messages]
    assert texts[0][0] == "Anonymous"
    assert texts[0][1].startswith("probe ")
    others = [text for text in texts if not text[1].startswith("probe ")]
    assert others == [
        ("Anonymous", "from another client"),
        ("system", "from the command"),
        ("Anonymous", "the end"),
    ]
    if kind == "graphql-sse-single":
        # One stream is one connection, whose own messages publish skips (as over a
        # WebSocket): nothing to ignore.
        assert ignored == []
    else:
        # The server notified the subscription of the client's own message (another
        # request's), and the client knew it by its id.
        assert ignored == [f"own from {kind}"]
    for sender, text in [
        ("Anonymous", f"anonymous from {kind}"),
        ("demo", f"demo from {kind}"),
        ("demo", f"own from {kind}"),
    ]:
        assert (sender, text) in stored


@pytest.mark.node
@pytest.mark.parametrize(
    "kind", ["graphql-sse", "graphql-sse-single", "graphql-http", "apollo-http"]
)
async def test_node_http_clients_do_the_tour(
    node: str,  # noqa: F811 (the fixture)
    tour_servers: tuple[dict[str, str], list[ServerProcess]],  # noqa: F811 (the fixture)
    kind: str,
) -> None:
    environment, servers = tour_servers
    room = new_room()
    # Single connection mode: the operations posted to the other process, if any.
    others = [http_url(server) for server in servers[1:]] if kind == "graphql-sse-single" else []
    async with (
        asyncio.timeout(TOUR_TIMEOUT),
        node_tourist(node, kind, http_url(servers[0]), room, *others) as tourist,
    ):
        received, ignored, stored = await follow_the_tour(tourist, environment, servers, room)
    check_tour(received, ignored, stored, kind)
    if others:
        # The operations were accepted by the process without the stream (uvicorn's
        # access log: only single connection mode answers 202).
        assert servers[-1].count('"POST /graphql/ HTTP/1.1" 202') >= 5, servers[-1].output()
        assert servers[0].count('"POST /graphql/ HTTP/1.1" 202') == 0, servers[0].output()


async def test_gql_over_http_does_the_tour(
    tour_servers: tuple[dict[str, str], list[ServerProcess]],  # noqa: F811 (the fixture)
) -> None:
    environment, servers = tour_servers
    room = new_room()
    async with (
        asyncio.timeout(TOUR_TIMEOUT),
        gql_tourist(http_url(servers[0]), room) as tourist,
    ):
        received, ignored, stored = await follow_the_tour(tourist, environment, servers, room)
    check_tour(received, ignored, stored, "gql")
