"""Resumable subscriptions end to end: the library's client against a uvicorn process on
Redis (both channels-redis layers), broadcasts from this process. A subscriber's
connection drops -- its transport is cut, or the server is killed (SIGKILL) or stopped
(SIGTERM) and started again -- broadcasts go on meanwhile, and after the reconnect every
subscriber has every event exactly once, in order.

No assertion is timed: the reconnections wait for the test's go-ahead; timeouts are hang
guards only.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from typing import TYPE_CHECKING, Any, Final

import pytest
from channels.layers import channel_layers

import channels_graphql_typed as cgt
from tests.client.cuttable_transport import CuttableTransport
from tests.processes import HOST, stop_process, wait_until_listening
from tests.redis_support import LAYERS, REDIS_URL, require_redis
from tests.replay_subscriptions import OnCounter
from tests.scale_out.conftest import (
    APPLICATION,
    CLIENT_TIMEOUT,
    CONNECT_TIMEOUT,
    RECOMMENDED_SOCKET_TIMEOUT,
    ROOT,
    STARTUP_TIMEOUT,
    ServerProcess,
    channel_layers_for,
    layer_id,
    new_prefix,
    new_room,
    process_environment,
    running_servers,
    uvicorn_command,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow

COUNTER: Final = "subscription($room: String!) { onCounter(room: $room) { number } }"
REPLAY_APPLICATION: Final = "tests.scale_out.replay_asgi:application"
SUBSCRIBERS: Final = 5
GUARD: Final = 30.0
"""Seconds after which a wait is taken for a hang."""


def replay_command(port: int) -> list[str]:
    return [REPLAY_APPLICATION if part == APPLICATION else part for part in uvicorn_command(port)]


class ReplayServer:
    """One uvicorn process serving the resumable subscriptions, which the test may kill
    and start again on the same port."""

    def __init__(self, server: ServerProcess, environment: dict[str, str], log_dir: Path) -> None:
        self.server = server
        self.environment = environment
        self.log_dir = log_dir
        self.restarted: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return self.server.ws_url

    def stop_with(self, signal_number: int) -> None:
        process = self.restarted[-1] if self.restarted else self.server.process
        process.send_signal(signal_number)
        process.wait(timeout=GUARD)

    def start_again(self) -> None:
        log = (self.log_dir / f"restarted-{len(self.restarted)}.log").open("wb")
        with log:
            process = subprocess.Popen(
                replay_command(self.server.port),
                cwd=ROOT,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.restarted.append(process)
        assert wait_until_listening(
            process,
            self.server.port,
            timeout=STARTUP_TIMEOUT,
            connect_timeout=CONNECT_TIMEOUT,
            host=HOST,
        ), "the server did not start again"

    def stop(self) -> None:
        for process in self.restarted:
            stop_process(process)


@pytest.fixture(params=LAYERS, ids=layer_id)
def replay_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, settings: Any
) -> Iterator[ReplayServer]:
    """A server on the suite's Redis, with this process on the same channel layers."""
    require_redis()
    layers = channel_layers_for(
        request.param,
        REDIS_URL,
        new_prefix(request.param),
        {"socket_timeout": RECOMMENDED_SOCKET_TIMEOUT},
    )
    environment = process_environment(layers)
    log_dir = tmp_path_factory.mktemp("replay")
    settings.CHANNEL_LAYERS = layers
    channel_layers.backends.clear()
    try:
        with running_servers(1, environment, log_dir, command=replay_command) as servers:
            server = ReplayServer(servers[0], environment, log_dir)
            try:
                yield server
            finally:
                server.stop()
    finally:
        channel_layers.backends.clear()


class Gate:
    """The clients' retry wait: reconnections happen when the test opens it."""

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def wait(self, retry: int) -> None:
        await self.open.wait()
        await asyncio.sleep(0.05 * retry)  # a server starting again refuses a moment


@contextlib.asynccontextmanager
async def subscribers(
    url: str, room: str, gate: Gate
) -> AsyncIterator[list[tuple[CuttableTransport, cgt.GraphqlWsSubscriptionStream]]]:
    async with contextlib.AsyncExitStack() as stack:
        subscribed = []
        for _ in range(SUBSCRIBERS):
            transport = CuttableTransport(cgt.GraphqlWsTransportAiohttp(url))
            client = cgt.GraphqlWsClient(
                transport, timeout=CLIENT_TIMEOUT, retry_attempts=50, retry_wait=gate.wait
            )
            await stack.enter_async_context(client)
            stream = client.subscribe(COUNTER, {"room": room}, confirm=True, timeout=GUARD)
            await stack.enter_async_context(stream)
            await stream.wait_confirmed()
            subscribed.append((transport, stream))
        yield subscribed


async def numbers(stream: cgt.GraphqlWsSubscriptionStream, count: int) -> list[int]:
    received = []
    for _ in range(count):
        result = await anext(stream)
        assert result.errors is None, result
        assert result.data is not None
        received.append(result.data["onCounter"]["number"])
    return received


async def broadcast(room: str, numbers: range) -> None:
    for number in numbers:
        await OnCounter.broadcast(payload=number, group=room)


async def test_a_cut_connection_resumes_with_every_event_once_in_order(
    replay_server: ReplayServer,
) -> None:
    room, gate = new_room(), Gate()
    async with subscribers(replay_server.url, room, gate) as subscribed:
        await broadcast(room, range(50))
        for transport, _ in subscribed:
            transport.cut()
        await broadcast(room, range(50, 250))  # while every subscriber is away
        gate.open.set()
        # And while they reconnect and resume.
        await broadcast(room, range(250, 300))
        for _, stream in subscribed:
            assert await numbers(stream, 300) == list(range(300))
        await broadcast(room, range(300, 301))
        for _, stream in subscribed:
            assert await numbers(stream, 1) == [300]  # nothing twice before it
            assert stream.resubscriptions == 1


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
async def test_a_server_stopped_and_started_again_resumes_every_subscriber(
    replay_server: ReplayServer, signal_number: int
) -> None:
    room, gate = new_room(), Gate()
    async with subscribers(replay_server.url, room, gate) as subscribed:
        await broadcast(room, range(20))
        for _, stream in subscribed:
            assert await numbers(stream, 20) == list(range(20))
        # Killed: the sockets drop; stopped: uvicorn closes them (1012) and exits.
        replay_server.stop_with(signal_number)
        await broadcast(room, range(20, 120))  # nobody subscribed anywhere
        replay_server.start_again()
        gate.open.set()
        await broadcast(room, range(120, 150))
        for _, stream in subscribed:
            assert await numbers(stream, 130) == list(range(20, 150))
        await broadcast(room, range(150, 151))
        for _, stream in subscribed:
            assert await numbers(stream, 1) == [150]
