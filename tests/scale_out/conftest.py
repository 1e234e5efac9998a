"""Several server processes on one Redis: the processes, the Redis servers, the clients.

Servers are uvicorn processes serving :mod:`tests.scale_out.asgi`, started together
on 127.0.0.1 and free ephemeral ports, always stopped at the end; their channel layers
come from the environment (``CGT_TEST_CHANNEL_LAYERS``, read by
:mod:`tests.scale_out.settings`) with a key prefix of their own, so that no other test
or run sees their groups. A third process broadcasts: :mod:`tests.scale_out.broadcast`
or the test process itself, with the same channel layers.

:class:`RedisServerProcess` is a redis-server of the test's own, on its own port, for
the tests that stop and start Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
from channels.layers import channel_layers

import channels_graphql_typed as cgt
from tests.processes import HOST, free_port, stop_process, wait_until_listening
from tests.redis_support import LAYERS, REDIS_URL, RUN_PREFIX, require_redis

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

ROOT: Final = Path(__file__).resolve().parents[2]
SETTINGS: Final = "tests.scale_out.settings"
APPLICATION: Final = "tests.scale_out.asgi:application"
STARTUP_TIMEOUT: Final = 30.0
"""Seconds a server gets to import the application and accept connections."""
CONNECT_TIMEOUT: Final = 0.5
START_ATTEMPTS: Final = 3
"""Another process may take the free port between our probe and the server's bind."""
SHUTDOWN_TIMEOUT: Final = 5.0
"""Seconds a server gets to exit on SIGTERM: uvicorn waits for every connection's task."""
SCRIPT_TIMEOUT: Final = 60.0
CLIENT_TIMEOUT: Final = 10.0
"""Seconds any wait of a test client may take."""
RECOMMENDED_SOCKET_TIMEOUT: Final = 10
"""redis-py's socket_timeout for the core layer, longer than its 5 s blocking read."""

CHAT: Final = (
    "subscription Chat($chatroom: String!) { onNewChatMessage(chatroom: $chatroom) { text } }"
)


def layer_id(backend: str) -> str:
    return backend.rsplit(".", 1)[-1]


def is_core(backend: str) -> bool:
    return backend == "channels_redis.core.RedisChannelLayer"


def new_prefix(backend: str) -> str:
    """A key prefix under the run's, for one group of processes."""
    layer = "core" if is_core(backend) else "pubsub"
    return f"{RUN_PREFIX}-{layer}-{uuid.uuid4().hex[:6]}"


def new_room() -> str:
    return f"room-{uuid.uuid4().hex[:12]}"


def channel_layers_for(
    backend: str, url: str, prefix: str, host: dict[str, Any] | None = None, **config: Any
) -> dict[str, dict[str, Any]]:
    """``CHANNEL_LAYERS`` with one Redis host (``host``: redis-py connection options)."""
    return {
        "default": {
            "BACKEND": backend,
            "CONFIG": {"hosts": [{"address": url, **(host or {})}], "prefix": prefix, **config},
        }
    }


def process_environment(layers: dict[str, dict[str, Any]]) -> dict[str, str]:
    environment = dict(os.environ)
    environment["DJANGO_SETTINGS_MODULE"] = SETTINGS
    environment["CGT_TEST_CHANNEL_LAYERS"] = json.dumps(layers)
    environment["PYTHONUNBUFFERED"] = "1"
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), environment.get("PYTHONPATH")])
    )
    return environment


# --- server processes -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ServerProcess:
    """One uvicorn process listening on ``HOST:port``; its output goes to ``log_path``."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/graphql/"

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def count(self, text: str) -> int:
        """How many lines of the output contain ``text``."""
        return sum(text in line for line in self.output().splitlines())

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"server exited with {self.process.returncode}:\n{self.output()}")


def uvicorn_command(port: int) -> list[str]:
    # Channels' ProtocolTypeRouter has no lifespan support: turn it off.
    return [
        sys.executable,
        "-m",
        "uvicorn",
        APPLICATION,
        "--host",
        HOST,
        "--port",
        str(port),
        "--lifespan",
        "off",
    ]


def _start_server(
    command: Callable[[int], list[str]],
    number: int,
    environment: dict[str, str],
    log_dir: Path,
    attempt: int,
) -> ServerProcess:
    port = free_port()
    log_path = log_dir / f"server-{number}-{attempt}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command(port),
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(port, process, log_path)


@contextlib.contextmanager
def running_servers(
    count: int,
    environment: dict[str, str],
    log_dir: Path,
    *,
    command: Callable[[int], list[str]] = uvicorn_command,
) -> Iterator[list[ServerProcess]]:
    """Start ``count`` servers at once (``command(port)`` runs one); stop them all on the
    way out, whatever happens."""
    servers: list[ServerProcess] = []
    try:
        for number in range(count):
            servers.append(_start_server(command, number, environment, log_dir, 1))
        for number in range(count):
            for attempt in range(2, START_ATTEMPTS + 2):
                server = servers[number]
                if wait_until_listening(
                    server.process,
                    server.port,
                    timeout=STARTUP_TIMEOUT,
                    connect_timeout=CONNECT_TIMEOUT,
                ):
                    break
                stop_process(server.process)
                output = server.output()
                if "address already in use" not in output.lower() or attempt > START_ATTEMPTS:
                    pytest.fail(f"server {number} did not start:\n{output}")
                servers[number] = _start_server(command, number, environment, log_dir, attempt)
        yield servers
    finally:
        lingering = []
        with contextlib.ExitStack() as cleanup:
            for server in servers:
                cleanup.callback(stop_process, server.process)
                server.process.terminate()
            for server in servers:
                try:
                    server.process.wait(timeout=SHUTDOWN_TIMEOUT)
                except subprocess.TimeoutExpired:
                    lingering.append(server)
    # A server that does not exit on SIGTERM waits for a task that did not end: a
    # connection's, or the fan-out's.
    assert not lingering, [server.output() for server in lingering]


# --- a Redis of the test's own --------------------------------------------------------------


class RedisServerProcess:
    """A redis-server on a free port of 127.0.0.1: ``stop()`` and ``start()`` it at will
    (same port: a restart); the fixture always stops it. Without persistence, unless
    ``data_dir`` is given: then it keeps an append-only file there, which a restart
    loads (``stop()`` terminates it, and Redis writes the file out before it exits)."""

    def __init__(self, log_dir: Path, *options: str, data_dir: Path | None = None) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            message = "redis-server not found on PATH (the Redis restart tests run their own)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        self.executable = executable
        self.options = options
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = log_dir / f"redis-{self.port}.log"
        # Where whatever Redis writes goes (a replica's or a master's RDB for a full
        # sync, even without persistence): never the checkout.
        self.work_dir = data_dir or log_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        command = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no" if self.data_dir is None else "yes",
            "--dir",
            str(self.work_dir),
            "--daemonize",
            "no",
            *self.options,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"redis-server did not answer on port {self.port}:\n{self.output()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), 0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


class SentinelProcess:
    """A Redis Sentinel on a free port of 127.0.0.1 monitoring one master as
    ``master_name``, with a quorum of 1 (it alone decides a failover); its config file
    (which Sentinel rewrites) is in ``config_dir``. The fixture always stops it."""

    def __init__(
        self,
        config_dir: Path,
        master: RedisServerProcess,
        master_name: str = "main",
        *,
        down_after_ms: int = 1000,
    ) -> None:
        self.executable = master.executable
        self.master_name = master_name
        self.port = free_port()
        self.config_path = config_dir / f"sentinel-{self.port}.conf"
        self.config_path.write_text(
            f"port {self.port}\n"
            f"bind {HOST}\n"
            f"dir {config_dir}\n"
            f"sentinel monitor {master_name} {HOST} {master.port} 1\n"
            f"sentinel down-after-milliseconds {master_name} {down_after_ms}\n"
            f"sentinel failover-timeout {master_name} 10000\n"
            f"sentinel parallel-syncs {master_name} 1\n",
            encoding="utf-8",
        )
        self.log_path = config_dir / f"sentinel-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def host(self, **options: Any) -> dict[str, Any]:
        """The channels-redis host entry of this Sentinel's master."""
        return {"sentinels": [self.address], "master_name": self.master_name, **options}

    def start(self, timeout: float = 10.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.executable, str(self.config_path), "--sentinel"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(self.address, 0.5) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"redis-sentinel did not answer on port {self.port}:\n{self.output()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


# --- groups of processes --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Cluster:
    """Server processes sharing one Redis and one key prefix."""

    backend: str
    prefix: str
    redis_url: str
    channel_layers: dict[str, dict[str, Any]]
    environment: dict[str, str]
    servers: list[ServerProcess]

    @property
    def core(self) -> bool:
        return is_core(self.backend)

    async def run_broadcast_script(
        self, room: str, *texts: str, unsubscribe: bool = False
    ) -> tuple[int, str]:
        """Run :mod:`tests.scale_out.broadcast`; return its exit code and output."""
        arguments = [room, *texts, *(["--unsubscribe"] if unsubscribe else [])]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.scale_out.broadcast",
            *arguments,
            cwd=ROOT,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(SCRIPT_TIMEOUT):
                output, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode is not None
        return process.returncode, output.decode(errors="replace")


@pytest.fixture(scope="module", params=LAYERS, ids=layer_id)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Two servers on the suite's Redis (``REDIS_URL``), configured as the README says."""
    require_redis()
    backend: str = request.param
    prefix = new_prefix(backend)
    layers = channel_layers_for(
        backend, REDIS_URL, prefix, {"socket_timeout": RECOMMENDED_SOCKET_TIMEOUT}
    )
    environment = process_environment(layers)
    with running_servers(2, environment, tmp_path_factory.mktemp("servers")) as servers:
        yield Cluster(backend, prefix, REDIS_URL, layers, environment, servers)


@pytest.fixture
def cluster_layer(cluster: Cluster, settings: Any) -> Iterator[Cluster]:
    """``cluster``, with this test process on the same channel layers: the test
    process's broadcasts reach the servers' subscribers."""
    with same_channel_layers(cluster, settings):
        yield cluster


@contextlib.contextmanager
def same_channel_layers(cluster: Cluster, settings: Any) -> Iterator[None]:
    settings.CHANNEL_LAYERS = cluster.channel_layers
    channel_layers.backends.clear()
    try:
        yield
    finally:
        channel_layers.backends.clear()


@dataclasses.dataclass(frozen=True, slots=True)
class OwnRedisCluster(Cluster):
    """A cluster on a Redis of its own, which the test may stop and start."""

    redis: RedisServerProcess


IDLE_CLIENT_TIMEOUT: Final = 1
"""Redis' ``timeout`` on the own Redis: it closes connections idle this many seconds."""
SHORT_SOCKET_TIMEOUT: Final = 2
"""redis-py's ``socket_timeout`` on the own Redis: shorter than the core layer's 5 s
blocking read, as redis-py's default (5 s) effectively is."""


@pytest.fixture(scope="module", params=LAYERS, ids=layer_id)
def own_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OwnRedisCluster]:
    """Two servers on a redis-server of their own, with short timeouts on both sides:
    redis-py gives up reading after 2 s, Redis closes connections idle for 1 s."""
    backend: str = request.param
    log_dir = tmp_path_factory.mktemp("own-redis")
    redis = RedisServerProcess(log_dir, "--timeout", str(IDLE_CLIENT_TIMEOUT))
    redis.start()
    try:
        prefix = new_prefix(backend)
        layers = channel_layers_for(
            backend, redis.url, prefix, {"socket_timeout": SHORT_SOCKET_TIMEOUT}
        )
        environment = process_environment(layers)
        with running_servers(2, environment, log_dir) as servers:
            yield OwnRedisCluster(backend, prefix, redis.url, layers, environment, servers, redis)
    finally:
        redis.stop()


@pytest.fixture
def own_cluster_layer(own_cluster: OwnRedisCluster, settings: Any) -> Iterator[OwnRedisCluster]:
    """``own_cluster``, with this test process on the same channel layers."""
    with same_channel_layers(own_cluster, settings):
        yield own_cluster


# --- clients --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def connected(server: ServerProcess) -> AsyncIterator[cgt.GraphqlWsClient]:
    server.check_alive()
    transport = cgt.GraphqlWsTransportAiohttp(server.ws_url)
    async with cgt.GraphqlWsClient(transport, timeout=CLIENT_TIMEOUT) as client:
        yield client


async def subscribe(
    stack: contextlib.AsyncExitStack, client: cgt.GraphqlWsClient, room: str
) -> cgt.GraphqlWsSubscriptionStream:
    """A chat subscription to ``room``, in all its groups when this returns (its
    confirmation came); stopped when ``stack`` closes."""
    stream = await stack.enter_async_context(client.subscribe(CHAT, {"chatroom": room}))
    confirmation = await anext(stream)
    assert confirmation.errors is None, confirmation
    assert confirmation.data is None, confirmation
    return stream


async def subscribers(
    stack: contextlib.AsyncExitStack,
    servers: Sequence[ServerProcess],
    room: str,
    *,
    sockets: int,
    per_socket: int,
) -> list[cgt.GraphqlWsSubscriptionStream]:
    """``sockets`` connections to each server with ``per_socket`` subscriptions each."""
    streams = []
    for server in servers:
        for _ in range(sockets):
            client = await stack.enter_async_context(connected(server))
            streams += await asyncio.gather(
                *(subscribe(stack, client, room) for _ in range(per_socket))
            )
    return streams


async def next_text(
    stream: cgt.GraphqlWsSubscriptionStream, timeout: float = CLIENT_TIMEOUT
) -> str:
    """The next notification's text; :class:`cgt.GraphqlWsTimeoutError` if none comes
    within ``timeout`` seconds (the subscription stays active)."""
    stream.timeout = timeout
    result = await anext(stream)
    assert result.errors is None, result.errors
    assert result.data is not None
    text: str = result.data["onNewChatMessage"]["text"]
    return text


async def texts_until_complete(stream: cgt.GraphqlWsSubscriptionStream) -> list[str]:
    """Every notification until the server completes the subscription."""
    texts = []
    async for result in stream:
        assert result.errors is None, result.errors
        assert result.data is not None
        texts.append(result.data["onNewChatMessage"]["text"])
    return texts
