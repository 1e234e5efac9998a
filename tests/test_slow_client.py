"""A subscriber that stops reading: bounded memory, nobody else slowed down, and the
newest notifications once it reads again. Over a real socket (uvicorn in this loop),
since only a real socket pushes back."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from channels_graphql_typed._fanout import get_fanout
from channels_graphql_typed._groups import group_name
from tests.client.conftest import HOST, serve
from tests.subscriptions import OnBig, SmallQueueConsumer

QUERY = json.dumps({"query": "subscription { onBig { seq text } }"})
BROADCASTS = 10_000
BATCH = 100


class StalledClient:
    """A WebSocket client over a raw socket that reads only when told to (sans-IO
    websockets protocol; a small receive buffer so that the server feels it soon)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.protocol = ClientProtocol(
            parse_uri(f"ws://{HOST}:{port}/"),
            subprotocols=[Subprotocol("graphql-transport-ws")],
            max_size=None,
        )
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def connect(self) -> None:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, (HOST, self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=raw, limit=4096)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.protocol.handshake_exc is None and not self._handshake_done():
            await self._pump()
        assert self.protocol.handshake_exc is None

    def _handshake_done(self) -> bool:
        return bool(self.protocol.state is State.OPEN)

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.writer.write(data)

    async def _pump(self) -> list[Any]:
        data = await self.reader.read(65536)
        if not data:
            self.protocol.receive_eof()
        else:
            self.protocol.receive_data(data)
        self._flush()
        return self.protocol.events_received()

    def send(self, message: str) -> None:
        self.protocol.send_text(message.encode())
        self._flush()

    async def messages(self) -> list[dict[str, Any]]:
        """Read once: the complete messages that arrived."""
        frames = await self._pump()
        return [
            json.loads(bytes(frame.data))
            for frame in frames
            if isinstance(frame, Frame) and frame.opcode is Opcode.TEXT
        ]

    def close(self) -> None:
        self.writer.close()


async def test_slow_subscriber_is_bounded_and_does_not_slow_others() -> None:
    async with serve(SmallQueueConsumer.as_asgi()) as server:
        slow = StalledClient(server.port)
        await slow.connect()
        slow.send('{"type":"connection_init"}')
        slow.send(f'{{"type":"subscribe","id":"s","payload":{QUERY}}}')
        confirmed = False
        while not confirmed:
            confirmed = any(m.get("payload") == {"data": None} for m in await slow.messages())
        # From here on, the slow client reads nothing.

        fast_seqs: list[int] = []
        arrived = asyncio.Event()
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                server.url("/"), protocols=["graphql-transport-ws"], max_msg_size=0
            ) as fast,
        ):
            await fast.send_str('{"type":"connection_init"}')
            await fast.receive_json()
            await fast.send_str(f'{{"type":"subscribe","id":"f","payload":{QUERY}}}')
            assert (await fast.receive_json())["payload"] == {"data": None}

            async def read_fast() -> None:
                async for message in fast:
                    fast_seqs.append(json.loads(message.data)["payload"]["data"]["onBig"]["seq"])
                    arrived.set()

            reader = asyncio.create_task(read_fast())
            group = group_name(OnBig.group_namespace, None)
            registrations = get_fanout("default").members[group]
            largest_queue = 0
            for start in range(0, BROADCASTS, BATCH):
                for seq in range(start, start + BATCH):
                    await OnBig.broadcast(payload=seq)
                largest_queue = max(largest_queue, *(len(r.queue) for r in registrations))
                # The fast subscriber gets every batch while the slow one reads nothing.
                async with asyncio.timeout(10):
                    while len(fast_seqs) < start + BATCH:
                        arrived.clear()
                        await arrived.wait()
            assert fast_seqs == list(range(BROADCASTS))
            # Memory stays bounded by the queue limit, and the slow one did drop.
            assert largest_queue <= SmallQueueConsumer.notification_queue_limit
            assert max(r.queue.dropped for r in registrations) > 0
            reader.cancel()

        # Reading again, the slow client gets what the buffers held, then the newest.
        slow_seqs: list[int] = []
        async with asyncio.timeout(30):
            while not slow_seqs or slow_seqs[-1] != BROADCASTS - 1:
                for message in await slow.messages():
                    if message.get("type") == "next" and message["payload"]["data"]:
                        slow_seqs.append(message["payload"]["data"]["onBig"]["seq"])
        assert slow_seqs == sorted(set(slow_seqs))
        assert len(slow_seqs) < BROADCASTS
        slow.close()
