"""The README's guide example (examples/guide/chat.py) works as the README says."""

from __future__ import annotations

from examples.guide.chat import ChatConsumer
from examples.guide.client import (
    test_chat_consumer as test_readme_testing_sample,  # noqa: F401 (collected by pytest)
)
from tests.helpers import WsSession

app = ChatConsumer.as_asgi()
TOKEN = {"token": "let me in"}
SUBSCRIPTION = 'subscription { onNewChatMessage(chatroom: "lobby") { chatroom text sender } }'


async def test_bad_token_is_rejected(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol, init=False)
    await session.send({"type": "connection_init", "payload": {"token": "nope"}})
    if subprotocol == "graphql-ws":
        assert (await session.receive())["type"] == "connection_error"
    assert (await session.receive_close())[0] == 4403
    await session.close()


async def test_chat_round_trip_without_self_notification(subprotocol: str) -> None:
    alice = await WsSession.open(app, subprotocol, init=False)
    assert await alice.init(TOKEN) == {"type": "connection_ack", "payload": {"server": "chat"}}
    bob = await WsSession.open(app, subprotocol, payload=TOKEN)
    for session in (alice, bob):
        await session.start("s", SUBSCRIPTION)
        assert await session.result("s") == {"data": None}  # confirm_subscriptions
    await alice.start("m", 'mutation { sendChatMessage(chatroom: "lobby", text: "hi") }')
    assert await alice.result("m") == {"data": {"sendChatMessage": True}}
    await alice.completed("m")
    assert await bob.result("s") == {
        "data": {"onNewChatMessage": {"chatroom": "lobby", "text": "hi", "sender": "Anonymous"}}
    }
    assert await alice.nothing()
    await alice.close()
    await bob.close()


async def test_introspection_is_refused_by_on_operation(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol, payload=TOKEN)
    await session.start("i", "{ __schema { queryType { name } } }")
    message = await session.receive()
    assert message["type"] == "error"
    assert await session.query("q", "{ serverName }") == {"data": {"serverName": "chat"}}
    await session.close()
