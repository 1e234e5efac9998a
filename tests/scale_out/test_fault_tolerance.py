"""Fault tests over real sockets: two uvicorn processes on Redis behind a balancer (a
TCP proxy in this process that sends each new connection to a live server in turn), 20
subscribers of the library's client spread over both, half of a resumable class and half
of a plain one, 1,000 broadcasts of each class at 200 a second from this process. During
them one server is killed (SIGKILL) and later started again on its port, then the other
is stopped (SIGTERM: it drains, its sockets close with 1012). The clients reconnect
through the balancer to whichever server is up. Then the same run with a Redis restart
instead (Redis keeping an append-only file, its group memberships lost): the sockets
stay open and each process joins its groups again.

Every resumable subscriber ends with all 1,000 events exactly once, in order. Every plain
subscriber reconnects and gets, in order and once, what was broadcast while it was
connected -- the last stretch of the run in full -- and its client logs that it
subscribed again without an id to resume from (what it missed meanwhile); through the
Redis restart, each server logs the window in which its plain subscribers missed
broadcasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Final, Protocol

import pytest
from channels.layers import channel_layers

import channels_graphql_typed as cgt
from tests.processes import HOST, free_port, stop_process, wait_until_listening
from tests.redis_support import REDIS_URL, require_redis
from tests.replay_subscriptions import OnCounter, OnPlainTick
from tests.scale_out.conftest import (
    CONNECT_TIMEOUT,
    RECOMMENDED_SOCKET_TIMEOUT,
    ROOT,
    STARTUP_TIMEOUT,
    channel_layers_for,
    new_prefix,
    new_room,
    process_environment,
)
from tests.scale_out.test_replay_redis_restart import (
    PersistentCluster,
    last_kept,
    stop_without_memberships,
)
from tests.scale_out.test_replay_redis_restart import (
    persistent_cluster as persistent_cluster,  # the fixture
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence
    from pathlib import Path

pytestmark = pytest.mark.slow

CORE: Final = "channels_redis.core.RedisChannelLayer"
APPLICATION: Final = "tests.scale_out.fault_asgi:application"
COUNTER: Final = "subscription($room: String!) { onCounter(room: $room) { number } }"
PLAIN: Final = "subscription { onPlainTick { number } }"
EVENTS: Final = 1000
RATE: Final = 200.0
SUBSCRIBERS_PER_CLASS: Final = 10
KILL_AT: Final = 200
RESTART_AT: Final = 400
TERMINATE_AT: Final = 600
SETTLED_FROM: Final = 800
"""From this event on no server is down: every plain subscriber gets each one."""
GUARD: Final = 60.0
"""Seconds after which a wait is taken for a hang."""


class Server:
    """One uvicorn process of the fault application on a port of its own, which the test
    kills, starts again on the same port, or stops."""

    def __init__(self, number: int, environment: dict[str, str], log_dir: Path) -> None:
        self.number = number
        self.port = free_port()
        self.environment = environment
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        log_path = self.log_dir / f"server-{self.number}-{len(self.processes)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "uvicorn", APPLICATION,
                    "--host", HOST, "--port", str(self.port), "--lifespan", "on",
                ],
                cwd=ROOT,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.processes.append(process)
        assert wait_until_listening(
            process, self.port, timeout=STARTUP_TIMEOUT, connect_timeout=CONNECT_TIMEOUT, host=HOST
        ), log_path.read_text()

    def stop_with(self, signal_number: int) -> int:
        process = self.processes[-1]
        process.send_signal(signal_number)
        return process.wait(timeout=GUARD)

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)


class Listening(Protocol):
    @property
    def port(self) -> int: ...


class Balancer:
    """A TCP proxy: each connection goes to the next server that accepts it."""

    def __init__(self, servers: Sequence[Listening]) -> None:
        self.servers = servers
        self.turn = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Balancer:
        self.server = await asyncio.start_server(self._handle, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/graphql/"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            for _ in range(len(self.servers)):
                server = self.servers[self.turn % len(self.servers)]
                self.turn += 1
                try:
                    upstream = await asyncio.open_connection(HOST, server.port)
                except OSError:
                    continue
                await self._pipe(reader, writer, *upstream)
                return
        except asyncio.CancelledError:
            pass  # the balancer closes: its connections end with it
        finally:
            writer.close()
            self.tasks.discard(task)

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:
        async def copy(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    target.write(data)
                    await target.drain()
            with contextlib.suppress(OSError):
                target.close()

        try:
            await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer))
        finally:
            upstream_writer.close()


@pytest.fixture
def servers(tmp_path: Path, settings: Any) -> Iterator[list[Server]]:
    require_redis()
    layers = channel_layers_for(
        CORE, REDIS_URL, new_prefix(CORE), {"socket_timeout": RECOMMENDED_SOCKET_TIMEOUT}
    )
    settings.CHANNEL_LAYERS = layers
    channel_layers.backends.clear()
    environment = process_environment(layers)
    started = [Server(number, environment, tmp_path) for number in range(2)]
    try:
        for server in started:
            server.start()
        yield started
    finally:
        for server in started:
            server.stop()
        channel_layers.backends.clear()


async def short_wait(retry: int) -> None:
    await asyncio.sleep(min(0.1 * (retry + 1), 0.5))


@contextlib.asynccontextmanager
async def subscribed(
    url: str, room: str
) -> AsyncIterator[
    tuple[list[cgt.GraphqlWsSubscriptionStream], list[cgt.GraphqlWsSubscriptionStream]]
]:
    async with contextlib.AsyncExitStack() as stack:
        resumable, plain = [], []
        for number in range(2 * SUBSCRIBERS_PER_CLASS):
            client = cgt.GraphqlWsClient(
                cgt.GraphqlWsTransportAiohttp(url),
                timeout=GUARD,
                retry_attempts=1000,
                retry_wait=short_wait,
            )
            await stack.enter_async_context(client)
            # The balancer sends connection n to server n % 2: each gets both classes.
            if (number // 2) % 2:
                stream = client.subscribe(PLAIN, confirm=True, timeout=GUARD)
                plain.append(stream)
            else:
                stream = client.subscribe(COUNTER, {"room": room}, confirm=True, timeout=GUARD)
                resumable.append(stream)
            await stack.enter_async_context(stream)
            await stream.wait_confirmed()
        yield resumable, plain


async def broadcast_with_faults(room: str, servers: list[Server], faults: list[str]) -> None:
    first, second = servers
    for number in range(EVENTS):
        if number == KILL_AT:
            first.stop_with(signal.SIGKILL)
            faults.append("killed")
        elif number == RESTART_AT:
            await asyncio.to_thread(first.start)
            faults.append("restarted")
        elif number == TERMINATE_AT:
            code = await asyncio.to_thread(second.stop_with, signal.SIGTERM)
            # uvicorn ends by raising the signal again once it has shut down.
            faults.append(f"terminated: {'ok' if code in (0, -signal.SIGTERM) else code}")
        await OnCounter.broadcast(payload=number, group=room)
        await OnPlainTick.broadcast(payload=number)
        await asyncio.sleep(1 / RATE)


async def received(stream: cgt.GraphqlWsSubscriptionStream, field: str, last: int) -> list[int]:
    """The numbers ``stream`` gets until ``last``."""
    numbers: list[int] = []
    while not numbers or numbers[-1] != last:
        result = await anext(stream)
        assert result.errors is None, result
        assert result.data is not None
        numbers.append(result.data[field]["number"])
    return numbers


async def test_subscribers_outlive_a_killed_and_a_stopped_server(
    servers: list[Server], caplog: pytest.LogCaptureFixture
) -> None:
    room = new_room()
    caplog.set_level(logging.WARNING, "channels_graphql_typed")
    faults: list[str] = []
    async with Balancer(servers) as balancer, subscribed(balancer.url, room) as (resumable, plain):
        await broadcast_with_faults(room, servers, faults)
        assert faults == ["killed", "restarted", "terminated: ok"]
        for stream in resumable:
            # Every event exactly once, in order, through both faults.
            assert await received(stream, "onCounter", EVENTS - 1) == list(range(EVENTS))
            assert stream.resubscriptions >= 1
        for stream in plain:
            numbers = await received(stream, "onPlainTick", EVENTS - 1)
            # Once each and in order, what came while it was connected, and everything
            # once no server was down any more.
            assert numbers == sorted(set(numbers))
            assert set(range(SETTLED_FROM, EVENTS)) <= set(numbers)
            assert stream.resubscriptions >= 1
            if len(numbers) < EVENTS:
                # It missed some, and its client said so when it subscribed again.
                assert any(
                    "without an event id to resume from" in record.getMessage()
                    for record in caplog.records
                )


REDIS_DOWN_AT: Final = 200
REDIS_DOWN_FOR: Final = 0.5
LOSS_LOGGED: Final = "subscriptions of classes that are not resumable missed"


async def broadcast_through_a_redis_restart(cluster: PersistentCluster, room: str) -> None:
    """Both classes at ``RATE``, Redis stopped (without its memberships) at
    ``REDIS_DOWN_AT`` and started again. A resumable broadcast that raises is sent again
    unless its append to the history went through; a plain one is lost (it has no
    history to tell whether it went out)."""
    for number in range(EVENTS):
        if number == REDIS_DOWN_AT:
            await stop_without_memberships(cluster)
            await asyncio.sleep(REDIS_DOWN_FOR)
            await asyncio.to_thread(cluster.redis.start)
        deadline = asyncio.get_running_loop().time() + GUARD
        while True:
            try:
                await OnCounter.broadcast(payload=number, group=room)
                break
            except Exception:
                assert asyncio.get_running_loop().time() < deadline, "Redis did not come back"
                await asyncio.sleep(0.05)
                with contextlib.suppress(Exception):
                    if await last_kept(cluster) == number:
                        break
        with contextlib.suppress(Exception):
            await OnPlainTick.broadcast(payload=number)
        await asyncio.sleep(1 / RATE)


async def test_subscribers_outlive_a_redis_restart(persistent_cluster: PersistentCluster) -> None:
    cluster, room = persistent_cluster, new_room()
    async with (
        Balancer(cluster.servers) as balancer,
        subscribed(balancer.url, room) as (resumable, plain),
    ):
        await broadcast_through_a_redis_restart(cluster, room)
        for stream in resumable:
            assert await received(stream, "onCounter", EVENTS - 1) == list(range(EVENTS))
            assert stream.resubscriptions == 0  # caught up on its open connection
        for stream in plain:
            numbers = await received(stream, "onPlainTick", EVENTS - 1)
            assert numbers == sorted(set(numbers))
            assert set(range(SETTLED_FROM, EVENTS)) <= set(numbers)
            assert stream.resubscriptions == 0
    for server in cluster.servers:
        server.check_alive()
        # What the plain subscribers missed, with its window.
        assert server.count(LOSS_LOGGED) == 1, server.output()
