"""The README's tour with the library's Python client, against the chat example.

With the example served (``bash scripts/serve``)::

    .venv/bin/python examples/chat/chat_client.py            # ws://127.0.0.1:8000/graphql/
    .venv/bin/python examples/chat/chat_client.py ws://HOST:PORT/graphql/

It prints the lobby's history, sends as ``Anonymous``, logs in as ``demo``, sends again,
then prints the lobby's new messages from others until interrupted (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
from typing import Final

import channels_graphql_typed as cgt

HISTORY: Final = "query ($room: String!) { history(chatroom: $room) { sender text } }"
SEND: Final = (
    "mutation ($room: String!, $text: String!) "
    "{ sendChatMessage(chatroom: $room, text: $text) { ok } }"
)
LOGIN: Final = 'mutation { login(username: "demo", password: "demo") { ok } }'
LISTEN: Final = (
    "subscription ($room: String!) { onNewChatMessage(chatroom: $room) { sender text } }"
)


# --8<-- [start:chat_client-1]
async def print_lobby(url: str, messages: float = math.inf) -> None:
    transport = cgt.GraphqlWsTransportAiohttp(url)  # no Origin header: not a browser
    async with cgt.GraphqlWsClient(transport, subprotocol="graphql-transport-ws") as client:
        history = await client.execute(HISTORY, {"room": "lobby"})
        print(history.data)
        await client.execute(SEND, {"room": "lobby", "text": "Hello, I am nobody"})
        login = await client.execute(LOGIN)  # this connection is demo's from now on
        print(login.data)
        await client.execute(SEND, {"room": "lobby", "text": "Hello, I am demo"})
        listen = client.subscribe(LISTEN, {"room": "lobby"}, confirm=True, timeout=math.inf)
        async with listen as stream:
            await stream.wait_confirmed()  # registered: no message sent from now is missed
            print("listening")
            received = 0
            async for item in stream:  # others' messages: the server skips our own
                print(item.data)
                received += 1
                if received >= messages:
                    break


# --8<-- [end:chat_client-1]


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8000/graphql/"
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(print_lobby(url))
