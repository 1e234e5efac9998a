"""The bounded queue of one subscription's notifications.

The fan-out appends to it from its listener task; the subscription's result loop
takes from it. Past its limit the oldest notification is dropped (with a warning, once
per overflow episode), so a subscriber that does not keep up costs bounded memory and
gets the newest notifications when it resumes.

A graceful drain (:mod:`channels_graphql_typed._drain`) asks a queue for
:meth:`NotificationQueue.delivered`: it returns once every notification queued so far
has been taken and handled (the result loop is back for the next one) or dropped. The
operation runner puts the queues its operations open in :data:`operation_queues`.
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import contextlib
import contextvars
from typing import Any, Final

from . import _observability as observing
from ._log import logger

DEFAULT_NOTIFICATION_QUEUE_LIMIT: Final = 1000


_END: Final = object()

operation_queues: contextvars.ContextVar[list[NotificationQueue] | None] = contextvars.ContextVar(
    "channels_graphql_typed_operation_queues", default=None
)
"""Where each queue created in an operation's task registers itself (set by the runner)."""


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
        self._high_water = 0
        self.dropped = 0
        # For delivered(): the notifications put, and those no longer queued when the
        # latest get() began (taken and handled by the result loop, or dropped).
        self._put_count = 0
        self._handled_count = 0
        self._delivery_waiters: list[tuple[int, asyncio.Future[None]]] | None = None
        queues = operation_queues.get()
        if queues is not None:
            queues.append(self)
        self.sent_at: float | None = None
        """The broadcast time of the notification ``get`` returned last (None: unknown)."""

    def __len__(self) -> int:
        return 0 if self._items is None else len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: Any, sent_at: float | None = None) -> None:
        """Append ``item``, broadcast at ``sent_at`` (seconds since the epoch)."""
        if self._closed:
            return
        items = self._items
        if items is None:
            items = self._items = collections.deque()
        self._put_count += 1
        if self._limit is not None and len(items) >= self._limit:
            items.popleft()
            self.dropped += 1
            observing.observer.notification_dropped(self._name)
            if not self._overflowing:
                # One warning per overflow episode, not one per dropped notification.
                self._overflowing = True
                logger.warning(
                    "Subscriber %s does not keep up: its queue reached %d notifications; "
                    "the oldest are dropped",
                    self._name,
                    self._limit,
                )
        items.append((item, sent_at))
        if len(items) > self._high_water:
            # Reported only when this queue passes its own mark: rarely, after warm-up.
            self._high_water = len(items)
            observing.observer.queue_high_water(self._name, self._high_water)
        self._wake()

    def close(self) -> None:
        """No more notifications: ``get`` returns what is queued, then ``END``."""
        self._closed = True
        self._wake()

    async def delivered(self) -> None:
        """Return once every notification put so far has been handled: taken by a
        ``get`` that was followed by another (the taker is done with it), or dropped."""
        target = self._put_count
        if self._handled_count >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._delivery_waiters is None:
            self._delivery_waiters = []
        self._delivery_waiters.append((target, waiter))
        try:
            await waiter
        finally:
            if self._delivery_waiters is not None:
                with contextlib.suppress(ValueError):  # already resolved and taken out
                    self._delivery_waiters.remove((target, waiter))

    def _handled(self) -> None:
        self._handled_count = self._put_count - len(self)
        if self._delivery_waiters:
            waiting = []
            for target, waiter in self._delivery_waiters:
                if target <= self._handled_count:
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    waiting.append((target, waiter))
            self._delivery_waiters = waiting or None

    async def get(self) -> Any:
        """The next notification, or :data:`END` once closed and drained."""
        self._handled()
        while not self._items:
            if self._closed:
                return _END
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item, self.sent_at = self._items.popleft()
        if not self._items:
            self._items = None
            self._overflowing = False
        return item

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


END: Final = _END


CATCH_UP: Final = object()
"""Queued by the fan-out to a resumable subscription once it joined its groups again
after a failure of the channel layer: what was broadcast meanwhile is to be read from
the history (see :mod:`channels_graphql_typed._replay`)."""


class Registration:
    """One subscription's membership in the local fan-out."""

    __slots__ = ("groups", "queue", "resumable")

    def __init__(self, queue: NotificationQueue, *, resumable: bool = False) -> None:
        self.queue = queue
        self.groups: set[str] = set()
        self.resumable = resumable
        """Whether the subscription catches up from a history (it gets
        :data:`CATCH_UP` after a re-join), rather than missing what the layer lost."""
