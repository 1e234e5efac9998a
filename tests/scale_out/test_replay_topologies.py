"""Resumable subscriptions on Redis deployments beyond one node, on both channels-redis
layers: two Redis servers as shards of the layer, and one master behind a Sentinel
(then a failover to its replica). Two uvicorn processes serve the resumable
subscriptions; this process broadcasts, on the same channel layer.

A subscriber leaves one process, events go on, and it resumes from its last id on the
other process: it gets the missed events, then live ones, each once, in order. That
holds only if every process finds the class's history on the same host: on the sharded
layer, the history is on a host other than the first, and the test checks that it is
there and only there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import TYPE_CHECKING, Any, Final

import pytest
import redis.asyncio
import redis.asyncio.sentinel
from channels.layers import channel_layers

import channels_graphql_typed as cgt
from channels_graphql_typed._replay import history_host, stream_key
from channels_graphql_typed._serialization import deserialize_payload
from tests.client.cuttable_transport import CuttableTransport
from tests.redis_support import LAYERS
from tests.replay_subscriptions import OnCounter
from tests.scale_out.conftest import (
    CLIENT_TIMEOUT,
    RECOMMENDED_SOCKET_TIMEOUT,
    RedisServerProcess,
    SentinelProcess,
    ServerProcess,
    layer_id,
    new_prefix,
    new_room,
    process_environment,
    running_servers,
)
from tests.scale_out.test_replay_end_to_end import COUNTER, Gate, numbers, replay_command

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow

GUARD: Final = 30.0
"""Seconds after which a wait is taken for a hang."""
STREAM: Final = stream_key(OnCounter.group_namespace)


@dataclasses.dataclass
class Deployment:
    """Two replay servers on one channel layer, and the Redis servers behind it."""

    prefix: str
    servers: list[ServerProcess]
    redis_servers: list[RedisServerProcess]
    sentinel: SentinelProcess | None = None

    @property
    def history_key(self) -> str:
        return f"{self.prefix}:{STREAM}"


@contextlib.contextmanager
def deployment(
    backend: str,
    hosts: list[dict[str, Any]],
    redis_servers: list[RedisServerProcess],
    log_dir: Path,
    settings: Any,
    sentinel: SentinelProcess | None = None,
) -> Iterator[Deployment]:
    prefix = new_prefix(backend)
    layers = {"default": {"BACKEND": backend, "CONFIG": {"hosts": hosts, "prefix": prefix}}}
    settings.CHANNEL_LAYERS = layers
    channel_layers.backends.clear()
    try:
        environment = process_environment(layers)
        with running_servers(2, environment, log_dir, command=replay_command) as servers:
            yield Deployment(prefix, servers, redis_servers, sentinel)
    finally:
        channel_layers.backends.clear()


SHARDS: Final = next(count for count in (2, 3, 4) if history_host(STREAM, count) != 0)
"""As many shards as it takes for the history of :class:`OnCounter` not to be on the
first host (its name puts it on the first of two, and the third of three)."""


@pytest.fixture(params=LAYERS, ids=layer_id)
def sharded(request: pytest.FixtureRequest, tmp_path: Path, settings: Any) -> Iterator[Deployment]:
    """Redis servers as the layer's hosts (``SHARDS`` of them)."""
    shards = [RedisServerProcess(tmp_path) for _ in range(SHARDS)]
    with contextlib.ExitStack() as stack:
        for shard in shards:
            stack.callback(shard.stop)
            shard.start()
        hosts = [
            {"address": shard.url, "socket_timeout": RECOMMENDED_SOCKET_TIMEOUT} for shard in shards
        ]
        with deployment(request.param, hosts, shards, tmp_path, settings) as sharded:
            yield sharded


@pytest.fixture(params=LAYERS, ids=layer_id)
def behind_sentinel(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Any
) -> Iterator[Deployment]:
    """One Redis master behind one Sentinel, the layer's only host."""
    master = RedisServerProcess(tmp_path)
    with contextlib.ExitStack() as stack:
        stack.callback(master.stop)
        master.start()
        sentinel = SentinelProcess(tmp_path, master)
        stack.callback(sentinel.stop)
        sentinel.start()
        hosts = [sentinel.host(socket_timeout=RECOMMENDED_SOCKET_TIMEOUT)]
        with deployment(request.param, hosts, [master], tmp_path, settings, sentinel) as behind:
            yield behind


@pytest.fixture(params=LAYERS, ids=layer_id)
def with_replica(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Any
) -> Iterator[Deployment]:
    """A master and its replica behind one Sentinel (``redis_servers``: master first)."""
    master = RedisServerProcess(tmp_path)
    with contextlib.ExitStack() as stack:
        stack.callback(master.stop)
        master.start()
        replica = RedisServerProcess(tmp_path, "--replicaof", "127.0.0.1", str(master.port))
        stack.callback(replica.stop)
        replica.start()
        sentinel = SentinelProcess(tmp_path, master)
        stack.callback(sentinel.stop)
        sentinel.start()
        hosts = [sentinel.host(socket_timeout=RECOMMENDED_SOCKET_TIMEOUT)]
        servers = [master, replica]
        with deployment(request.param, hosts, servers, tmp_path, settings, sentinel) as replicated:
            yield replicated


@pytest.fixture
async def sentinel_clients_closed(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Closes, at the end of the test, the clients of the Sentinels that this process
    opened: channels-redis' layers close their Sentinel pools, not the clients that
    each pool's ``Sentinel`` holds (the history closes its own)."""
    managers: list[redis.asyncio.sentinel.Sentinel] = []
    original = redis.asyncio.sentinel.Sentinel.__init__

    def recording(self: redis.asyncio.sentinel.Sentinel, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        managers.append(self)

    monkeypatch.setattr(redis.asyncio.sentinel.Sentinel, "__init__", recording)
    yield
    for manager in managers:
        for client in manager.sentinels:
            await client.aclose()


@contextlib.asynccontextmanager
async def redis_client(url: str) -> Any:
    client = redis.asyncio.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def subscribed(
    stack: contextlib.AsyncExitStack,
    server: ServerProcess,
    room: str,
    *,
    after: str | None = None,
    gate: Gate | None = None,
) -> tuple[CuttableTransport, cgt.GraphqlWsSubscriptionStream]:
    """A subscription to ``room`` on ``server``, in its groups when this returns;
    resuming after ``after``; reconnecting when ``gate`` opens if its transport is cut."""
    transport = CuttableTransport(cgt.GraphqlWsTransportAiohttp(server.ws_url))
    retry: dict[str, Any] = {} if gate is None else {"retry_attempts": 50, "retry_wait": gate.wait}
    client = cgt.GraphqlWsClient(transport, timeout=CLIENT_TIMEOUT, **retry)
    await stack.enter_async_context(client)
    extensions = None if after is None else {cgt.RESUME_AFTER_EXTENSION: after}
    stream = client.subscribe(
        COUNTER, {"room": room}, extensions=extensions, confirm=True, timeout=GUARD
    )
    await stack.enter_async_context(stream)
    await stream.wait_confirmed()
    return transport, stream


async def broadcast(room: str, events: range) -> None:
    for number in events:
        await OnCounter.broadcast(payload=number, group=room)


async def resume_on_the_other_process(servers: list[ServerProcess], room: str) -> None:
    """A subscriber leaves the first process; it resumes on the second from its last id,
    and gets the events it missed, then live ones, each once, in order. A live
    subscriber on the second process gets every event once, in order."""
    async with contextlib.AsyncExitStack() as stack:
        _, live = await subscribed(stack, servers[1], room)
        async with contextlib.AsyncExitStack() as leaving_stack:
            _, leaving = await subscribed(leaving_stack, servers[0], room)
            await broadcast(room, range(30))
            assert await numbers(leaving, 30) == list(range(30))
            last_id = leaving.last_event_id
        assert last_id is not None
        await broadcast(room, range(30, 80))  # while it is away
        _, resumed = await subscribed(stack, servers[1], room, after=last_id)
        await broadcast(room, range(80, 100))
        assert await numbers(resumed, 70) == list(range(30, 100))
        assert await numbers(live, 100) == list(range(100))
        await broadcast(room, range(100, 101))
        for stream in (resumed, live):
            assert await numbers(stream, 1) == [100]  # nothing twice before it


async def test_resume_on_a_sharded_layer(sharded: Deployment) -> None:
    await resume_on_the_other_process(sharded.servers, new_room())
    holder = history_host(STREAM, len(sharded.redis_servers))
    assert holder != 0
    for index, shard in enumerate(sharded.redis_servers):
        async with redis_client(shard.url) as client:
            kept = await client.xlen(sharded.history_key)
        assert kept == (101 if index == holder else 0), index
    for server in sharded.servers:
        server.check_alive()


async def test_resume_behind_sentinel(
    behind_sentinel: Deployment, sentinel_clients_closed: None
) -> None:
    await resume_on_the_other_process(behind_sentinel.servers, new_room())
    (master,) = behind_sentinel.redis_servers
    async with redis_client(master.url) as client:
        assert await client.xlen(behind_sentinel.history_key) == 101
    for server in behind_sentinel.servers:
        server.check_alive()


async def role(server: RedisServerProcess) -> str:
    async with redis_client(server.url) as client:
        info: Any = await client.info("replication")
    return str(info["role"])


async def fail_over(deployment: Deployment) -> None:
    """Sentinel promotes the replica; returns once the old master is its replica."""
    master, replica = deployment.redis_servers
    sentinel = deployment.sentinel
    assert sentinel is not None
    async with redis_client(master.url) as client:
        # Everything so far is on the replica: a failover loses nothing here.
        assert await client.execute_command("WAIT", 1, int(GUARD * 1000)) == 1
    async with redis_client(f"redis://{sentinel.address[0]}:{sentinel.port}") as client:
        deadline = time.monotonic() + GUARD
        while True:  # Sentinel learns of the replica from the master's INFO
            replicas: Any = await client.execute_command("SENTINEL", "REPLICAS", "main")
            if replicas:
                break
            assert time.monotonic() < deadline, sentinel.output()
            await asyncio.sleep(0.1)
        assert await client.execute_command("SENTINEL", "FAILOVER", "main")
        while True:
            address: Any = await client.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "main"
            )
            if int(address[1]) == replica.port and await role(master) == "slave":
                break
            assert time.monotonic() < deadline, sentinel.output()
            await asyncio.sleep(0.1)


async def last_kept(deployment: Deployment) -> object:
    """The payload of the history's newest entry, read from the master Sentinel names."""
    assert deployment.sentinel is not None
    sentinel = redis.asyncio.sentinel.Sentinel([deployment.sentinel.address])
    client = sentinel.master_for(deployment.sentinel.master_name)
    try:
        rows: Any = await client.xrevrange(deployment.history_key, count=1)
    finally:
        await client.aclose()
    return deserialize_payload(rows[0][1][b"data"]) if rows else None


async def broadcast_through_failover(deployment: Deployment, room: str, events: range) -> None:
    """Each number once. A broadcast that raises (a connection to the old master was
    closed by the failover) is sent again, unless its append to the history succeeded
    before the send failed: it is an event then, for the history's readers."""
    for number in events:
        deadline = time.monotonic() + GUARD
        while True:
            try:
                await OnCounter.broadcast(payload=number, group=room)
                break
            except Exception:
                assert time.monotonic() < deadline, "the new master did not answer"
                await asyncio.sleep(0.05)
                with contextlib.suppress(Exception):
                    if await last_kept(deployment) == number:
                        break


async def test_subscribers_resume_after_a_sentinel_failover(
    with_replica: Deployment, sentinel_clients_closed: None
) -> None:
    room, gate = new_room(), Gate()
    async with contextlib.AsyncExitStack() as stack:
        subscribers = [
            await subscribed(stack, server, room, gate=gate) for server in with_replica.servers
        ]
        await broadcast(room, range(20))
        for _, stream in subscribers:
            assert await numbers(stream, 20) == list(range(20))
        await fail_over(with_replica)
        # The subscribers leave; events go on, on the new master; they come back and
        # resume from the history there (the pub/sub layer's subscribers would not
        # catch up on their own connection: it keeps no history of its own).
        for transport, _ in subscribers:
            transport.cut()
        await broadcast_through_failover(with_replica, room, range(20, 60))
        gate.open.set()
        await broadcast_through_failover(with_replica, room, range(60, 80))
        for _, stream in subscribers:
            assert await numbers(stream, 60) == list(range(20, 80))
            assert stream.resubscriptions == 1
        await broadcast_through_failover(with_replica, room, range(80, 81))
        for _, stream in subscribers:
            assert await numbers(stream, 1) == [80]
    _, replica = with_replica.redis_servers
    async with redis_client(replica.url) as client:
        assert await client.xlen(with_replica.history_key) == 81
    for server in with_replica.servers:
        server.check_alive()
