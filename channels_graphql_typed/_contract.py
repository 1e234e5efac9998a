"""The contract between typed subscriptions and execution: what each side may rely on.

Typed subscriptions (:mod:`channels_graphql_typed._subscription`) and execution
(:mod:`channels_graphql_typed._execution` and its helpers) do not import each other; what
one tells the other goes through this module:

* A typed subscription's root field resolver is marked with its class
  (:func:`mark_typed_subscription`, read by :func:`typed_subscription_of`): only such
  fields may have their results shared between subscribers.
* Each result of a typed subscription is a :class:`TypedSubscriptionResult`: its
  ``_cgt_event_key`` gives the values that determine its GraphQL result, so that equal
  results are executed once.

The operation runner (:mod:`channels_graphql_typed._runner`) sets
:data:`current_operation` in each operation's task before it hands the operation to
graphql-core; a typed subscription set up inside that task reads the server's settings
from it. Executed by any other server, a typed subscription finds
nothing there and uses the defaults.

A notification whose ``publish`` raised travels down the response stream as a
:class:`PublishFailure`; the executor's resolver wrapper for subscription root fields
raises its error there, so the client gets it as a GraphQL error of that one
notification and the subscription goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
from typing import TYPE_CHECKING, Final, Protocol

from ._log import logger

if TYPE_CHECKING:
    from collections.abc import Callable

INTERNAL_ERROR_MESSAGE: Final = "Internal server error"
"""What a client gets for a failure of the server that is not its business (the
exception is logged, with its traceback, once)."""

DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION: Final = 100
"""Most groups one subscription's ``subscribe`` may return (besides its class's default
group): each costs a round trip to the channel layer and a membership there."""


_TYPED_SUBSCRIPTION_MARKER: Final = "__cgt_subscription_class__"


def mark_typed_subscription(resolver: Callable[..., object], cls: type) -> None:
    """Mark ``resolver`` as the root field resolver of the typed subscription ``cls``."""
    setattr(resolver, _TYPED_SUBSCRIPTION_MARKER, cls)


def typed_subscription_of(resolver: object) -> type | None:
    """The typed subscription class whose root field ``resolver`` resolves, if any."""
    cls = getattr(resolver, _TYPED_SUBSCRIPTION_MARKER, None)
    return cls if isinstance(cls, type) else None


class TypedSubscriptionResult(Protocol):
    """What execution asks of each result of a typed subscription field."""

    def _cgt_event_key(self) -> tuple[object, ...]:
        """The values that determine this result's GraphQL result: two results of one
        class with exactly equal values (same types, same texts) render the same for
        the subscribers of equal operations. Every field of the result counts, those a
        ``publish`` sets per subscriber included."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class OperationSettings:
    notification_queue_limit: int | None
    """The consumer's default bound of a subscriber's notification queue."""
    max_groups_per_subscription: int | None = DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION
    """The consumer's default bound of the groups one subscription joins."""


current_operation: contextvars.ContextVar[OperationSettings | None] = contextvars.ContextVar(
    "channels_graphql_typed_current_operation", default=None
)


PUBLISH_FAILURE_WINDOW: Final = 10.0
"""Seconds during which the same failure of one class's ``publish`` is reported once."""

ALREADY_REPORTED: Final = "__cgt_already_reported__"
"""Set on an exception whose equal was reported moments ago: error processing skips it."""


class PublishFailureLog:
    """Reports the same failure of a class's ``publish`` once, not once per subscriber.

    A broadcast to a thousand subscribers whose ``publish`` fails the same way would
    otherwise log a thousand tracebacks. The first failure (class, exception type and
    text) goes through error processing as usual; equal ones in the next
    :data:`PUBLISH_FAILURE_WINDOW` seconds are marked :data:`ALREADY_REPORTED` (each
    subscriber still gets its error) and counted, and the count is logged once the
    window closes.
    """

    def __init__(self, window: float = PUBLISH_FAILURE_WINDOW) -> None:
        self._window = window
        self._counts: dict[tuple[str, type[BaseException], str], int] = {}

    def failed(self, class_name: str, error: Exception) -> None:
        key = (class_name, type(error), str(error)[:200])
        if key in self._counts:
            self._counts[key] += 1
            with contextlib.suppress(AttributeError):
                setattr(error, ALREADY_REPORTED, True)
            return
        self._counts[key] = 0
        try:
            # In an empty context: the summary is about every subscriber, not the
            # connection whose failure came first.
            asyncio.get_running_loop().call_later(
                self._window, self._close, key, context=contextvars.Context()
            )
        except RuntimeError:
            del self._counts[key]  # no loop: nothing to group with

    def _close(self, key: tuple[str, type[BaseException], str]) -> None:
        more = self._counts.pop(key, 0)
        if more:
            logger.error(
                "%s.publish raised %s again for %d more notification(s) in %g s "
                "(reported once above)",
                key[0],
                key[1].__name__,
                more,
                self._window,
            )


publish_failures = PublishFailureLog()


@dataclasses.dataclass(frozen=True, slots=True)
class PublishFailure:
    """A notification whose ``publish`` raised ``error``."""

    error: Exception


delivered_event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "channels_graphql_typed_delivered_event_id", default=None
)
"""Set by a resumable subscription's stream, in the task that takes its next event, to
that event's id; the executor reads it (and sets it back to None) to put the id in the
event's result, and to keep results of different events apart when sharing them."""


@dataclasses.dataclass(frozen=True, slots=True)
class EventsMissed:
    """Sent down a resumable subscription's stream instead of an event: the client's
    resume id is no longer in the history, so events may have been missed. The executor
    turns it into a result with one error of code ``EVENTS_MISSED``."""

    message: str
