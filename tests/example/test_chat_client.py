"""The README's Python client sample (``examples/chat/chat_client.py``) run as pasted,
against the chat example served by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from typing import TYPE_CHECKING, Final

import pytest

import channels_graphql_typed as cgt
from tests.example.conftest import EXAMPLE_DIR, ROOT

if TYPE_CHECKING:
    from tests.example.conftest import ChatServer

pytestmark = pytest.mark.slow

TIMEOUT: Final = 15.0
SEND: Final = (
    'mutation { sendChatMessage(chatroom: "lobby", text: "Hi from another client") { ok } }'
)


async def test_the_client_sample_does_the_tour(chat_server: ChatServer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE_DIR / "chat_client.py"),
        chat_server.ws_url,
        cwd=ROOT,
        env={**chat_server.environment},
        stdin=subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while not lines or lines[-1] != "listening":
                line = await process.stdout.readline()
                assert line, (lines, await process.stderr.read() if process.stderr else b"")
                lines.append(line.decode().strip())
            assert lines[0].startswith("{'history': ")
            assert lines[1] == "{'login': {'ok': True}}"
            transport = cgt.GraphqlWsTransportAiohttp(chat_server.ws_url)
            async with cgt.GraphqlWsClient(transport) as other:
                await other.execute(SEND)
            line = await process.stdout.readline()
        # Its own messages were not sent back to it; the other client's was.
        expected = {"sender": "Anonymous", "text": "Hi from another client"}
        assert line.decode().strip() == str({"onNewChatMessage": expected})
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    transport = cgt.GraphqlWsTransportAiohttp(chat_server.ws_url)
    async with cgt.GraphqlWsClient(transport) as reader:
        result = await reader.execute('{ history(chatroom: "lobby") { sender text } }')
    assert result.data is not None
    history = [(row["sender"], row["text"]) for row in result.data["history"]]
    assert ("Anonymous", "Hello, I am nobody") in history
    assert ("demo", "Hello, I am demo") in history
