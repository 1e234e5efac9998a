"""The README's testing sample, as code that mypy checks and the tests run."""

from __future__ import annotations

import pytest

import channels_graphql_typed as cgt
from channels_graphql_typed.testing import graphql_ws_client
from examples.guide.chat import ChatConsumer


# --8<-- [start:client-1]
async def test_chat_consumer() -> None:
    async with graphql_ws_client(
        ChatConsumer.as_asgi(), connection_params={"token": "let me in"}
    ) as client:
        result = await client.execute("query { serverName }")
        assert result.data == {"serverName": "chat"}
        with pytest.raises(cgt.GraphqlWsResponseError, match="text"):  # errors, no data
            await client.execute('mutation { sendChatMessage(chatroom: "x") }')


# --8<-- [end:client-1]
