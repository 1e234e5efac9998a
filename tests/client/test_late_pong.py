"""A ping that timed out leaves its pong in flight; the late pong is then taken as the
answer of the next ping, which returns the previous ping's payload."""

from __future__ import annotations

import asyncio
import json

import pytest

from channels_graphql_typed import GraphqlWsClient, GraphqlWsTimeoutError


class SlowPongTransport:
    """A scripted graphql-transport-ws server: acks at once, answers each ping with a
    pong echoing its payload after 0.2 s."""

    def __init__(self) -> None:
        self._incoming: asyncio.Queue[str] = asyncio.Queue()
        self.subprotocol: str | None = None

    async def connect(self, subprotocol: str) -> None:
        self.subprotocol = subprotocol

    async def send(self, text: str) -> None:
        message = json.loads(text)
        if message["type"] == "connection_init":
            self._incoming.put_nowait(json.dumps({"type": "connection_ack"}))
        elif message["type"] == "ping":
            pong = {"type": "pong", "payload": message.get("payload")}
            asyncio.get_running_loop().call_later(0.2, self._incoming.put_nowait, json.dumps(pong))

    async def receive(self) -> str:
        return await self._incoming.get()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


async def test_late_pong_is_not_the_answer_to_the_next_ping() -> None:
    async with GraphqlWsClient(SlowPongTransport()) as client:
        with pytest.raises(GraphqlWsTimeoutError):
            await client.ping({"n": 1}, timeout=0.05)
        answer = await client.ping({"n": 2}, timeout=1)
    assert answer == {"n": 2}
