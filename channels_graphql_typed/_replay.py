"""Resumable subscriptions: event ids, the bounded history, and resume.

A subscription class opts in with ``replay = Replay(events=1000)`` (and/or
``seconds=...``). Classes that do not opt in go through none of this module.

Theory of operation
-------------------
**One history per subscription class**, not one per group. Every broadcast of an
opted-in class (to any of its groups, the class-wide one included) is appended to the
class's history -- a Redis Stream ``<layer prefix>:cgt.replay:<class namespace>`` when the channel
layer is channels-redis, an in-memory ring otherwise -- with the Channels group it was
sent to stored in the entry. The entry's id is the event id: ``"<ms>-<n>"`` (Redis'
stream id format, used by the in-memory ring too), strictly increasing per class, hence
per group. With several Redis hosts, a class's stream is on one of them, picked by a
hash of its name (:func:`history_host`), as channels-redis picks a host for a group;
with a Sentinel host, on the master that Sentinel names, again after a failover. The
id travels in the channel-layer message to every process, and from there in each
result's ``extensions`` (:data:`EVENT_ID_EXTENSION`).

Because all of a class's groups share one id sequence, a subscription in several
groups (every subscription is also in its class-wide group) resumes from **one** id:
the last one it received. The price, and the trade-off against one history per group
with a cursor holding one position per group: the window (``events``) is shared by all
the groups of the class, so a busy group pushes a quiet group's events out of it
sooner, and a resume reads (and skips) the entries of the class's other groups. In
exchange the cursor is one short opaque string, valid for whatever groups the
subscription joins, and the history is one Redis key per class.

**Broadcast**: the entry is appended (``XADD ... MAXLEN ~ events``, plus ``XTRIM MINID
~`` when ``seconds`` is set, in one round trip) before the ``group_send``, in the
sender's task: one sender's broadcasts keep their order, in the history and on the
wire. Across concurrent senders, the history's order is the order of truth; live
subscribers get the channel layer's order.

**Resume** (:class:`ResumeState`): a client subscribes with the last id it saw in the
operation's ``extensions`` (:data:`RESUME_AFTER_EXTENSION`). The subscription joins its
groups first, then reads the history after that id, page by page until a page comes
back empty, and delivers the entries of its groups in order. Every event appended
before the last (empty) read is in the history; every event appended after it is sent
to the groups after the join, so it arrives live. Live events queued meanwhile whose id
is not greater than the last replayed one are dropped: no duplicate, no gap. (A live
queue that overflows during a long replay loses nothing either: what it dropped was in
the history, and was replayed.)

**Catch-up** (after a failure of the channel layer): once the fan-out has joined its
groups again, it queues a marker to each live subscription of a resumable class; taking
it, the subscription resumes, on its open connection, after the last event it took
(delivered or skipped), or, if it took none, after the history's newest entry when it
joined (read once after the join; none when the history was empty: then the whole
history, without the missed check). The groups are joined before the history is read,
so the argument above holds: no gap, no duplicate.

**Missed events**: the id the client sends was an entry of the history. If that entry
is still there, everything after it is too, and the resume is exact. If it is gone (it
left the window, or the history was lost), events may have been missed: the client gets
one result with an error whose ``extensions.code`` is :data:`EVENTS_MISSED`, then
whatever the history still holds after the id, then live events. (An id that is exactly
the oldest trimmed entry counts as missed although nothing after it was: the check
errs on the side of telling.)

An id newer than the history's newest entry is one the history lost: a failover to a
Redis replica that had not received it yet (replication is asynchronous), or a restart
without persistence. The client gets :data:`EVENTS_MISSED` too, and the subscription
resumes after the history's newest entry, not after the client's id: a promoted
replica whose clock is behind gives its next entries ids below the lost ones, and they
are delivered all the same.

The history is read back from Redis: like the channel layer, it is a trust boundary.
Entries that are not well formed are dropped with a warning; payloads are decoded by
:func:`~channels_graphql_typed._serialization.deserialize_payload`, bounded as always.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import dataclasses
import math
import re
import time
import weakref
from typing import TYPE_CHECKING, Any, Final, Protocol

from ._log import logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from channels.layers import BaseChannelLayer

STREAM_PREFIX: Final = "cgt.replay:"
"""Prefix of the Redis Stream keys holding the histories (one per subscription class),
after the channel layer's own ``prefix``: ``asgi:cgt.replay:<class namespace>``."""

PAGE_SIZE: Final = 256
"""Entries read from a history in one round trip while a subscription resumes."""

_EVENT_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX_PART: Final = 2**64 - 1


@dataclasses.dataclass(frozen=True, slots=True)
class Replay:
    """Makes a subscription class resumable: ``replay = Replay(events=1000)``.

    The class's broadcasts are kept in a bounded history: the last ``events`` of them
    (approximately: Redis trims whole blocks, so a little more may be kept, never
    less), and/or those of the last ``seconds``. At least one bound is required.
    """

    events: int | None = 1000
    """How many broadcasts of the class the history keeps, at least (None: no bound by
    count)."""
    seconds: float | None = None
    """For how long the history keeps each broadcast, at least (None: no bound by
    time)."""

    def __post_init__(self) -> None:
        events, seconds = self.events, self.seconds
        if events is not None and (
            not isinstance(events, int) or isinstance(events, bool) or events < 1
        ):
            raise ValueError(f"Replay(events=...) must be a positive int or None, not {events!r}")
        if seconds is not None and (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise ValueError(
                f"Replay(seconds=...) must be a positive number or None, not {seconds!r}"
            )
        if events is None and seconds is None:
            raise ValueError("Replay needs a bound: events=..., seconds=..., or both")


@dataclasses.dataclass(frozen=True, slots=True)
class IdentifiedNotification:
    """A decoded broadcast of a resumable class with its event id, as the fan-out
    queues it (the subscription stream takes it apart)."""

    payload: object
    event_id: str


class MalformedEventId(ValueError):
    """An event id that is not ``"<ms>-<n>"``."""


def parse_event_id(value: object) -> tuple[int, int]:
    """The id ``value`` as a comparable pair; :class:`MalformedEventId` if it is not one."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedEventId("an event id must be ASCII text") from None
    if not isinstance(value, str):
        raise MalformedEventId(f"an event id must be a string, not {type(value).__name__}")
    match = _EVENT_ID.fullmatch(value)
    if match is None:
        raise MalformedEventId(
            f"an event id is two numbers joined by '-' (such as '1700000000000-0'), "
            f"not {value[:40]!r}"
        )
    milliseconds, sequence = int(match[1]), int(match[2])
    if milliseconds > _MAX_PART or sequence > _MAX_PART:
        raise MalformedEventId(f"event id out of range: {value[:40]!r}")
    return milliseconds, sequence


def format_event_id(position: tuple[int, int]) -> str:
    return f"{position[0]}-{position[1]}"


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One broadcast kept in a history."""

    id: tuple[int, int]
    group: str
    data: bytes


class History(Protocol):
    """Where the broadcasts of resumable classes are kept."""

    async def append(self, stream: str, replay: Replay, group: str, data: bytes) -> str:
        """Keep one broadcast; its event id."""
        ...

    async def read(self, stream: str, start: tuple[int, int], count: int) -> list[HistoryEntry]:
        """Up to ``count`` entries from ``start`` on (``start`` included), in order."""
        ...

    async def last(self, stream: str) -> tuple[int, int] | None:
        """The id of the newest entry (None: the history is empty)."""
        ...


class MemoryHistory:
    """The histories of one process, in memory: for channel layers other than Redis
    (the in-memory layer serves one process)."""

    def __init__(self) -> None:
        self._streams: dict[str, collections.deque[tuple[HistoryEntry, float]]] = {}
        self._last: tuple[int, int] = (0, 0)

    def _next_id(self) -> tuple[int, int]:
        milliseconds = time.time_ns() // 1_000_000
        last = self._last
        self._last = (milliseconds, 0) if milliseconds > last[0] else (last[0], last[1] + 1)
        return self._last

    async def append(self, stream: str, replay: Replay, group: str, data: bytes) -> str:
        entries = self._streams.get(stream)
        if entries is None:
            entries = self._streams[stream] = collections.deque(maxlen=replay.events)
        position = self._next_id()
        now = time.monotonic()
        entries.append((HistoryEntry(position, group, data), now))
        if replay.seconds is not None:
            while entries and entries[0][1] < now - replay.seconds:
                entries.popleft()
        return format_event_id(position)

    async def read(self, stream: str, start: tuple[int, int], count: int) -> list[HistoryEntry]:
        result: list[HistoryEntry] = []
        for entry, _ in self._streams.get(stream, ()):
            if entry.id >= start:
                result.append(entry)
                if len(result) >= count:
                    break
        return result

    async def last(self, stream: str) -> tuple[int, int] | None:
        entries = self._streams.get(stream)
        return entries[-1][0].id if entries else None


class RedisHistory:
    """The histories in Redis Streams, one per class (``XADD`` / ``XRANGE``).

    ``connection(stream)`` gives the running loop's client of the Redis that holds the
    stream ``stream`` (named without the key prefix): with several hosts, each history
    lives on one of them (:func:`history_host`)."""

    def __init__(self, connection: Callable[[str], Any], key_prefix: str = "") -> None:
        self._connection = connection
        self._key_prefix = key_prefix
        """The channel layer's ``prefix`` and a colon: apps that share a Redis keep apart."""

    async def append(self, stream: str, replay: Replay, group: str, data: bytes) -> str:
        redis = self._connection(stream)
        stream = self._key_prefix + stream
        fields = {b"group": group.encode(), b"data": data}
        if replay.seconds is None:
            added = await redis.xadd(stream, fields, maxlen=replay.events, approximate=True)
        else:
            minimum = int((time.time() - replay.seconds) * 1000)
            async with redis.pipeline(transaction=False) as pipe:
                pipe.xadd(stream, fields, maxlen=replay.events, approximate=True)
                pipe.xtrim(stream, minid=f"{max(minimum, 0)}-0", approximate=True)
                added, _ = await pipe.execute()
        return format_event_id(parse_event_id(added))

    async def read(self, stream: str, start: tuple[int, int], count: int) -> list[HistoryEntry]:
        redis = self._connection(stream)
        stream = self._key_prefix + stream
        rows = await redis.xrange(stream, min=format_event_id(start), count=count)
        entries = []
        for row in rows:
            entry = _read_row(row)
            if entry is None:
                logger.warning("Dropped a malformed entry of the replay history %s", stream)
                continue
            entries.append(entry)
        return entries

    async def last(self, stream: str) -> tuple[int, int] | None:
        redis = self._connection(stream)
        rows: Any = await redis.xrevrange(self._key_prefix + stream, count=1)
        if not rows:
            return None
        try:
            return parse_event_id(rows[0][0])
        except (MalformedEventId, IndexError, KeyError, TypeError):
            # Untrusted, as every entry: read as no entry (the whole history is replayed).
            return None


def _read_row(row: object) -> HistoryEntry | None:
    """An entry read from Redis (untrusted: anything may write to the key)."""
    if not isinstance(row, list | tuple) or len(row) != 2:
        return None
    raw_id, fields = row
    if not isinstance(fields, dict):
        return None
    try:
        position = parse_event_id(raw_id)
    except MalformedEventId:
        return None
    group, data = fields.get(b"group"), fields.get(b"data")
    if not isinstance(group, bytes) or not isinstance(data, bytes):
        return None
    try:
        return HistoryEntry(position, group.decode(), data)
    except UnicodeDecodeError:
        return None


_histories: weakref.WeakKeyDictionary[BaseChannelLayer, History] = weakref.WeakKeyDictionary()


def history_for(layer: BaseChannelLayer) -> History:
    """The history of a channel layer's resumable classes: in Redis for channels-redis'
    layers (each class's on one of the layer's hosts: :func:`history_host`), in this
    process's memory otherwise."""
    history = _histories.get(layer)
    if history is None:
        connection = _redis_connection(layer)
        if connection is None:
            history = MemoryHistory()
        else:
            prefix = getattr(layer, "prefix", None) or getattr(layer, "_kwargs", {}).get("prefix")
            history = RedisHistory(connection, f"{prefix or 'asgi'}:")
        _histories[layer] = history
    return history


def history_host(stream: str, hosts: int) -> int:
    """The index, in the layer's ``hosts``, of the Redis that holds the history
    ``stream`` (its name without the key prefix).

    A CRC-32 of the name, modulo the number of hosts: the same in every process that
    lists the same hosts in the same order (as channels-redis needs for its groups),
    whatever the key prefix, the Python version or the channels-redis version. One
    history is one key, on one host; the histories of several classes spread over the
    hosts. With one host (a single Redis, or one Sentinel-monitored master), it is 0.
    """
    if hosts <= 1:
        return 0
    return binascii.crc32(stream.encode()) % hosts


def _redis_connection(layer: BaseChannelLayer) -> Callable[[str], Any] | None:
    """A function giving the running loop's Redis client of the host that holds a
    history, or None for a layer that is not channels-redis'."""
    module = type(layer).__module__
    if module == "channels_redis.core" and callable(getattr(layer, "connection", None)):
        # The core layer's own per-loop clients, one per host (a Sentinel host's finds
        # its master through Sentinel): closed with the loop by channels-redis.
        core: Any = layer
        hosts = len(core.hosts)
        return lambda stream: core.connection(history_host(stream, hosts))
    if module == "channels_redis.pubsub":
        return _PubSubConnections(layer).get
    return None


class _PubSubConnections:
    """Clients of the hosts of channels-redis' pub/sub layer, one per host and event
    loop, each closed when its loop closes. A Sentinel host (``{"sentinels": ...,
    "master_name": ...}``) gets channels-redis' Sentinel pool: its connections find the
    current master through Sentinel, again after a failover."""

    def __init__(self, layer: BaseChannelLayer) -> None:
        from channels_redis.utils import decode_hosts  # type: ignore[import-untyped]

        arguments: Any = getattr(layer, "_args", ())
        options: Any = getattr(layer, "_kwargs", {})
        hosts = options.get("hosts", arguments[0] if arguments else None)
        self._hosts: list[dict[str, Any]] = decode_hosts(hosts)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, stream: str) -> Any:
        from channels_redis.utils import create_pool
        from redis import asyncio as aioredis

        loop = asyncio.get_running_loop()
        clients = self._clients.get(loop)
        if clients is None:
            clients = self._clients[loop] = {}
            _close_with_loop(loop, clients)
        index = history_host(stream, len(self._hosts))
        client = clients.get(index)
        if client is None:
            pool = create_pool(self._hosts[index])
            client = clients[index] = aioredis.Redis(connection_pool=pool)
        return client


async def _close_client(client: Any) -> None:
    """Close a client, its pool and, for a Sentinel host, the pool's own clients of the
    Sentinels (which closing the pool leaves open)."""
    pool = client.connection_pool
    await client.aclose(close_connection_pool=True)
    manager = getattr(pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


def _close_with_loop(loop: asyncio.AbstractEventLoop, clients: dict[int, Any]) -> None:
    close = loop.close

    def closing() -> None:
        loop.close = close  # type: ignore[method-assign]
        if not loop.is_running() and not loop.is_closed():
            for client in clients.values():
                try:
                    loop.run_until_complete(_close_client(client))
                except Exception:
                    logger.debug("Closing a replay history client failed", exc_info=True)
        close()

    loop.close = closing  # type: ignore[method-assign]


class ResumeState:
    """Where one resuming subscription is: replaying the history, then live.

    ``next_replayed`` gives the history's entries of the subscription's groups after
    the client's id, then None once the history has nothing more; ``is_replayed``
    tells, for a live event, whether the replay delivered it already.
    """

    def __init__(
        self,
        history: History,
        stream: str,
        after: tuple[int, int] | None,
        groups: set[str],
    ) -> None:
        self._history = history
        self._stream = stream
        self._groups = groups
        self._start = after
        self._last = (0, 0) if after is None else after
        self._page: collections.deque[HistoryEntry] = collections.deque()
        self.done = False
        self.missed = False
        """Whether the client's id was no longer in the history (known after the first
        read: :meth:`begin`)."""

    async def begin(self) -> None:
        """The first read: whether the client's id is still in the history.

        With no id (``after`` None: a subscription that caught up after a failure of the
        channel layer, and whose class's history was empty when it joined), the whole
        history is read, and nothing can tell whether entries left it meanwhile: the
        check is skipped.

        An id newer than the history's newest entry (read first, so that nothing
        appended meanwhile is passed over) means the history lost entries it had: a
        failover to a replica that had not received them yet, or a Redis restart without
        persistence. The client missed events, and what the history appends next may
        get ids below the client's (those of a promoted replica whose clock is behind):
        the subscription resumes after the history's newest entry instead."""
        newest = None if self._start is None else await self._history.last(self._stream)
        entries = await self._history.read(self._stream, self._last, PAGE_SIZE)
        if self._start is None:
            pass
        elif entries and entries[0].id == self._start:
            entries = entries[1:]
        else:
            self.missed = True
            if newest is None or newest < self._start:
                self._last = (0, 0) if newest is None else newest
                return  # next_replayed() reads on after the newest entry
        self._fill(entries)
        if not entries:
            self.done = True

    def _fill(self, entries: list[HistoryEntry]) -> None:
        for entry in entries:
            if entry.id > self._last:
                self._last = entry.id
                if entry.group in self._groups:
                    self._page.append(entry)

    async def next_replayed(self) -> HistoryEntry | None:
        while not self._page:
            if self.done:
                return None
            following = (self._last[0], self._last[1] + 1)
            entries = await self._history.read(self._stream, following, PAGE_SIZE)
            if not entries:
                self.done = True
                return None
            self._fill(entries)
        return self._page.popleft()

    def is_replayed(self, event_id: str) -> bool:
        """Whether a live event of this id was in the part of the history replayed."""
        try:
            return parse_event_id(event_id) <= self._last
        except MalformedEventId:
            return False


def stream_key(namespace: str) -> str:
    return f"{STREAM_PREFIX}{namespace}"
