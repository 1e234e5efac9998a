"""The chat example on two uvicorn processes and Redis: ``manage.py send_chat_message``,
a third process, reaches the subscribers of both, once each and in order.

The pub/sub layer is the example's own Redis configuration (``REDIS_URL``; its default
key prefix, so every test uses chatrooms of its own); the core layer comes from
:mod:`tests.scale_out.chat_settings`, with a prefix of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING, Any, Final

import pytest

import channels_graphql_typed as cgt
from tests.example.conftest import EXAMPLE_DIR, chat_server_command, run_manage
from tests.processes import HOST
from tests.redis_support import LAYERS, REDIS_URL, require_redis
from tests.scale_out.conftest import (
    CLIENT_TIMEOUT,
    RECOMMENDED_SOCKET_TIMEOUT,
    ROOT,
    channel_layers_for,
    is_core,
    layer_id,
    new_prefix,
    new_room,
    running_servers,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from tests.scale_out.conftest import ServerProcess

pytestmark = pytest.mark.slow

SUBSCRIBE: Final = """
subscription Listen($chatroom: String!) { onNewChatMessage(chatroom: $chatroom) { text } }"""
SEND: Final = """
mutation Send($chatroom: String!, $text: String!) {
  sendChatMessage(chatroom: $chatroom, text: $text) { ok }
}"""


@pytest.fixture(scope="module")
def chat_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's database, migrated once for this module's servers."""
    require_redis()
    database = tmp_path_factory.mktemp("chat") / "chat.sqlite3"
    environment = dict(os.environ, CHAT_DATABASE=str(database))
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    run_manage(environment, "migrate", "--noinput", "-v", "0")
    return database


@pytest.fixture(scope="module", params=LAYERS, ids=layer_id)
def chat_servers(
    request: pytest.FixtureRequest,
    chat_database: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, str], list[ServerProcess]]]:
    """Two chat servers on the suite's Redis, and the environment of their commands."""
    require_redis()
    backend: str = request.param
    environment = dict(os.environ, CHAT_DATABASE=str(chat_database), PYTHONUNBUFFERED="1")
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    environment["REDIS_URL"] = REDIS_URL
    if is_core(backend):
        layers = channel_layers_for(
            backend, REDIS_URL, new_prefix(backend), {"socket_timeout": RECOMMENDED_SOCKET_TIMEOUT}
        )
        environment["DJANGO_SETTINGS_MODULE"] = "tests.scale_out.chat_settings"
        environment["CGT_TEST_CHANNEL_LAYERS"] = json.dumps(layers)
        environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EXAMPLE_DIR)])
    with running_servers(
        2, environment, tmp_path_factory.mktemp("chat-servers"), command=chat_server_command
    ) as servers:
        yield environment, servers


@contextlib.asynccontextmanager
async def chat_client(server: ServerProcess) -> AsyncIterator[cgt.GraphqlWsClient]:
    # A browser's Origin, as the chat page's own: the consumer accepts it.
    transport = cgt.GraphqlWsTransportAiohttp(
        server.ws_url, headers={"Origin": f"http://{HOST}:{server.port}"}
    )
    async with cgt.GraphqlWsClient(transport, timeout=CLIENT_TIMEOUT) as client:
        yield client


async def next_text(stream: cgt.GraphqlWsSubscriptionStream) -> Any:
    result = await anext(stream)
    assert result.errors is None, result.errors
    return None if result.data is None else result.data["onNewChatMessage"]["text"]


async def test_management_command_reaches_both_servers_once_in_order(
    chat_servers: tuple[dict[str, str], list[ServerProcess]],
) -> None:
    environment, servers = chat_servers
    room = new_room()
    async with contextlib.AsyncExitStack() as stack:
        streams = []
        for server in servers:
            for _ in range(2):
                client = await stack.enter_async_context(chat_client(server))
                stream = await stack.enter_async_context(
                    client.subscribe(SUBSCRIBE, {"chatroom": room}, confirm=True)
                )
                await stream.wait_confirmed()  # confirmed: in all its groups
                streams.append(stream)
        for text in ("first", "second"):
            completed = run_manage(environment, "send_chat_message", room, text)
            assert f"Sent to {room}: {text}" in completed.stdout
        # A last message from a WebSocket client of the first server: a repeat of an
        # earlier one would come before it.
        sender = await stack.enter_async_context(chat_client(servers[0]))
        result = await sender.execute(SEND, {"chatroom": room, "text": "last"})
        assert result.data == {"sendChatMessage": {"ok": True}}
        for stream in streams:
            assert [await next_text(stream) for _ in range(3)] == ["first", "second", "last"]
