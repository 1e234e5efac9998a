"""The client resumes resumable subscriptions: after a dropped connection, it subscribes
again after the last event id it received, and the stream goes on with every event
exactly once, in order (in-process, and through aiohttp to uvicorn; in-memory layer).

No assertion is timed: the reconnection waits for the test's go-ahead; timeouts are hang
guards only.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

import pytest
from channels.routing import URLRouter
from django.urls import path

import channels_graphql_typed as cgt
from channels_graphql_typed.testing import GraphqlWsTransportCommunicator
from tests.client.conftest import TIMEOUT, serve
from tests.client.cuttable_transport import CuttableTransport
from tests.replay_subscriptions import OnPlainTick, OnTick, ReplayConsumer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

State = cgt.GraphqlWsClientState
TICKS: Final = "subscription($room: String!) { onTick(room: $room) { number } }"
PLAIN: Final = "subscription { onPlainTick { number } }"
GUARD: Final = 20.0
"""Seconds after which a wait is taken for a hang."""

# types-channels types django.urls.path() for Django views only, hence the ignores.
routes = [path("graphql/", ReplayConsumer.as_asgi())]  # type: ignore[arg-type]
application = URLRouter(routes)  # type: ignore[arg-type]


@pytest.fixture(params=["in-process", "aiohttp"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[CuttableTransport]:
    if request.param == "in-process":
        yield CuttableTransport(GraphqlWsTransportCommunicator(application, "/graphql/"))
        return
    async with serve(application) as server:
        yield CuttableTransport(cgt.GraphqlWsTransportAiohttp(server.url("/graphql/")))


class Gate:
    """The client's retry wait: a reconnection happens when the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def wait(self, retry: int) -> None:
        await self.open.wait()


def client(transport: CuttableTransport, subprotocol: str, gate: Gate) -> cgt.GraphqlWsClient:
    return cgt.GraphqlWsClient(
        transport, subprotocol=subprotocol, timeout=TIMEOUT, retry_attempts=5, retry_wait=gate.wait
    )


async def number(stream: cgt.GraphqlWsSubscriptionStream, field: str = "onTick") -> int:
    result = await asyncio.wait_for(anext(stream), GUARD)
    assert result.errors is None, result
    assert result.data is not None
    value: int = result.data[field]["number"]
    return value


async def test_a_resumable_subscription_misses_nothing_across_a_reconnect(
    transport: CuttableTransport, subprotocol: str
) -> None:
    gate = Gate()
    async with (
        client(transport, subprotocol, gate) as graphql,
        graphql.subscribe(TICKS, {"room": "r"}, confirm=True, timeout=GUARD) as stream,
    ):
        await stream.wait_confirmed()
        await OnTick.broadcast(payload=0, group="r")
        assert await number(stream) == 0
        assert stream.last_event_id is not None
        transport.cut()
        await graphql.wait_state(State.RECONNECTING, timeout=GUARD)
        for value in range(1, 11):
            await OnTick.broadcast(payload=value, group="r")
        gate.open.set()
        await stream.wait_confirmed()
        for value in range(11, 16):
            await OnTick.broadcast(payload=value, group="r")
        assert [await number(stream) for _ in range(15)] == list(range(1, 16))
        assert stream.resubscriptions == 1
        assert transport.connections == 2


async def test_the_client_resumes_after_each_reconnect(
    transport: CuttableTransport, subprotocol: str
) -> None:
    gate = Gate()
    gate.open.set()
    async with (
        client(transport, subprotocol, gate) as graphql,
        graphql.subscribe(TICKS, {"room": "twice"}, confirm=True, timeout=GUARD) as stream,
    ):
        await stream.wait_confirmed()
        expected = 0
        for _ in range(3):
            await OnTick.broadcast(payload=expected, group="twice")
            assert await number(stream) == expected
            expected += 1
            transport.cut()
            # Broadcast at once, while the client reconnects or after it did.
            await OnTick.broadcast(payload=expected, group="twice")
            assert await number(stream) == expected
            expected += 1
        assert stream.resubscriptions == 3


async def test_a_subscription_that_is_not_resumable_sends_no_resume_id(
    transport: CuttableTransport, subprotocol: str
) -> None:
    gate = Gate()
    async with (
        client(transport, subprotocol, gate) as graphql,
        graphql.subscribe(PLAIN, confirm=True, timeout=GUARD) as stream,
    ):
        await stream.wait_confirmed()
        await OnPlainTick.broadcast(payload=1)
        assert await number(stream, "onPlainTick") == 1
        assert stream.last_event_id is None
        transport.cut()
        await graphql.wait_state(State.RECONNECTING, timeout=GUARD)
        gate.open.set()
        await graphql.wait_state(State.CONNECTED, timeout=GUARD)
        await stream.wait_confirmed()  # subscribed again on the new connection
        await OnPlainTick.broadcast(payload=2)
        assert await number(stream, "onPlainTick") == 2
