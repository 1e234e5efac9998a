"""A limit on failed logins: at most ``max_failures`` in any ``window`` seconds per key.

A login attempt names its keys (the example uses two: the username, and the connection
or client address it comes from) and asks :meth:`LoginAttemptLimiter.begin` before any
password is hashed. ``begin`` refuses, raising :class:`TooManyLoginAttempts` with the
seconds to wait, when one of the keys already has ``max_failures`` attempts in the
window; otherwise it counts the attempt at once, against every key, as failed until
:meth:`LoginAttemptLimiter.succeeded` says otherwise. So attempts that run
concurrently (a client may send many logins at once over one socket) are counted
while they run, and no more than ``max_failures`` of them are ever hashed.

Memory is bounded: each key keeps at most ``max_failures`` attempts, a key is forgotten
once its last failure leaves the window, and at most ``max_keys`` keys are kept (past
that, the least recently failed key is forgotten first).

The counts live in this process's memory, which suits the example's single server
process. Several server processes would each count on their own, multiplying the
limit; they would keep the counts in a store they share instead (Django's cache
framework on Redis, for example).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


class TooManyLoginAttempts(Exception):
    """A login refused before its password is checked: too many recent failures.

    ``retry_after`` is how many seconds until an attempt is allowed again, rounded up.
    """

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"Too many login attempts; try again in {self.retry_after} s")


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class LoginAttempt:
    """An attempt that :meth:`LoginAttemptLimiter.begin` allowed and counts (equal
    only to itself: two attempts of the same keys and time are two)."""

    keys: tuple[str, ...]
    started: float


class LoginAttemptLimiter:
    """Counts failed login attempts per key in a sliding window (see the module)."""

    def __init__(
        self,
        *,
        max_failures: int,
        window: float,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window <= 0 or max_keys < 1:
            raise ValueError("max_failures, window and max_keys must be positive")
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        # Key -> its failed (or still running) attempts in the window, oldest first.
        # The keys are in the order of their last attempt, oldest first.
        self._attempts: collections.OrderedDict[str, collections.deque[LoginAttempt]] = (
            collections.OrderedDict()
        )

    def __len__(self) -> int:
        """How many keys are remembered."""
        return len(self._attempts)

    def begin(self, keys: Iterable[str]) -> LoginAttempt:
        """Count an attempt against ``keys``, or raise :class:`TooManyLoginAttempts`."""
        keys = tuple(dict.fromkeys(keys))
        now = self._clock()
        self._forget_expired(now)
        wait = 0.0
        for key in keys:
            times = self._attempts.get(key)
            if times is None:
                continue
            self._drop_expired(times, now)
            if len(times) >= self.max_failures:
                wait = max(wait, times[0].started + self.window - now)
        if wait > 0:
            raise TooManyLoginAttempts(wait)
        attempt = LoginAttempt(keys, now)
        for key in keys:
            times = self._attempts.pop(key, None)
            if times is None:
                times = collections.deque(maxlen=self.max_failures)
            times.append(attempt)
            self._attempts[key] = times
        while len(self._attempts) > self.max_keys:
            self._attempts.popitem(last=False)
        return attempt

    def succeeded(self, attempt: LoginAttempt) -> None:
        """The attempt's password was right: it is not a failure."""
        for key in attempt.keys:
            times = self._attempts.get(key)
            if times is not None and attempt in times:
                times.remove(attempt)

    def _drop_expired(self, times: collections.deque[LoginAttempt], now: float) -> None:
        while times and times[0].started <= now - self.window:
            times.popleft()

    def _forget_expired(self, now: float) -> None:
        # The first key is the one whose last attempt is the oldest: once that attempt
        # has left the window, all of the key's attempts have.
        while self._attempts:
            times = next(iter(self._attempts.values()))
            if times and times[-1].started > now - self.window:
                return
            self._attempts.popitem(last=False)
