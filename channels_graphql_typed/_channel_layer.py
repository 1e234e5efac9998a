"""The channel layer as the fan-out uses it: capacity, receives that end, health.

* The fan-out's channel carries the notifications of every subscriber of a process, so
  it gets a capacity of its own (:func:`raise_fanout_capacity`), in every process that
  sends to it.
* A receive must end when its task is cancelled, even where Python 3.11's
  ``asyncio.wait_for`` swallows the cancellation inside redis-py
  (:func:`end_receive`); a layer known to end its receive when cancelled (Channels'
  in-memory layer) is awaited directly, without a task per receive
  (:func:`receive_ends_when_cancelled`).
* :class:`ChannelLayerHealth` turns the failures of a layer into one logged episode,
  retries with backoff, and wakes the waiters once the layer answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from typing import TYPE_CHECKING, Any, Final

from channels.layers import InMemoryChannelLayer, get_channel_layer

from . import _observability as observing
from ._layer_messages import (
    PROBE,
    group_send,
    probe_message,
    send,
    wake_up_message,
)
from ._log import logger

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer


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


async def new_fanout_channel(layer: BaseChannelLayer) -> str:
    channel = await layer.new_channel()
    if hasattr(layer, "get_capacity") and "!" in channel:
        # Marked, so that raise_fanout_capacity() applies to it in every process. (Layers
        # without capacities, like the pub/sub layer, subscribe to the name they made.)
        raise_fanout_capacity(layer)
        channel = channel.replace("!", f"!{FANOUT_CHANNEL_MARK}", 1)
    return channel


_WAIT_FOR_MAY_SWALLOW_CANCELLATION: Final = sys.version_info < (3, 12)
"""Python 3.12 rewrote ``asyncio.wait_for`` on ``asyncio.timeout``: see end_receive()."""


def cancelling() -> bool:
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


def receive_ends_when_cancelled(layer: BaseChannelLayer) -> bool:
    """Whether a cancellation always ends ``layer.receive``, so that it needs no task of
    its own (see :func:`receive_to_the_end`).

    On Python 3.12 and later, every layer's does. Before, only a receive known to await
    nothing but an ``asyncio.Queue`` qualifies: Channels' in-memory layer's own (a
    subclass that overrides ``receive`` does not). channels-redis' layers go through
    redis-py, whose commands use ``wait_for``; any other layer is not known.
    """
    if not _WAIT_FOR_MAY_SWALLOW_CANCELLATION:
        return True
    return getattr(type(layer), "receive", None) is InMemoryChannelLayer.receive


async def receive_to_the_end(layer: BaseChannelLayer, channel: str) -> dict[str, Any]:
    if receive_ends_when_cancelled(layer):
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
        # Decided once: a receive that ends when cancelled is awaited in the caller's
        # task, one task (and its frames) fewer per waiting connection.
        self._receive_directly = receive_ends_when_cancelled(layer)
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
        observing.observer.layer_watched(alias)

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
                observing.observer.layer_failure(self._alias)
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
        observing.observer.layer_malformed_message(self._alias)
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
                if self._receive_directly:
                    message: dict[str, Any] = await self._layer.receive(channel)
                    return message
                return await receive_to_the_end(self._layer, channel)
            except Exception as error:
                if is_undecodable(error):
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
            observing.observer.layer_retry(self._alias)
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


def is_undecodable(error: Exception) -> bool:
    """Whether a receive failed on the message it took (bytes that do not decode to a
    message), not on the layer: channels-redis decodes after it took the message."""
    unpack_errors = sys.modules.get("msgpack.exceptions")
    if unpack_errors is not None and isinstance(error, unpack_errors.UnpackException):
        return True
    return isinstance(error, ValueError | TypeError | KeyError | AttributeError)


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
