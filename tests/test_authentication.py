"""Authentication: a token checked in on_connect, and a subscription for logged-in users."""

from __future__ import annotations

import dataclasses
from typing import Any

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS
from channels_graphql_typed._fanout import get_fanout
from tests.consumers import HookConsumer
from tests.helpers import WsSession
from tests.subscriptions import ConfirmingConsumer, OnPrivate


@dataclasses.dataclass
class FakeUser:
    is_authenticated: bool


def with_user(application: Any, user: FakeUser | None) -> Any:
    """What Channels' AuthMiddlewareStack does: put the user in the scope."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        return await application(dict(scope, user=user), receive, send)

    return app


async def test_bad_token_runs_no_operation(subprotocol: str) -> None:
    HookConsumer.disconnects.clear()
    session = await WsSession.open(HookConsumer.as_asgi(), subprotocol, init=False)
    await session.send({"type": "connection_init", "payload": {"token": "forged"}})
    # An operation sent right behind the bad init must not run.
    await session.start("1", "{ contextVisits }")
    if subprotocol != GRAPHQL_TRANSPORT_WS:
        assert (await session.receive())["type"] == "connection_error"
    code, _ = await session.receive_close()
    # 4401 when the operation overtook the rejection (it came before the ack), 4403 else.
    assert code in (4401, 4403)
    assert await session.nothing()
    await session.close()


async def test_anonymous_user_cannot_subscribe_and_nothing_is_registered(
    subprotocol: str,
) -> None:
    anonymous = with_user(ConfirmingConsumer.as_asgi(), FakeUser(is_authenticated=False))
    session = await WsSession.open(anonymous, subprotocol)
    await session.start("p", "subscription { onPrivate { value } }")
    payload = await session.result("p")
    assert payload["data"] is None
    assert payload["errors"][0]["message"] == "You must be logged in"
    await session.completed("p")
    assert not get_fanout("default").members
    await session.close()


async def test_authenticated_user_subscribes(subprotocol: str) -> None:
    logged_in = with_user(ConfirmingConsumer.as_asgi(), FakeUser(is_authenticated=True))
    session = await WsSession.open(logged_in, subprotocol)
    await session.start("p", "subscription { onPrivate { value } }")
    assert await session.result("p") == {"data": None}
    await OnPrivate.broadcast(payload=5)
    assert await session.result("p") == {"data": {"onPrivate": {"value": 5}}}
    await session.close()
