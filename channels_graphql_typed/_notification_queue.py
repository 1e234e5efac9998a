"""The bounded queue of one subscription's notifications.

The fan-out appends to it from its listener task; the subscription's result loop
takes from it. Past its limit the oldest notification is dropped (with a warning, once
per overflow episode), so a subscriber that does not keep up costs bounded memory and
gets the newest notifications when it resumes.
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
from typing import Any, Final

from ._log import logger

DEFAULT_NOTIFICATION_QUEUE_LIMIT: Final = 1000


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
