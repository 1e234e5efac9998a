"""Helpers of the tests that attack the chat example's accounts over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING, Any, Final

import channels_graphql_typed as cgt

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.example.conftest import ChatServer

TIMEOUT: Final = 10.0
ME: Final = "{ me { username } }"
LOGIN: Final = """
mutation Login($username: String!, $password: String!) {
  login(username: $username, password: $password) { ok }
}"""


def new_username() -> str:
    """A username no other test uses."""
    return f"user-{uuid.uuid4().hex[:12]}"


def create_user(server: ChatServer, username: str, password: str) -> None:
    completed = server.manage("ensure_demo_user", "--username", username, "--password", password)
    assert f"Created user {username!r}" in completed.stdout


async def run_in_shell(server: ChatServer, code: str) -> str:
    """Run Python code in ``manage.py shell`` against the server's database."""
    completed = await asyncio.to_thread(server.manage, "shell", "-c", code)
    return completed.stdout


@contextlib.asynccontextmanager
async def ws_client(
    server: ChatServer, subprotocol: str | None = None
) -> AsyncIterator[cgt.GraphqlWsClient]:
    """A client of the server's WebSocket, with the Origin header a browser sends."""
    transport = cgt.GraphqlWsTransportAiohttp(server.ws_url, headers={"Origin": server.origin})
    async with cgt.GraphqlWsClient(transport, subprotocol=subprotocol, timeout=TIMEOUT) as client:
        yield client


async def login(client: cgt.GraphqlWsClient, username: str, password: str) -> Any:
    """The ``data`` of a ``login`` (errors without data raise)."""
    result = await client.execute(LOGIN, {"username": username, "password": password})
    return result.data
