"""Several Redis hosts and Sentinel hosts in the layer's configuration: where each
replay history lives (one host, the same for every process), and what the deployment
checks say about such hosts.

The sharded layers here are two databases of the suite's Redis, standing for two
servers: each key is on exactly one of them, as on two servers.
"""

from __future__ import annotations

import binascii
import urllib.parse
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio
from channels_redis.core import RedisChannelLayer  # type: ignore[import-untyped]
from channels_redis.pubsub import RedisPubSubChannelLayer  # type: ignore[import-untyped]

import channels_graphql_typed as cgt
from channels_graphql_typed._checks import REDIS_SOCKET_TIMEOUT, check_channel_layers
from channels_graphql_typed._replay import (
    RedisHistory,
    ResumeState,
    history_for,
    history_host,
    parse_event_id,
    stream_key,
)
from tests.redis_support import LAYERS, REDIS_URL, RUN_PREFIX, require_redis

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

SHARD_DATABASES = (13, 14)


def test_one_host_holds_every_history() -> None:
    assert {history_host(f"cgt.replay:{n}", 1) for n in range(100)} == {0}
    assert history_host("anything", 0) == 0


def test_the_host_is_a_crc32_of_the_name_over_the_hosts() -> None:
    for hosts in (2, 3, 5):
        for number in range(50):
            name = stream_key(f"app.Class{number}")
            assert history_host(name, hosts) == binascii.crc32(name.encode()) % hosts


def test_the_histories_spread_over_the_hosts() -> None:
    names = [stream_key(f"app.Class{number}") for number in range(60)]
    for hosts in (2, 3):
        used = [history_host(name, hosts) for name in names]
        assert set(used) == set(range(hosts))
        assert all(used.count(index) >= 10 for index in range(hosts))


def shard_urls() -> list[str]:
    url = urllib.parse.urlsplit(REDIS_URL)
    return [url._replace(path=f"/{database}").geturl() for database in SHARD_DATABASES]


def sharded_layer(backend: str, prefix: str) -> Any:
    hosts = shard_urls()
    if backend.startswith("channels_redis.core"):
        return RedisChannelLayer(hosts=hosts, prefix=prefix)
    return RedisPubSubChannelLayer(hosts=hosts, prefix=prefix)


@pytest.fixture
async def shards() -> AsyncIterator[list[redis.asyncio.Redis]]:
    require_redis()
    clients = [redis.asyncio.Redis.from_url(url) for url in shard_urls()]
    yield clients
    for client in clients:
        await client.aclose()


@pytest.mark.parametrize("backend", LAYERS, ids=lambda backend: backend.rsplit(".", 1)[-1])
async def test_each_history_is_on_its_host_and_every_process_finds_it(
    backend: str, shards: list[redis.asyncio.Redis]
) -> None:
    prefix = f"{RUN_PREFIX}-shards"
    writer, reader = sharded_layer(backend, prefix), sharded_layer(backend, prefix)
    names = [stream_key(f"tests.Sharded{number}") for number in range(8)]
    placed = {history_host(name, 2) for name in names}
    assert placed == {0, 1}  # both hosts hold some
    replay = cgt.Replay(events=10)
    appended = {}
    try:
        for name in names:
            appended[name] = await history_for(writer).append(name, replay, "g", name.encode())
        for name in names:
            key = f"{prefix}:{name}"
            index = history_host(name, 2)
            assert await shards[index].exists(key) == 1
            assert await shards[1 - index].exists(key) == 0
            # Another layer on the same hosts (another process): the same history.
            history = history_for(reader)
            assert isinstance(history, RedisHistory)
            (entry,) = await history.read(name, (0, 0), 10)
            assert entry.data == name.encode()
            assert await history.last(name) == parse_event_id(appended[name])
    finally:
        for shard in shards:
            await shard.delete(*(f"{prefix}:{name}" for name in names))
        for layer in (writer, reader):
            await layer.flush()


@pytest.fixture
async def client() -> AsyncIterator[redis.asyncio.Redis]:
    require_redis()
    connection = redis.asyncio.Redis.from_url(REDIS_URL)
    yield connection
    await connection.aclose()


@pytest.mark.parametrize("kept", [True, False], ids=["older-entries-kept", "history-empty"])
async def test_an_id_newer_than_the_history_resumes_after_its_newest_entry(
    client: redis.asyncio.Redis, kept: bool
) -> None:
    # A failover to a replica that had not received the client's entry: the promoted
    # replica's history ends before the client's id, and its clock may be behind, so
    # that its next entries get ids below the client's. They are delivered.
    history = RedisHistory(lambda stream: client, f"{RUN_PREFIX}:")
    name = f"behind-{kept}"
    key = f"{RUN_PREFIX}:{name}"
    await client.delete(key)
    try:
        if kept:
            await client.xadd(key, {b"group": b"g", b"data": b"5"}, id="5-0")
        state = ResumeState(history, name, (10, 0), {"g"})
        await state.begin()
        assert state.missed
        await client.xadd(key, {b"group": b"g", b"data": b"7"}, id="7-0")
        await client.xadd(key, {b"group": b"other", b"data": b"8"}, id="8-0")
        entry = await state.next_replayed()
        assert entry is not None
        assert entry.data == b"7"
        assert await state.next_replayed() is None
        assert state.is_replayed("8-0")
        assert not state.is_replayed("9-0")  # a live event after them
    finally:
        await client.delete(key)


async def test_an_id_still_in_the_history_resumes_after_it(client: redis.asyncio.Redis) -> None:
    history = RedisHistory(lambda stream: client, f"{RUN_PREFIX}:")
    name = "exact"
    key = f"{RUN_PREFIX}:{name}"
    await client.delete(key)
    try:
        for number in (5, 10, 12):
            await client.xadd(key, {b"group": b"g", b"data": b"%d" % number}, id=f"{number}-0")
        state = ResumeState(history, name, (10, 0), {"g"})
        await state.begin()
        assert not state.missed
        entry = await state.next_replayed()
        assert entry is not None
        assert entry.data == b"12"
        assert await state.next_replayed() is None
        assert state.is_replayed("11-0")
    finally:
        await client.delete(key)


CORE = "channels_redis.core.RedisChannelLayer"
SENTINEL_HOST = {"sentinels": [("127.0.0.1", 26379)], "master_name": "main"}


def socket_timeout_warnings(settings: Any, hosts: object) -> list[str]:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": CORE, "CONFIG": {"hosts": hosts}}}
    messages = check_channel_layers()
    assert {message.id for message in messages} <= {REDIS_SOCKET_TIMEOUT}
    return [f"{message.msg} HINT: {message.hint}" for message in messages]


def test_a_sentinel_host_with_a_long_timeout_is_sound(settings: Any) -> None:
    assert socket_timeout_warnings(settings, [{**SENTINEL_HOST, "socket_timeout": 10}]) == []


def test_a_sentinel_host_with_a_short_timeout_is_named(settings: Any) -> None:
    (warning,) = socket_timeout_warnings(settings, [{**SENTINEL_HOST, "socket_timeout": 2}])
    assert "sets socket_timeout=2 on its host (the master 'main' through Sentinel)" in warning
    assert 'next to "sentinels" and "master_name"' in warning


def test_a_timeout_in_sentinel_kwargs_does_not_count(settings: Any) -> None:
    # It bounds the Sentinel queries; the master's connections keep redis-py's default.
    host = {**SENTINEL_HOST, "sentinel_kwargs": {"socket_timeout": 10}}
    (warning,) = socket_timeout_warnings(settings, [host])
    assert "leaves socket_timeout=5 (redis-py's default) on its host" in warning
    assert "sentinel_kwargs applies to the Sentinel queries only" in warning


def test_sharded_hosts_are_each_checked_and_named(settings: Any) -> None:
    warnings = socket_timeout_warnings(
        settings,
        [
            {"address": "redis://:secret@127.0.0.1:6379/0", "socket_timeout": 10},
            {"address": "redis://:secret@127.0.0.1:6380/0", "socket_timeout": 1},
            {**SENTINEL_HOST, "socket_timeout": 3},
        ],
    )
    assert len(warnings) == 2
    assert "sets socket_timeout=1 on host 2 of 3:" in warnings[0]
    sentinel = "sets socket_timeout=3 on host 3 of 3 (the master 'main' through Sentinel)"
    assert sentinel in warnings[1]
    assert not any("secret" in warning for warning in warnings)


@pytest.mark.parametrize(
    "hosts",
    [
        [{"master_name": "main"}],  # no sentinels: channels-redis would fail to connect
        [{"sentinels": "not a list", "master_name": 7, "socket_timeout": "soon"}],
        [{"master_name": None, "socket_timeout": 10}],
        "redis://127.0.0.1:6379/0",  # a string, not a list
        [None, 42, b"redis://127.0.0.1", ("127.0.0.1",)],
    ],
)
def test_malformed_hosts_do_not_crash_the_check(settings: Any, hosts: object) -> None:
    for warning in socket_timeout_warnings(settings, hosts):
        assert "socket_timeout" in warning
