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

Group names are namespaced per subscription class and always valid Channels group
names: see :func:`group_name`.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import re
import weakref
from typing import TYPE_CHECKING, Any, Final

from channels.layers import get_channel_layer

from .serialization import deserialize_payload

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

logger = logging.getLogger("channels_graphql_typed")

NOTIFY: Final = "cgt.notify"
UNSUBSCRIBE: Final = "cgt.unsubscribe"
DEFAULT_NOTIFICATION_QUEUE_LIMIT: Final = 1000

_SAFE_GROUP = re.compile(r"[A-Za-z0-9_\-.]{1,48}")


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


class FanOut:
    """The fan-out of one event loop for one channel layer."""

    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer
        self.members: dict[str, set[Registration]] = {}
        self._channel: str | None = None
        self._listener: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def channel(self) -> str | None:
        """This process's channel, while it has local subscriptions."""
        return self._channel

    @property
    def listening(self) -> bool:
        """Whether the listener task runs (it does while there are local subscriptions)."""
        return self._listener is not None

    async def join(self, registration: Registration, groups: set[str]) -> None:
        """Add the subscription to the groups; returns once the channel layer has them."""
        async with self._lock:
            channel = await self._ensure_channel()
            for group in sorted(groups - registration.groups):
                # Record first: if this is cancelled half-way, leave() still undoes it.
                registration.groups.add(group)
                members = self.members.setdefault(group, set())
                members.add(registration)
                if len(members) == 1:
                    await self.layer.group_add(group, channel)

    async def leave(self, registration: Registration) -> None:
        """Remove the subscription from all its groups."""
        async with self._lock:
            groups, registration.groups = registration.groups, set()
            for group in sorted(groups):
                members = self.members.get(group)
                if members is None:
                    continue
                members.discard(registration)
                if not members:
                    del self.members[group]
                    if self._channel is not None:
                        await self.layer.group_discard(group, self._channel)
            if not self.members:
                await self._stop()

    async def _ensure_channel(self) -> str:
        # A fresh channel per busy period: a layer may forget a channel whose receive()
        # was cancelled (channels-redis' pub/sub layer does), and layers drop the buffers
        # of channels nobody receives from.
        if self._channel is None:
            self._channel = await self.layer.new_channel()
        if self._listener is None:
            self._listener = asyncio.ensure_future(self._listen(self._channel))
        return self._channel

    async def _stop(self) -> None:
        listener, self._listener, self._channel = self._listener, None, None
        if listener is not None:
            listener.cancel()
            try:
                await listener
            except asyncio.CancelledError:
                # Our own cancellation of the listener, or of the caller: re-raise the
                # latter only.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise

    async def _listen(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Receiving from the channel layer failed; retrying")
                await asyncio.sleep(1)
                continue
            self.dispatch(message)

    def dispatch(self, message: dict[str, Any]) -> None:
        """Deliver one channel-layer message to the local subscriptions of its group."""
        group = message.get("group")
        members = self.members.get(group) if isinstance(group, str) else None
        if not members:
            return
        match message.get("type"):
            case "cgt.notify":
                try:
                    payload = deserialize_payload(message["payload"])
                except Exception:
                    logger.exception("Cannot decode a broadcast payload for group %s", group)
                    return
                for registration in members:
                    registration.queue.put(payload)
            case "cgt.unsubscribe":
                for registration in members:
                    registration.queue.close()


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, FanOut]] = (
    weakref.WeakKeyDictionary()
)


def get_fanout(alias: str) -> FanOut:
    """The fan-out of the running event loop for the channel layer ``alias``."""
    loop = asyncio.get_running_loop()
    by_alias = _fanouts.setdefault(loop, {})
    fanout = by_alias.get(alias)
    if fanout is None:
        layer = get_channel_layer(alias)
        if layer is None:
            raise RuntimeError(
                f"Typed subscriptions need a channel layer: CHANNEL_LAYERS[{alias!r}] is not set"
            )
        fanout = by_alias[alias] = FanOut(layer)
    return fanout
