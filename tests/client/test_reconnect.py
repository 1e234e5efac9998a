"""The client reconnects: retries, re-subscription, fatal codes, exhausted retries, lazy
connections and keep-alive, against real servers that close the socket (this library's
consumer in-process and behind uvicorn), on both subprotocols.

No assertion is timed: tests wait on the client's state changes and on stream events;
timeouts are hang guards only. Retry waits are the tests' own coroutines, so a
reconnection happens when the test lets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import TYPE_CHECKING, Any, Final

import pytest

import channels_graphql_typed as cgt
from tests.client.conftest import TIMEOUT, Connector, eventually, serve
from tests.client.routing import DroppingConsumer, application
from tests.subscriptions import OnAnything

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

State = cgt.GraphqlWsClientState
ANYTHING: Final = "subscription { anything { value } }"
SLOW: Final = "query { asyncSleep(seconds: 60) }"
GUARD: Final = 20.0
"""Seconds after which a wait is taken for a hang."""


class Recorder:
    """Records the client's state changes and the retry waits it asked for."""

    def __init__(self) -> None:
        self.changes: list[cgt.GraphqlWsStateChange] = []
        self.waits: list[int] = []
        self.go_on = asyncio.Event()
        self.go_on.set()

    def on_state(self, change: cgt.GraphqlWsStateChange) -> None:
        self.changes.append(change)

    async def retry_wait(self, retry: int) -> None:
        self.waits.append(retry)
        await self.go_on.wait()

    @property
    def states(self) -> list[State]:
        return [change.state for change in self.changes]


def client(
    connector: Connector,
    path: str,
    subprotocol: str,
    recorder: Recorder,
    **options: Any,
) -> cgt.GraphqlWsClient:
    options.setdefault("retry_attempts", 3)
    return cgt.GraphqlWsClient(
        connector.transport(path),
        subprotocol=subprotocol,
        timeout=TIMEOUT,
        on_state=recorder.on_state,
        retry_wait=recorder.retry_wait,
        **options,
    )


async def next_value(stream: cgt.GraphqlWsSubscriptionStream) -> int:
    result = await asyncio.wait_for(anext(stream), GUARD)
    assert result.errors is None
    assert result.data is not None
    value: int = result.data["anything"]["value"]
    return value


@pytest.fixture(autouse=True)
def _forget_connections() -> None:
    DroppingConsumer.live.clear()
    DroppingConsumer.operations.clear()


# --- reconnection and re-subscription -----------------------------------------------------


@pytest.mark.parametrize(
    "code", [cgt.CloseCode.UNEXPECTED_CONDITION, cgt.CloseCode.SERVICE_RESTART]
)
async def test_a_dropped_connection_is_reconnected_and_the_subscription_goes_on(
    connector: Connector, subprotocol: str, code: int
) -> None:
    recorder = Recorder()
    async with (
        client(connector, "/dropping/", subprotocol, recorder) as graphql,
        graphql.subscribe(ANYTHING, confirm=True, timeout=GUARD) as stream,
    ):
        await stream.wait_confirmed()
        operation_id = stream.operation_id
        await OnAnything.broadcast(payload={"value": 1})
        assert await next_value(stream) == 1

        recorder.go_on.clear()
        assert await DroppingConsumer.drop_all(code, "going") == 1
        await graphql.wait_state(State.RECONNECTING, timeout=GUARD)
        recorder.go_on.set()
        change = await graphql.wait_state(State.CONNECTED, timeout=GUARD)
        assert change is not None
        assert change.previous is State.RECONNECTING
        assert stream.resubscriptions == 1
        await stream.wait_confirmed()  # registered again on the new connection
        await OnAnything.broadcast(payload={"value": 2})
        assert await next_value(stream) == 2

        assert stream.operation_id == operation_id  # the same id on the new connection
        assert graphql.connections_opened == 2
        assert DroppingConsumer.operations == [ANYTHING, ANYTHING]
    assert recorder.states == [
        State.CONNECTING,
        State.CONNECTED,
        State.RECONNECTING,
        State.CONNECTED,
        State.CLOSED,
    ]
    reconnecting = recorder.changes[2]
    assert reconnecting.retry == 1
    assert isinstance(reconnecting.error, cgt.GraphqlWsConnectionClosed)
    assert reconnecting.error.code == code
    assert recorder.waits == [0]


async def test_a_query_in_flight_fails_with_the_close_and_later_ones_run(
    connector: Connector, subprotocol: str
) -> None:
    recorder = Recorder()
    recorder.go_on.clear()  # the reconnection waits until the test lets it
    async with client(connector, "/dropping/", subprotocol, recorder) as graphql:
        slow = asyncio.create_task(graphql.execute(SLOW, timeout=GUARD))
        await eventually(lambda: DroppingConsumer.operations == [SLOW], GUARD)
        await DroppingConsumer.drop_all(cgt.CloseCode.SERVICE_RESTART)
        with pytest.raises(cgt.GraphqlWsConnectionClosed) as raised:
            await slow
        assert raised.value.code == cgt.CloseCode.SERVICE_RESTART
        assert not graphql.closed

        # Started while reconnecting: waits for the connection, then runs.
        await graphql.wait_state(State.RECONNECTING, timeout=GUARD)
        hello = asyncio.create_task(graphql.execute("{ hello }", timeout=GUARD))
        await asyncio.sleep(0)
        assert not hello.done()
        recorder.go_on.set()
        assert (await hello).data == {"hello": "Hello, world!"}
    assert DroppingConsumer.operations == [SLOW, "{ hello }"]  # never sent twice


async def test_should_retry_can_refuse(connector: Connector, subprotocol: str) -> None:
    recorder = Recorder()
    refused: list[cgt.GraphqlWsClientError] = []

    def should_retry(error: cgt.GraphqlWsClientError) -> bool:
        refused.append(error)
        return False

    graphql = client(connector, "/dropping/", subprotocol, recorder, should_retry=should_retry)
    async with graphql, graphql.subscribe(ANYTHING, confirm=True, timeout=GUARD) as stream:
        await stream.wait_confirmed()
        await DroppingConsumer.drop_all(cgt.CloseCode.SERVICE_RESTART)
        with pytest.raises(cgt.GraphqlWsConnectionClosed) as raised:
            await anext(stream)
        assert not isinstance(raised.value, cgt.GraphqlWsRetriesExhausted)
        assert raised.value.code == cgt.CloseCode.SERVICE_RESTART
        assert graphql.closed
    assert [type(error) for error in refused] == [cgt.GraphqlWsConnectionClosed]
    assert recorder.waits == []


async def test_without_retry_attempts_the_first_close_ends_the_client(
    connector: Connector, subprotocol: str
) -> None:
    recorder = Recorder()
    graphql = client(connector, "/dropping/", subprotocol, recorder, retry_attempts=0)
    async with graphql, graphql.subscribe(ANYTHING, confirm=True, timeout=GUARD) as stream:
        await stream.wait_confirmed()
        await DroppingConsumer.drop_all(cgt.CloseCode.SERVICE_RESTART, "bye")
        closed = await graphql.wait_closed(timeout=GUARD)
        assert type(closed) is cgt.GraphqlWsConnectionClosed
        assert (closed.code, closed.reason) == (cgt.CloseCode.SERVICE_RESTART, "bye")
        with pytest.raises(cgt.GraphqlWsConnectionClosed):
            await anext(stream)
    assert recorder.states == [State.CONNECTING, State.CONNECTED, State.CLOSED]
    assert recorder.waits == []


# --- what is not retried ------------------------------------------------------------------


async def test_a_rejected_connection_is_not_retried(connector: Connector, subprotocol: str) -> None:
    recorder = Recorder()
    graphql = client(connector, "/hooks/", subprotocol, recorder, retry_attempts=5)
    with pytest.raises(cgt.GraphqlWsConnectionClosed) as raised:
        await graphql.connect_and_init()
    assert not isinstance(raised.value, cgt.GraphqlWsRetriesExhausted)
    assert raised.value.code == cgt.CloseCode.FORBIDDEN
    assert recorder.waits == []
    assert recorder.states == [State.CONNECTING, State.CLOSED]
    assert graphql.closed


async def test_a_protocol_violation_is_not_retried(connector: Connector) -> None:
    recorder = Recorder()
    graphql = client(connector, "/misbehaving/garbage/", cgt.GRAPHQL_TRANSPORT_WS, recorder)
    with pytest.raises(cgt.GraphqlWsProtocolError):
        await graphql.connect_and_init()
    assert recorder.waits == []


async def test_exhausted_retries_raise_the_typed_error_with_the_last_close(
    connector: Connector, subprotocol: str
) -> None:
    recorder = Recorder()
    graphql = client(connector, "/refuse/", subprotocol, recorder, retry_attempts=2)
    with pytest.raises(cgt.GraphqlWsRetriesExhausted) as raised:
        await graphql.connect_and_init()
    assert raised.value.attempts == 2
    assert raised.value.code == cgt.CloseCode.ABNORMAL_CLOSURE
    assert "refused" in raised.value.reason
    assert recorder.waits == [0, 1]
    assert recorder.states == [
        State.CONNECTING,
        State.RECONNECTING,
        State.RECONNECTING,
        State.CLOSED,
    ]
    assert [change.retry for change in recorder.changes[1:3]] == [1, 2]
    assert graphql.closed
    assert isinstance(graphql.close_error, cgt.GraphqlWsRetriesExhausted)
    with pytest.raises(cgt.GraphqlWsRetriesExhausted):
        await graphql.execute("{ hello }")


# --- a real server that stops and comes back -------------------------------------------------


@contextlib.asynccontextmanager
async def until_stopped(port: int = 0) -> AsyncIterator[int]:
    async with serve(application, port) as server:
        yield server.port


async def test_the_client_outlives_a_server_restart_then_gives_up(subprotocol: str) -> None:
    recorder = Recorder()
    recorder.go_on.clear()
    stack = contextlib.AsyncExitStack()
    port = await stack.enter_async_context(until_stopped())
    graphql = cgt.GraphqlWsClient(
        cgt.GraphqlWsTransportAiohttp(f"ws://127.0.0.1:{port}/dropping/"),
        subprotocol=subprotocol,
        timeout=TIMEOUT,
        retry_attempts=3,
        retry_wait=recorder.retry_wait,
        on_state=recorder.on_state,
    )
    try:
        async with graphql, graphql.subscribe(ANYTHING, confirm=True, timeout=GUARD) as stream:
            await stream.wait_confirmed()
            await OnAnything.broadcast(payload={"value": 1})
            assert await next_value(stream) == 1

            await stack.aclose()  # uvicorn closes its sockets with 1012
            await graphql.wait_state(State.RECONNECTING, timeout=GUARD)
            change = next(c for c in recorder.changes if c.state is State.RECONNECTING)
            assert isinstance(change.error, cgt.GraphqlWsConnectionClosed)
            assert change.error.code == cgt.CloseCode.SERVICE_RESTART

            await stack.enter_async_context(until_stopped(port))  # back, on the same port
            recorder.go_on.set()
            await graphql.wait_state(State.CONNECTED, timeout=GUARD)
            await stream.wait_confirmed()
            await OnAnything.broadcast(payload={"value": 2})
            assert await next_value(stream) == 2

            await stack.aclose()  # gone for good: every attempt is refused
            with pytest.raises(cgt.GraphqlWsRetriesExhausted) as raised:
                await asyncio.wait_for(anext(stream), GUARD)
            assert raised.value.attempts == 3
            assert raised.value.code == cgt.CloseCode.ABNORMAL_CLOSURE
    finally:
        await stack.aclose()
        await graphql.finalize()
    assert recorder.waits == [0, 0, 1, 2]
    assert recorder.states[-1] is State.CLOSED
    assert graphql.connections_opened == 2


# --- lazy connections ---------------------------------------------------------------------


async def test_a_lazy_client_connects_for_an_operation_and_closes_after_it(
    connector: Connector, subprotocol: str
) -> None:
    recorder = Recorder()
    async with client(connector, "/dropping/", subprotocol, recorder, lazy=True) as graphql:
        assert graphql.state is State.IDLE
        assert graphql.connections_opened == 0
        assert DroppingConsumer.live == []

        assert (await graphql.execute("{ hello }")).data == {"hello": "Hello, world!"}
        assert graphql.connections_opened == 1
        await graphql.wait_state(State.IDLE, timeout=GUARD)
        await eventually(lambda: DroppingConsumer.live == [], GUARD)

        async with graphql.subscribe(ANYTHING, confirm=True, timeout=GUARD) as stream:
            await stream.wait_confirmed()
            current: State = graphql.state  # (not narrowed by the IDLE assertion above)
            assert current is State.CONNECTED
            await OnAnything.broadcast(payload={"value": 3})
            assert await next_value(stream) == 3
        await graphql.wait_state(State.IDLE, timeout=GUARD)
        assert graphql.connections_opened == 2
    assert recorder.states == [
        State.CONNECTING,
        State.CONNECTED,
        State.IDLE,
        State.CONNECTING,
        State.CONNECTED,
        State.IDLE,
        State.CLOSED,
    ]


async def test_a_lazy_client_keeps_the_socket_for_the_close_delay(
    connector: Connector, subprotocol: str
) -> None:
    recorder = Recorder()
    graphql = client(
        connector, "/dropping/", subprotocol, recorder, lazy=True, lazy_close_timeout=math.inf
    )
    async with graphql:
        for _ in range(3):
            assert (await graphql.execute("{ hello }")).data == {"hello": "Hello, world!"}
        assert graphql.state is State.CONNECTED
        assert graphql.connections_opened == 1
        assert len(DroppingConsumer.live) == 1
    assert recorder.states == [State.CONNECTING, State.CONNECTED, State.CLOSED]


async def test_a_lazy_client_that_gives_up_tries_again_for_the_next_operation(
    connector: Connector, subprotocol: str
) -> None:
    recorder = Recorder()
    graphql = client(connector, "/hooks/", subprotocol, recorder, lazy=True)
    async with graphql:
        for _ in range(2):
            with pytest.raises(cgt.GraphqlWsConnectionClosed) as raised:
                await graphql.execute("{ hello }")
            assert raised.value.code == cgt.CloseCode.FORBIDDEN
            assert graphql.state is State.IDLE
            assert not graphql.closed
    assert recorder.states == [
        State.CONNECTING,
        State.IDLE,
        State.CONNECTING,
        State.IDLE,
        State.CLOSED,
    ]
    assert recorder.waits == []


async def test_a_lazy_client_cannot_connect_and_init(connector: Connector) -> None:
    graphql = client(connector, "/dropping/", cgt.GRAPHQL_TRANSPORT_WS, Recorder(), lazy=True)
    with pytest.raises(RuntimeError, match="lazy client"):
        await graphql.connect_and_init()


# --- keep-alive ---------------------------------------------------------------------------


async def test_keep_alive_detects_a_server_that_stopped_answering(
    connector: Connector, subprotocol: str
) -> None:
    recorder = Recorder()
    graphql = client(
        connector,
        "/deaf/",
        subprotocol,
        recorder,
        retry_attempts=0,
        keep_alive=0.05,
        keep_alive_timeout=0.2,
    )
    async with graphql:
        closed = await graphql.wait_closed(timeout=GUARD)
    assert isinstance(closed, cgt.GraphqlWsConnectionClosed)
    assert closed.code == cgt.CloseCode.ABNORMAL_CLOSURE
    assert "the connection is dead" in closed.reason
    expected = "No pong" if subprotocol == cgt.GRAPHQL_TRANSPORT_WS else "Nothing from the server"
    assert expected in closed.reason


async def test_keep_alive_reconnects_a_dead_connection(connector: Connector) -> None:
    recorder = Recorder()
    graphql = client(
        connector,
        "/deaf/",
        cgt.GRAPHQL_TRANSPORT_WS,
        recorder,
        retry_attempts=1,
        keep_alive=0.05,
        keep_alive_timeout=0.2,
    )
    async with graphql:
        # Each new connection resets the retry count (as in the reference client).
        await eventually(lambda: graphql.connections_opened >= 2, GUARD)
    reconnecting = [c for c in recorder.changes if c.state is State.RECONNECTING]
    assert reconnecting
    assert isinstance(reconnecting[0].error, cgt.GraphqlWsConnectionClosed)
    assert "No pong" in reconnecting[0].error.reason
    assert recorder.waits[0] == 0


async def test_keep_alive_keeps_a_live_connection(connector: Connector) -> None:
    recorder = Recorder()
    graphql = client(
        connector,
        "/ping/",  # a server keep-alive every 0.05 s
        cgt.GRAPHQL_WS,
        recorder,
        keep_alive=1.0,
    )
    async with graphql:
        await eventually(lambda: graphql.keepalives_received >= 40, GUARD)
        assert graphql.state is State.CONNECTED
        assert graphql.connections_opened == 1
    assert recorder.waits == []


def test_keep_alive_must_be_positive(connector: Connector) -> None:
    with pytest.raises(ValueError, match="keep_alive"):
        cgt.GraphqlWsClient(connector.transport("/graphql/"), keep_alive=0)
    with pytest.raises(ValueError, match="retry_attempts"):
        cgt.GraphqlWsClient(connector.transport("/graphql/"), retry_attempts=-1)
