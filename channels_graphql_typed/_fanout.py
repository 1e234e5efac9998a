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
it gets a capacity of its own
(:func:`~channels_graphql_typed._channel_layer.raise_fanout_capacity`): channels-redis' default
of 100 would drop the excess of any burst, silently.

Broadcasts issued while the layer is down raise to their caller (the layer's own
exception, e.g. ``redis.exceptions.ConnectionError``); broadcasts issued between Redis'
return and a process's re-join reach no subscriber of that process. Once re-joined, the
fan-out queues :data:`~channels_graphql_typed._notification_queue.CATCH_UP` to every
subscription of a resumable class, which then reads what it missed from its class's
history (see :mod:`channels_graphql_typed._replay`, "Catch-up"), and logs the window
for the others, which cannot recover it.

Group names are namespaced per subscription class and always valid Channels group
names: see :mod:`channels_graphql_typed._groups`. The queues are
:mod:`channels_graphql_typed._notification_queue`; the layer's capacity, receives and
health are :mod:`channels_graphql_typed._channel_layer`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Final

from channels import DEFAULT_CHANNEL_LAYER

from ._channel_layer import (
    ChannelLayerHealth,
    cancelling,
    channel_layer,
    end_receive,
    is_undecodable,
    new_fanout_channel,
)
from ._exceptions import PayloadSerializationError
from ._layer_messages import (
    JOINED,
    PROBE,
    UNSUBSCRIBE,
    WAKE_UP,
    MalformedLayerMessage,
    group_send,
    joined_message,
    read_layer_message,
    send,
    wake_up_message,
)
from ._log import logger
from ._notification_queue import CATCH_UP
from ._replay import IdentifiedNotification
from ._serialization import deserialize_payload

if TYPE_CHECKING:
    import collections.abc

    from channels.layers import BaseChannelLayer

    from ._notification_queue import Registration


JOIN_CONFIRM_TIMEOUT: Final = 10.0
"""Seconds a resuming subscription waits for its joins to take effect (pub/sub layer)."""


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
        self.alias = alias
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
        self._fences: list[asyncio.Future[None]] = []
        self._join_waiters: dict[str, asyncio.Future[None]] = {}

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

    async def fence(self) -> None:
        """Return once the messages that reached this process's channel before the call
        are in the local subscriptions' queues (at once when nothing listens).

        A wake-up sent to the channel comes after them (a layer keeps the order of one
        channel's messages; on Redis, of one shard's), and the listener dispatches in
        order. A graceful drain fences before it delivers what is queued."""
        channel = self._channel
        if channel is None or self._listener is None:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._fences.append(waiter)
        try:
            await send(self.layer, channel, wake_up_message())
            await waiter
        finally:
            with contextlib.suppress(ValueError):
                self._fences.remove(waiter)

    async def _confirm_joined(self, group: str) -> None:
        """Return once broadcasts sent to ``group`` from now on reach this process.

        On channels-redis' pub/sub layer, ``group_add`` returns once ``SUBSCRIBE`` is
        written, not once Redis has it: a message published meanwhile, from another
        connection, may be lost, and a subscription confirmed then could miss the first
        broadcast its client causes. So, on that layer, the first join of a group in
        this process sends a :class:`JoinedMessage` to the group (again, with backoff,
        until one arrives) and waits for it; later subscribers of the group find it
        joined. A send that fails is tried again the same way. After
        :data:`JOIN_CONFIRM_TIMEOUT` seconds without an answer (a layer that fails, or a
        process too busy to read), the join goes on unconfirmed, as on the other layers,
        with a warning: refusing the subscription would lose more than the join risks.
        Other layers' ``group_add`` is in effect when it returns: nothing to do.
        """
        if type(self.layer).__module__ != "channels_redis.pubsub":
            return
        token = uuid.uuid4().hex
        waiter = asyncio.get_running_loop().create_future()
        self._join_waiters[token] = waiter
        try:
            async with asyncio.timeout(JOIN_CONFIRM_TIMEOUT):
                delay = 0.01
                while not waiter.done():
                    try:
                        await group_send(self.layer, group, joined_message(group, token))
                    except Exception:
                        if cancelling():
                            raise
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(waiter), delay)
                    delay = min(delay * 2, 0.5)
        except TimeoutError:
            if cancelling():
                raise
            logger.warning(
                "The join of group %s was not confirmed within %g s; going on without",
                group,
                JOIN_CONFIRM_TIMEOUT,
            )
        finally:
            del self._join_waiters[token]

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
            if cancelling():
                raise
            await change(group, channel)

    async def _add(self, group: str, channel: str) -> None:
        async with self._group_locks.hold(group):
            # Whoever held the lock before may have added it (another joiner) or the
            # channel may have changed (then this joiner was cancelled and left).
            if group in self._joined or group not in self.members or channel != self._channel:
                return
            await self._membership(self.layer.group_add, group, channel)
            await self._confirm_joined(group)
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
                self._channel = await new_fanout_channel(self.layer)
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
                if cancelling():  # a layer that turned the cancellation into an error
                    raise asyncio.CancelledError from error
                if is_undecodable(error):
                    # The layer took a message off the channel and could not decode it:
                    # the layer works; the message is dropped.
                    self.health.malformed_message(f"the layer cannot decode it ({error!r:.200})")
                elif not self.health.is_idle_timeout(error):
                    self.health.report(error)
                    await self._rejoin_when_reachable(channel)
                continue
            if cancelling():  # a cancellation swallowed on the way (see end_receive)
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
        failed_at = time.time()
        while True:
            await self.health.wait_until_reachable()
            try:
                for group in sorted(self.members):
                    await self._re_add(group, channel)
            except Exception as error:
                self.health.report(error)
                continue
            self._after_rejoin(failed_at)
            return

    def _after_rejoin(self, failed_at: float) -> None:
        """Tell every local subscription that the broadcasts sent since ``failed_at`` may
        not have reached it: a resumable one catches up from its class's history (it
        joined again, so reading the history now leaves no gap, see
        :class:`~channels_graphql_typed._replay.ResumeState`); the others' loss is logged."""
        registrations = {
            registration for members in self.members.values() for registration in members
        }
        lossy = 0
        for registration in registrations:
            if registration.resumable:
                registration.queue.put(CATCH_UP)
            else:
                lossy += 1
        if lossy:
            rejoined_at = time.time()
            logger.warning(
                "The fan-out of the channel layer %r joined its %d groups again after the "
                "layer's failure: %d subscriptions of classes that are not resumable "
                "missed what was broadcast to them from %s to %s UTC (%.1f s)",
                self.alias,
                len(self.members),
                lossy,
                _utc(failed_at),
                _utc(rejoined_at),
                rejoined_at - failed_at,
            )

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
        if message["type"] == WAKE_UP:
            fences, self._fences = self._fences, []
            for waiter in fences:
                if not waiter.done():
                    waiter.set_result(None)
            return  # the fan-out's own (see end_receive, fence)
        if message["type"] == PROBE:
            return  # the fan-out's own (see ChannelLayerHealth)
        if message["type"] == JOINED:
            joined = self._join_waiters.get(message["token"])
            if joined is not None and not joined.done():
                joined.set_result(None)
            return  # the fan-out's own (see _confirm_joined)
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
        sent_at = message.get("sent_at")
        event_id = message.get("event_id")
        if event_id is not None:
            # A resumable class's broadcast: its subscribers need the id (see _replay).
            payload = IdentifiedNotification(payload, event_id)
        for registration in list(members):
            try:
                registration.queue.put(payload, sent_at)
            except Exception:
                # One subscriber's failure must not stop the process's listener.
                logger.exception("Cannot queue a notification for group %s", group)


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%H:%M:%S.%f")[:-3]


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, FanOut]] = (
    weakref.WeakKeyDictionary()
)


def loop_fanouts() -> list[FanOut]:
    """The fan-outs of the running event loop, one per channel layer in use."""
    return list(_fanouts.get(asyncio.get_running_loop(), {}).values())


def get_fanout(alias: str) -> FanOut:
    """The fan-out of the running event loop for the channel layer ``alias``."""
    loop = asyncio.get_running_loop()
    by_alias = _fanouts.setdefault(loop, {})
    fanout = by_alias.get(alias)
    if fanout is None:
        fanout = by_alias[alias] = FanOut(channel_layer(alias), alias)
    return fanout
