"""Per-process fan-out: one channel-layer message per process and group.

Theory of operation
-------------------
Channels' usual pattern joins every consumer's own channel to a group, so a broadcast
to N subscribers is N channel-layer messages, N dispatches through the consumers and
(since Channels 4.2) N thread hops. Here, each process (precisely: each event loop, per
channel layer) has one :class:`FanOut` with one channel of its own. The first local
subscription to a group joins that channel to the group; the last one to leave discards
it. A broadcast is one message per process in the group; the fan-out's listener task
decodes the payload once and appends it to the :class:`NotificationQueue` of every
local subscription in the group, in the order the messages arrive -- which is the order
the broadcasts were issued from one sender, so notifications stay in order.

Membership is counted per subscription, not per connection: two subscriptions of one
socket sharing a group are two members, and the group stays joined while either lives.
The listener runs only while there are local subscriptions, so an idle process holds no
task.

A subscriber that does not keep up has a bounded queue: past its limit the oldest
notification is dropped (with a warning), so memory stays bounded and the subscriber
gets the newest notifications when it resumes.

Several processes on Redis
--------------------------
With channels-redis, the memberships of the process's channel live in Redis (core
layer) or in the process's pub/sub subscriptions (pub/sub layer). Two things can take
them away while the process still needs them, and the fan-out restores them:

* expiry: the core layer forgets a membership ``group_expiry`` seconds (one day by
  default) after its ``group_add``; a refresher task re-adds every group each half
  expiry while the process has subscriptions (layers without ``group_expiry`` need
  none);
* a failure of the layer (Redis restarted, unreachable): the listener's receive raises,
  :class:`ChannelLayerHealth` logs it once for the whole episode and retries with
  backoff, and once the layer answers again the listener re-adds every group before it
  receives again. (The pub/sub layer's receive does not fail: redis-py reconnects and
  re-subscribes by itself.) Connections' own channel receives wait the episode out
  too, rather than end their sockets.

The fan-out's channel carries the notifications of all the process's subscribers, so
it gets a capacity of its own (:func:`raise_fanout_capacity`): channels-redis' default
of 100 would drop the excess of any burst, silently.

Broadcasts issued while the layer is down raise to their caller (the layer's own
exception, e.g. ``redis.exceptions.ConnectionError``); broadcasts issued between Redis'
return and a process's re-join reach no subscriber of that process.

Group names are namespaced per subscription class and always valid Channels group
names: see :func:`group_name`.
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import contextlib
import hashlib
import logging
import re
import sys
import weakref
from typing import TYPE_CHECKING, Any, Final

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import get_channel_layer

from ._exceptions import PayloadSerializationError
from ._layer_messages import (
    PROBE,
    UNSUBSCRIBE,
    WAKE_UP,
    MalformedLayerMessage,
    group_send,
    probe_message,
    read_layer_message,
    send,
    wake_up_message,
)
from ._serialization import deserialize_payload

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

logger = logging.getLogger("channels_graphql_typed")

DEFAULT_NOTIFICATION_QUEUE_LIMIT: Final = 1000

CANCEL_GRACE: Final = 0.25
"""Seconds a cancelled receive gets to end before it is woken up (see
:func:`end_receive`), then again after."""

RETRY_INITIAL_DELAY: Final = 0.1
"""Seconds before the first retry once the channel layer failed; doubled after each
retry that fails, up to :data:`RETRY_MAX_DELAY`."""
RETRY_MAX_DELAY: Final = 2.0
"""Longest wait, in seconds, between two retries while the channel layer fails."""
EPISODE_SETTLE: Final = 10.0
"""Seconds after the layer answers again during which new failures are not logged."""
MALFORMED_LOG_INTERVAL: Final = 60.0
"""Seconds during which further malformed channel-layer messages are counted, not
logged, after one was logged."""
PROBE_GROUP: Final = PROBE
"""Retries send a :class:`~channels_graphql_typed._layer_messages.ProbeMessage` to this
group, which nobody joins: a harmless round trip to the layer."""

_SAFE_GROUP = re.compile(r"[A-Za-z0-9_\-.]{1,48}")

FANOUT_CHANNEL_MARK: Final = "cgt-fanout-"
"""Starts the process-specific part (after ``!``) of the fan-out's channel names. (A
prefix of its own would not do: channels-redis' core layer reads all the process's
channels through one "real" channel per prefix, under one lock.)"""
FANOUT_CHANNEL_CAPACITY: Final = 100_000
"""Capacity given to the fan-out's channels when the layer's settings name none for them:
one such channel carries the notifications of every subscriber of a process, whose own
bounded queues already bound memory, so the layer's default (100) would drop a burst."""
_FANOUT_CHANNEL = re.compile(rf".*!{re.escape(FANOUT_CHANNEL_MARK)}")


def raise_fanout_capacity(layer: BaseChannelLayer) -> None:
    """Give the fan-out's channels :data:`FANOUT_CHANNEL_CAPACITY` on ``layer`` unless its
    ``channel_capacity`` setting names them. Capacity is checked by the sending process,
    so both the servers and the processes that broadcast call this."""
    get_capacity = getattr(layer, "get_capacity", None)
    default = getattr(layer, "capacity", None)
    if get_capacity is None or default is None:
        return  # a layer without capacities (channels-redis' pub/sub layer)
    if get_capacity(f"specific.sample!{FANOUT_CHANNEL_MARK}sample") != default:
        return  # configured by the user, or raised already
    capacities = getattr(layer, "channel_capacity", None)
    if isinstance(capacities, list):
        capacities.insert(0, (_FANOUT_CHANNEL, FANOUT_CHANNEL_CAPACITY))
    elif capacities == {}:
        # The in-memory layer keeps the setting's (empty) dict; get_capacity() iterates
        # pairs, as the compiled list that channels-redis keeps.
        untyped: Any = layer
        untyped.channel_capacity = [(_FANOUT_CHANNEL, FANOUT_CHANNEL_CAPACITY)]


async def _new_fanout_channel(layer: BaseChannelLayer) -> str:
    channel = await layer.new_channel()
    if hasattr(layer, "get_capacity") and "!" in channel:
        # Marked, so that raise_fanout_capacity() applies to it in every process. (Layers
        # without capacities, like the pub/sub layer, subscribe to the name they made.)
        raise_fanout_capacity(layer)
        channel = channel.replace("!", f"!{FANOUT_CHANNEL_MARK}", 1)
    return channel


def class_namespace(module: str, qualname: str) -> str:
    """A short, stable, Channels-safe namespace for a subscription class."""
    readable = re.sub(r"[^A-Za-z0-9]", "", qualname.rsplit(".", 1)[-1])[:24] or "S"
    digest = hashlib.sha256(f"{module}.{qualname}".encode()).hexdigest()[:10]
    return f"cgt.{readable}-{digest}"


def group_name(namespace: str, group: str | None) -> str:
    """The Channels group of ``group`` within a class namespace; ``None`` is the class's
    default group, which every subscription of the class joins.

    Safe short names stay readable (``u_`` prefix); anything else -- long, non-ASCII,
    with other characters -- is hashed (``h_`` prefix), so two different user strings
    never share a Channels group and the result is always under Channels' 100-character
    limit.
    """
    if group is None:
        return f"{namespace}.all"
    if _SAFE_GROUP.fullmatch(group):
        return f"{namespace}.u_{group}"
    return (
        f"{namespace}.h_{hashlib.sha256(group.encode('utf-8', 'surrogatepass')).hexdigest()[:40]}"
    )


_END: Final = object()


class NotificationQueue:
    """A bounded FIFO of one subscription's notifications; drops the oldest on overflow."""

    def __init__(self, limit: int | None, name: str) -> None:
        if limit is not None and limit < 1:
            raise ValueError(
                f"notification_queue_limit must be at least 1, or None for no limit: {limit!r}"
            )
        # Created on the first notification and dropped once drained: most subscriptions
        # are idle most of the time, and an empty deque still costs most of a kilobyte.
        self._items: collections.deque[Any] | None = None
        self._limit = limit
        self._name = name
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._overflowing = False
        self.dropped = 0

    def __len__(self) -> int:
        return 0 if self._items is None else len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: Any) -> None:
        if self._closed:
            return
        if self._items is None:
            self._items = collections.deque()
        if self._limit is not None and len(self._items) >= self._limit:
            self._items.popleft()
            self.dropped += 1
            if not self._overflowing:
                # One warning per overflow episode, not one per dropped notification.
                self._overflowing = True
                logger.warning(
                    "Subscriber %s does not keep up: its queue reached %d notifications; "
                    "the oldest are dropped",
                    self._name,
                    self._limit,
                )
        self._items.append(item)
        self._wake()

    def close(self) -> None:
        """No more notifications: ``get`` returns what is queued, then ``END``."""
        self._closed = True
        self._wake()

    async def get(self) -> Any:
        """The next notification, or :data:`END` once closed and drained."""
        while not self._items:
            if self._closed:
                return _END
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
            self._overflowing = False
        return item

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


END: Final = _END


class Registration:
    """One subscription's membership in the local fan-out."""

    __slots__ = ("groups", "queue")

    def __init__(self, queue: NotificationQueue) -> None:
        self.queue = queue
        self.groups: set[str] = set()


_WAIT_FOR_MAY_SWALLOW_CANCELLATION: Final = sys.version_info < (3, 12)
"""Python 3.12 rewrote ``asyncio.wait_for`` on ``asyncio.timeout``: see end_receive()."""


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def end_receive(layer: BaseChannelLayer, channel: str, receiving: asyncio.Task[Any]) -> None:
    """Cancel a task that receives from ``channel`` and wait for its end.

    On Python 3.11, ``asyncio.wait_for`` -- which redis-py uses to send each command
    when ``socket_timeout`` is set -- returns normally when the cancellation arrives as
    the send completes: channels-redis' core layer then goes on with its blocking read,
    round after round, and the receive never ends. A message to the channel ends it, so
    one is sent if the cancellation alone did not do it promptly.
    """
    receiving.cancel()
    done, _ = await asyncio.wait({receiving}, timeout=CANCEL_GRACE)
    if not done:
        with contextlib.suppress(Exception):
            await send(layer, channel, wake_up_message())
        done, _ = await asyncio.wait({receiving}, timeout=CANCEL_GRACE)
    if not done:
        logger.warning("A receive on %s did not end when cancelled; leaving it", channel)
    elif not receiving.cancelled():
        receiving.exception()  # retrieved, whatever it is: the receive was abandoned


async def _receive_to_the_end(layer: BaseChannelLayer, channel: str) -> dict[str, Any]:
    if not _WAIT_FOR_MAY_SWALLOW_CANCELLATION:
        message: dict[str, Any] = await layer.receive(channel)
        return message
    # In a task of its own, so that a cancellation reaches us even when the receive
    # swallows it, and end_receive() can end the receive.
    receiving = asyncio.ensure_future(layer.receive(channel))
    try:
        await asyncio.wait({receiving})
    except asyncio.CancelledError:
        await end_receive(layer, channel, receiving)
        raise
    message = receiving.result()
    return message


class ChannelLayerHealth:
    """The failures of one channel layer as one event loop sees them.

    A failure opens an *episode*: it is logged once, as a warning, and one prober task
    retries a harmless round trip (a message to :data:`PROBE_GROUP`, which nobody
    joins) with exponential backoff, from :data:`RETRY_INITIAL_DELAY` up to
    :data:`RETRY_MAX_DELAY` seconds. The first round trip that succeeds wakes everything
    waiting in :meth:`wait_until_reachable` and ends the episode (logged at INFO).
    Everything that fails reports to the same object, so a Redis outage is one warning
    per process, not one per connection or per message, and one reconnection attempt at
    a time. Failures in the :data:`EPISODE_SETTLE` seconds after the end belong to the
    same episode (connections opened before a restart fail when next used): they are
    retried the same way, silently.

    A timeout of an idle blocking read is not a failure: channels-redis' core layer
    blocks 5 s in ``BZPOPMIN``, and redis-py (8 and later) gives up reading after its
    ``socket_timeout``, 5 s by default. That is a configuration to fix (warned once), not
    an outage: the read is retried at once.
    """

    def __init__(self, layer: BaseChannelLayer, alias: str) -> None:
        self._layer = layer
        self._alias = alias
        self._failing_since: float | None = None
        self._logged = False
        self._quiet_until = 0.0
        self._reachable = asyncio.Event()
        self._reachable.set()
        self._prober: asyncio.Task[None] | None = None
        self._timeout_warned = False
        self.episodes = 0
        """How many failure episodes began (each was logged once)."""
        self.malformed = 0
        """How many channel-layer messages were dropped as malformed (logged at most once
        per :data:`MALFORMED_LOG_INTERVAL`)."""
        self._malformed_logged_at: float | None = None
        self._malformed_unlogged = 0

    @property
    def failing(self) -> bool:
        """Whether an episode is open: the layer failed and has not answered since."""
        return self._failing_since is not None

    def report(self, error: Exception) -> None:
        """Record a failure of the layer; the first of an episode is logged."""
        if self._failing_since is None:
            now = asyncio.get_running_loop().time()
            self._failing_since = now
            self._reachable.clear()
            self._logged = now >= self._quiet_until
            if self._logged:
                self.episodes += 1
                logger.warning(
                    "The channel layer %r failed (%s: %s); retrying until it answers. "
                    "Subscribers in this process miss the broadcasts sent meanwhile",
                    self._alias,
                    type(error).__name__,
                    error,
                )
        if self._prober is None or self._prober.done():
            self._prober = asyncio.ensure_future(self._probe())

    def malformed_message(self, reason: str) -> None:
        """Count a dropped message; log it unless one was logged in the last
        :data:`MALFORMED_LOG_INTERVAL` seconds (then the next log says how many)."""
        self.malformed += 1
        now = asyncio.get_running_loop().time()
        logged_at = self._malformed_logged_at
        if logged_at is not None and now - logged_at < MALFORMED_LOG_INTERVAL:
            self._malformed_unlogged += 1
            return
        unlogged, self._malformed_unlogged = self._malformed_unlogged, 0
        self._malformed_logged_at = now
        logger.warning(
            "Dropped a malformed message from the channel layer %r: %s%s. Anything that "
            "can write to the layer can send such messages: keep it private",
            self._alias,
            reason,
            f" ({unlogged} more dropped since the previous warning)" if unlogged else "",
        )

    async def wait_until_reachable(self) -> None:
        """Return once no episode is open (at once if none is)."""
        await self._reachable.wait()

    def is_idle_timeout(self, error: Exception) -> bool:
        """Whether ``error`` is a read timeout (warned about once), not a failure."""
        redis_exceptions = sys.modules.get("redis.exceptions")
        timeout = isinstance(error, TimeoutError) or (
            redis_exceptions is not None and isinstance(error, redis_exceptions.TimeoutError)
        )
        if timeout and not self._timeout_warned:
            self._timeout_warned = True
            logger.warning(
                "Receiving from the channel layer %r timed out (%s). With channels-redis' "
                "RedisChannelLayer, redis-py's socket_timeout (5 s by default since "
                "redis-py 8) must be longer than the layer's 5 s blocking read: set it in "
                'the layer\'s hosts, e.g. {"address": "redis://...", "socket_timeout": 10}. '
                "Retrying",
                self._alias,
                error,
            )
        return timeout

    async def receive(self, channel: str) -> dict[str, Any]:
        """The layer's next message on ``channel``: failures of the layer are waited
        out, not raised, and a cancellation always ends the receive (see
        :func:`end_receive`)."""
        while True:
            try:
                return await _receive_to_the_end(self._layer, channel)
            except Exception as error:
                if _is_undecodable(error):
                    # The layer took a message it cannot decode (channels-redis' core
                    # layer reads all of a process's channels together: it may be any
                    # of them, the fan-out's included). The layer works.
                    self.malformed_message(f"the layer cannot decode it ({error!r:.200})")
                elif not self.is_idle_timeout(error):
                    self.report(error)
                    await self.wait_until_reachable()

    async def _probe(self) -> None:
        delay = RETRY_INITIAL_DELAY
        while True:
            await asyncio.sleep(delay)
            try:
                await group_send(self._layer, PROBE_GROUP, probe_message())
            except Exception:
                delay = min(delay * 2, RETRY_MAX_DELAY)
                continue
            break
        if self._failing_since is not None:
            now = asyncio.get_running_loop().time()
            if self._logged:
                logger.info(
                    "The channel layer %r answers again, after %.1f s",
                    self._alias,
                    now - self._failing_since,
                )
                self._quiet_until = now + EPISODE_SETTLE
            self._failing_since = None
        self._reachable.set()


class _GroupLocks:
    """One lock per group name, alive while something holds or awaits it: the fan-out's
    changes to one group's membership in the layer happen one at a time, in order, while
    different groups' go on concurrently."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, group: str) -> collections.abc.AsyncIterator[None]:
        entry = self._locks.get(group)
        if entry is None:
            entry = self._locks[group] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[group]

    def __len__(self) -> int:
        return len(self._locks)


class FanOut:
    """The fan-out of one event loop for one channel layer.

    Concurrency: nothing is held across a round trip to the layer but the lock of the one
    group being added or discarded (:class:`_GroupLocks`), and, once per busy period, the
    lock that creates or retires the process's channel. A subscription joining many groups
    therefore delays no other subscription's join; two subscriptions joining one group
    both return once the layer has it.
    """

    def __init__(self, layer: BaseChannelLayer, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
        self.layer = layer
        self.members: dict[str, set[Registration]] = {}
        self.health = ChannelLayerHealth(layer, alias)
        self._channel: str | None = None
        self._listener: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        # Creates and retires the channel (and its tasks); held across no group's round
        # trips.
        self._channel_lock = asyncio.Lock()
        self._group_locks = _GroupLocks()
        # Groups whose group_add on the current channel has completed (and that were not
        # discarded since): a joiner of such a group has nothing to wait for.
        self._joined: set[str] = set()
        self._cleanups: set[asyncio.Task[None]] = set()

    @property
    def channel(self) -> str | None:
        """This process's channel, while it has local subscriptions."""
        return self._channel

    @property
    def listening(self) -> bool:
        """Whether the listener task runs (it does while there are local subscriptions)."""
        return self._listener is not None

    @property
    def refresh_interval(self) -> float | None:
        """Seconds between re-adds of every group: half the layer's ``group_expiry``
        (None when the layer has none, like channels-redis' pub/sub layer)."""
        expiry = getattr(self.layer, "group_expiry", None)
        if isinstance(expiry, int | float) and expiry > 0:
            return expiry / 2
        return None

    async def join(self, registration: Registration, groups: set[str]) -> None:
        """Add the subscription to the groups; returns once the channel layer has them."""
        new = sorted(groups - registration.groups)
        if not new:
            return
        channel = await self._ensure_channel()
        # Recorded first, all of it and with no await between the channel and here: the
        # channel is not retired while it has members, and if this is cancelled half-way,
        # leave() still undoes it.
        for group in new:
            registration.groups.add(group)
            self.members.setdefault(group, set()).add(registration)
        for group in new:
            if group not in self._joined:
                await self._add(group, channel)

    async def _membership(
        self,
        change: collections.abc.Callable[[str, str], collections.abc.Awaitable[None]],
        group: str,
        channel: str,
    ) -> None:
        # Redis closes idle pooled connections (its ``timeout`` setting), and a pooled
        # connection that Redis closed fails its next command: that is not an outage,
        # and one more try, on a fresh connection, succeeds.
        try:
            await change(group, channel)
        except Exception:
            if _cancelling():
                raise
            await change(group, channel)

    async def _add(self, group: str, channel: str) -> None:
        async with self._group_locks.hold(group):
            # Whoever held the lock before may have added it (another joiner) or the
            # channel may have changed (then this joiner was cancelled and left).
            if group in self._joined or group not in self.members or channel != self._channel:
                return
            await self._membership(self.layer.group_add, group, channel)
            self._joined.add(group)

    async def leave(self, registration: Registration) -> None:
        """Remove the subscription from all its groups.

        The local bookkeeping is done first, all of it, so that neither a cancellation
        nor a failing layer can leave the subscription registered. Discarding the
        process's channel from groups it no longer needs is best effort: when the layer
        fails, the membership stays there until the layer expires it, and the messages
        it attracts are dropped here, as messages of a group without local members.
        """
        groups, registration.groups = registration.groups, set()
        emptied = []
        for group in sorted(groups):
            members = self.members.get(group)
            if members is None:
                continue
            members.discard(registration)
            if not members:
                del self.members[group]
                emptied.append(group)
        if not emptied and self.members:
            return
        # The layer's side runs to its end even if this task is cancelled meanwhile (a
        # client that completes, then closes the socket, cancels it twice).
        cleanup = asyncio.ensure_future(self._discard(emptied, self._channel))
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)
        await asyncio.shield(cleanup)

    async def _discard(self, groups: list[str], channel: str | None) -> None:
        """Discard ``channel`` -- the process's channel when the groups emptied -- from
        them, unless a group has members again on that same channel."""
        try:
            if channel is not None:
                for group in groups:
                    async with self._group_locks.hold(group):
                        if group in self.members and channel == self._channel:
                            continue  # joined again while this waited for the lock
                        if channel == self._channel:
                            # Before the round trip: a joiner arriving meanwhile waits
                            # for this lock, then adds the group again.
                            self._joined.discard(group)
                        try:
                            await self._membership(self.layer.group_discard, group, channel)
                        except Exception as error:
                            self.health.report(error)
        finally:
            if not self.members:
                async with self._channel_lock:
                    if not self.members:
                        await self._stop()

    async def _ensure_channel(self) -> str:
        # A fresh channel per busy period: a layer may forget a channel whose receive()
        # was cancelled (channels-redis' pub/sub layer does), and layers drop the buffers
        # of channels nobody receives from.
        if self._channel is not None and self._listener is not None:
            return self._channel
        async with self._channel_lock:
            if self._channel is None:
                self._channel = await _new_fanout_channel(self.layer)
            if self._listener is None:
                self._listener = asyncio.ensure_future(self._listen(self._channel))
                interval = self.refresh_interval
                if interval is not None:
                    self._refresher = asyncio.ensure_future(self._refresh(self._channel, interval))
            return self._channel

    async def _stop(self) -> None:
        listener, refresher, channel = self._listener, self._refresher, self._channel
        self._listener = self._refresher = self._channel = None
        self._joined.clear()
        if refresher is not None:
            refresher.cancel()
        if listener is not None and channel is not None:
            await end_receive(self.layer, channel, listener)

    async def _listen(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except Exception as error:
                if _cancelling():  # a layer that turned the cancellation into an error
                    raise asyncio.CancelledError from error
                if _is_undecodable(error):
                    # The layer took a message off the channel and could not decode it:
                    # the layer works; the message is dropped.
                    self.health.malformed_message(f"the layer cannot decode it ({error!r:.200})")
                elif not self.health.is_idle_timeout(error):
                    self.health.report(error)
                    await self._rejoin_when_reachable(channel)
                continue
            if _cancelling():  # a cancellation swallowed on the way (see end_receive)
                raise asyncio.CancelledError
            try:
                self.dispatch(message)
            except Exception as error:
                # Nothing a message holds may end the listener: every later broadcast to
                # this process would be lost.
                self.health.malformed_message(f"{type(error).__name__}: {error!s:.200}")

    async def _rejoin_when_reachable(self, channel: str) -> None:
        # The layer failed, and may have lost this process's memberships with it (a
        # Redis restarted without persistence has no groups): once it answers again,
        # every group this process needs is added again, before receiving resumes.
        while True:
            await self.health.wait_until_reachable()
            try:
                for group in sorted(self.members):
                    await self._re_add(group, channel)
            except Exception as error:
                self.health.report(error)
                continue
            return

    async def _re_add(self, group: str, channel: str) -> None:
        async with self._group_locks.hold(group):
            if group in self.members and channel == self._channel:
                await self._membership(self.layer.group_add, group, channel)
                self._joined.add(group)

    async def _refresh(self, channel: str, interval: float) -> None:
        # Layers expire memberships (channels-redis: group_expiry, one day by default,
        # counted from group_add); re-adding each group every half expiry keeps the
        # memberships this process needs for as long as it needs them.
        while True:
            await asyncio.sleep(interval)
            for group in sorted(self.members):
                try:
                    await self._re_add(group, channel)
                except Exception as error:
                    # The listener's receive fails as well, and re-adds every group
                    # once the layer answers again.
                    self.health.report(error)
                    break

    def dispatch(self, received: object) -> None:
        """Deliver one channel-layer message to the local subscriptions of its group.

        The message is untrusted (see README, "The channel layer is a trust boundary"):
        one that is not a well-formed fan-out message (see
        :func:`~channels_graphql_typed._layer_messages.read_layer_message`) is dropped
        with a warning (see :meth:`ChannelLayerHealth.malformed_message`); one of a group
        without local members (left a moment ago) is dropped silently.
        """
        try:
            message = read_layer_message(received)
        except MalformedLayerMessage as error:
            if error.group is not None and not self.members.get(error.group):
                return  # of a group without local members: not looked at further
            self.health.malformed_message(error.reason)
            return
        if message["type"] == PROBE or message["type"] == WAKE_UP:
            return  # the fan-out's own (see end_receive, ChannelLayerHealth)
        group = message["group"]
        members = self.members.get(group)
        if not members:
            return
        if message["type"] == UNSUBSCRIBE:
            for registration in list(members):
                registration.queue.close()
            return
        try:
            payload = deserialize_payload(message["payload"])
        except PayloadSerializationError as error:
            self.health.malformed_message(f"its payload for group {group} was refused: {error}")
            return
        for registration in list(members):
            try:
                registration.queue.put(payload)
            except Exception:
                # One subscriber's failure must not stop the process's listener.
                logger.exception("Cannot queue a notification for group %s", group)


def _is_undecodable(error: Exception) -> bool:
    """Whether a receive failed on the message it took (bytes that do not decode to a
    message), not on the layer: channels-redis decodes after it took the message."""
    unpack_errors = sys.modules.get("msgpack.exceptions")
    if unpack_errors is not None and isinstance(error, unpack_errors.UnpackException):
        return True
    return isinstance(error, ValueError | TypeError | KeyError | AttributeError)


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, FanOut]] = (
    weakref.WeakKeyDictionary()
)


def channel_layer(alias: str) -> BaseChannelLayer:
    """The channel layer ``alias``, ready for the fan-out's messages (both the servers and
    the processes that broadcast get it here)."""
    layer = get_channel_layer(alias)
    if layer is None:
        raise RuntimeError(
            f"Typed subscriptions need a channel layer: CHANNEL_LAYERS[{alias!r}] is not set"
        )
    raise_fanout_capacity(layer)  # the sender's settings decide what the layer drops
    return layer


def get_fanout(alias: str) -> FanOut:
    """The fan-out of the running event loop for the channel layer ``alias``."""
    loop = asyncio.get_running_loop()
    by_alias = _fanouts.setdefault(loop, {})
    fanout = by_alias.get(alias)
    if fanout is None:
        fanout = by_alias[alias] = FanOut(channel_layer(alias), alias)
    return fanout
