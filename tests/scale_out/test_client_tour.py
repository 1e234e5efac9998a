"""Standard clients, with their defaults and no Origin header, do the README's tour of
the chat example served by uvicorn on Redis (the example's own ``REDIS_URL`` setting),
on one process and on two.

The tour: read the history, send as Anonymous, log in as demo on the socket, send as
demo, subscribe to the room; then receive the messages of others (another client's,
connected to the other process when there are two, and the management command's), and
not the client's own. The clients: the Node ``graphql-ws``, ``subscriptions-transport-ws``
and Apollo Client (``GraphQLWsLink``) in ``tests/node/chat-tour.mjs``, and Python's
``gql`` over both subprotocols, here. None of them asks for a confirmation, so the test
sends probes until the subscription receives one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from typing import TYPE_CHECKING, Any, Final, Protocol

import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

import channels_graphql_typed as cgt
from tests.e2e.test_node_clients import NODE_DIR, node  # noqa: F401 (a fixture)
from tests.example.conftest import chat_server_command, run_manage
from tests.redis_support import REDIS_URL, require_redis
from tests.scale_out.conftest import CLIENT_TIMEOUT, new_room, running_servers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from tests.scale_out.conftest import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TOUR_TIMEOUT: Final = 30.0
PROBES: Final = 60
PROBE_WAIT: Final = 0.5

HISTORY: Final = (
    "query History($room: String!) { history(chatroom: $room) { chatroom text sender } }"
)
SEND: Final = """mutation Send($room: String!, $text: String!) {
  sendChatMessage(chatroom: $room, text: $text) { ok }
}"""
LOGIN: Final = 'mutation Login { login(username: "demo", password: "demo") { ok } }'
ME: Final = "query Me { me { username } }"
LISTEN: Final = """subscription Listen($room: String!) {
  onNewChatMessage(chatroom: $room) { chatroom text sender }
}"""


class Tourist(Protocol):
    """A client doing the tour: its events, and the commands the test gives it."""

    async def next_event(self) -> dict[str, Any]: ...

    async def command(self, line: str) -> None: ...


@pytest.fixture(scope="module", params=[1, 2], ids=["one-process", "two-processes"])
def tour_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], list[ServerProcess]]]:
    """The chat example as the README serves it with REDIS_URL, on one or two uvicorn
    processes sharing a database; and the environment of its commands."""
    require_redis()
    directory: Path = tmp_path_factory.mktemp("tour")
    environment = dict(
        os.environ,
        CHAT_DATABASE=str(directory / "chat.sqlite3"),
        PYTHONUNBUFFERED="1",
        REDIS_URL=REDIS_URL,
    )
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    run_manage(environment, "migrate", "--noinput", "-v", "0")
    run_manage(environment, "ensure_demo_user")
    with running_servers(
        request.param, environment, directory, command=chat_server_command
    ) as servers:
        yield environment, servers


class NodeTourist:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def next_event(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            assert self.process.stderr is not None
            error = await self.process.stderr.read()
            pytest.fail(f"the Node client ended: {error.decode(errors='replace')}")
        event: dict[str, Any] = json.loads(line)
        return event

    async def command(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()


@contextlib.asynccontextmanager
async def node_tourist(executable: str, kind: str, url: str, room: str) -> AsyncIterator[Tourist]:
    process = await asyncio.create_subprocess_exec(
        executable,
        str(NODE_DIR / "chat-tour.mjs"),
        kind,
        url,
        room,
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


class GqlTourist:
    """Python's gql client, with its default WebsocketsTransport (or one subprotocol)."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.commands: asyncio.Queue[str] = asyncio.Queue()

    async def next_event(self) -> dict[str, Any]:
        return await self.events.get()

    async def command(self, line: str) -> None:
        await self.commands.put(line)

    async def tour(self, url: str, room: str, subprotocols: list[str] | None) -> None:
        transport = WebsocketsTransport(url=url, subprotocols=subprotocols)
        async with Client(transport=transport) as session:

            async def request(query: str, **variables: Any) -> dict[str, Any]:
                result = await session.execute(GraphQLRequest(query, variable_values=variables))
                assert isinstance(result, dict)
                return result

            await self.events.put({"step": "history", "data": await request(HISTORY, room=room)})
            sent = await request(SEND, room=room, text="anonymous from gql")
            assert sent == {"sendChatMessage": {"ok": True}}
            assert await request(LOGIN) == {"login": {"ok": True}}
            await self.events.put({"step": "me", "data": await request(ME)})
            assert await request(SEND, room=room, text="demo from gql") == sent

            async def listen() -> None:
                listening = GraphQLRequest(LISTEN, variable_values={"room": room})
                async for data in session.subscribe(listening):
                    await self.events.put({"step": "message", "data": data, "errors": None})
                    if data["onNewChatMessage"]["text"] == "the end":
                        await self.events.put({"step": "done"})
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
                        assert await request(SEND, room=room, text="own from gql") == sent
                        await self.events.put({"step": "own-sent"})
                await listener
            finally:
                listener.cancel()


@contextlib.asynccontextmanager
async def gql_tourist(
    url: str, room: str, subprotocols: list[str] | None
) -> AsyncIterator[Tourist]:
    tourist = GqlTourist()
    task = asyncio.ensure_future(tourist.tour(url, room, subprotocols))

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


async def send(client: cgt.GraphqlWsClient, room: str, text: str) -> None:
    result = await client.execute(SEND, {"room": room, "text": text})
    assert result.data == {"sendChatMessage": {"ok": True}}


async def follow_the_tour(
    tourist: Tourist, environment: dict[str, str], servers: list[ServerProcess], room: str
) -> list[dict[str, Any]]:
    """Drive one tourist through the tour; return the messages it received."""
    assert await tourist.next_event() == {"step": "history", "data": {"history": []}}
    assert await tourist.next_event() == {"step": "me", "data": {"me": {"username": "demo"}}}
    assert await tourist.next_event() == {"step": "subscribed"}
    received: list[dict[str, Any]] = []
    # Another client, of the other process when there are two.
    transport = cgt.GraphqlWsTransportAiohttp(servers[-1].ws_url)
    async with cgt.GraphqlWsClient(transport, timeout=CLIENT_TIMEOUT) as other:
        for probe in range(PROBES):
            await send(other, room, f"probe {probe}")
            with contextlib.suppress(TimeoutError):
                received.append(await asyncio.wait_for(tourist.next_event(), PROBE_WAIT))
                break
        else:
            pytest.fail(f"no probe reached the subscription in {PROBES * PROBE_WAIT} s")
        await tourist.command("own")
        while (event := await tourist.next_event())["step"] != "own-sent":
            received.append(event)
        await send(other, room, "from another client")
        completed = await asyncio.to_thread(
            run_manage, environment, "send_chat_message", room, "from the command"
        )
        assert f"Sent to {room}" in completed.stdout
        await send(other, room, "the end")
        while (event := await tourist.next_event())["step"] != "done":
            received.append(event)
        history = await other.execute(HISTORY, {"room": room})
    assert history.data is not None
    stored = [(row["sender"], row["text"]) for row in history.data["history"]]
    return [*received, {"step": "history", "stored": stored}]


def check_tour(events: list[dict[str, Any]], kind: str) -> None:
    *received, history = events
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
    stored = history["stored"]
    for sender, text in [("Anonymous", f"anonymous from {kind}"), ("demo", f"demo from {kind}")]:
        assert (sender, text) in stored
    assert ("demo", f"own from {kind}") in stored  # sent, but not sent back to it


@pytest.mark.node
@pytest.mark.parametrize("kind", ["graphql-ws", "subscriptions-transport-ws", "apollo"])
async def test_node_clients_do_the_tour(
    node: str,  # noqa: F811 (the fixture)
    tour_servers: tuple[dict[str, str], list[ServerProcess]],
    kind: str,
) -> None:
    environment, servers = tour_servers
    room = new_room()
    async with (
        asyncio.timeout(TOUR_TIMEOUT),
        node_tourist(node, kind, servers[0].ws_url, room) as tourist,
    ):
        events = await follow_the_tour(tourist, environment, servers, room)
    check_tour(events, kind)


@pytest.mark.parametrize(
    "subprotocols",
    [None, [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL]],
    ids=["default-graphql-ws", "graphql-transport-ws"],
)
async def test_gql_does_the_tour(
    tour_servers: tuple[dict[str, str], list[ServerProcess]], subprotocols: list[str] | None
) -> None:
    environment, servers = tour_servers
    room = new_room()
    async with (
        asyncio.timeout(TOUR_TIMEOUT),
        gql_tourist(servers[0].ws_url, room, subprotocols) as tourist,
    ):
        events = await follow_the_tour(tourist, environment, servers, room)
    check_tour(events, "gql")
