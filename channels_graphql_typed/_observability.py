"""The seam through which the library reports what it does, for metrics and traces.

Theory of operation
-------------------
The layers call :data:`observer` at the few points that matter: a connection opens or
closes, an operation starts and ends, a subscription opens, delivers, skips or drops a
notification, the fan-out's channel layer fails. By default :data:`observer` is an
:class:`Observer`, whose methods do nothing, and each operation's
:class:`OperationObserver` is one shared object that does nothing either: nothing of
``prometheus_client`` or ``opentelemetry`` is imported, and what an observation costs
is one call of an empty method.

:mod:`channels_graphql_typed.observability` replaces :data:`observer` once, at start-up
(from the Django settings, or by a call): with the Prometheus metrics of
:mod:`channels_graphql_typed._prometheus`, the OpenTelemetry spans of
:mod:`channels_graphql_typed._tracing`, or both (:class:`Observers`). Every call site
reads the module attribute when it runs, so the replacement takes effect everywhere.

What an event carries from its broadcast to its delivery
--------------------------------------------------------
A broadcast's time (the sender's wall clock) travels in the channel-layer message
(:func:`~channels_graphql_typed._layer_messages.read_layer_message` checks it), then in
the subscriber's queue. When a subscription takes a notification that it will deliver,
and an observer is enabled, it records the broadcast time and the moment it took the
notification in :data:`delivering` (a context variable of the operation's task); the
runner's observation reads it once the result is sent.
"""

from __future__ import annotations

import contextvars
from typing import Final


class OperationObserver:
    """One operation, as the observers see it; this base observes nothing.

    The runner calls ``prepared`` once the operation's type is known, ``failed`` when it
    ends without running (or with a failure of the server), ``subscribed`` once a
    subscription is in all its groups, ``delivered`` after each result of a
    subscription is sent, and ``ended`` once, whatever happened.
    """

    __slots__ = ()

    def prepared(self, operation_type: str, name: str | None, document: str) -> None:
        """The operation is parsed and validated: ``operation_type`` is ``query``,
        ``mutation`` or ``subscription``; ``name`` its name in the document."""

    def failed(self, reason: str) -> None:
        """The operation ends without a result of its own (see the metrics table of the
        observability guide for the reasons)."""

    def subscribed(self) -> None:
        """The subscription is in all its groups: its subscribe phase is over."""

    def delivered(self) -> None:
        """One result of the subscription was sent."""

    def observes_deliveries(self) -> bool:
        """Whether ``delivered`` does anything for this subscription (asked once it is
        subscribed): if not, :class:`Observers` does not call it for every result."""
        return type(self).delivered is not OperationObserver.delivered

    def ended(self) -> None:
        """The operation is over (called once)."""


NO_OPERATION: Final = OperationObserver()
"""The observation of every operation while nothing observes."""


class Observer:
    """What the layers report; this base, the default, does nothing with it."""

    __slots__ = ()

    enabled = False
    """Whether anything observes (lets the hot paths skip what only observers need)."""

    def operation(self) -> OperationObserver:
        """The observation of an operation that starts now."""
        return NO_OPERATION

    def connection_opened(self, transport: str, protocol: str) -> None:
        """A connection was accepted (``websocket`` with its subprotocol, or ``http``)."""

    def connection_closed(self, transport: str, protocol: str, code: int) -> None:
        """It ended: ``code`` is the WebSocket close code, or the HTTP status."""

    def subscription_opened(self, subscription: str) -> None:
        """A typed subscription (its class's qualified name) joined its groups."""

    def subscription_closed(self, subscription: str) -> None:
        """It left them."""

    def notification_skipped(self, subscription: str) -> None:
        """``publish`` returned ``SKIP`` for one subscriber."""

    def notification_dropped(self, subscription: str) -> None:
        """A subscriber's full queue dropped its oldest notification."""

    def queue_high_water(self, subscription: str, depth: int) -> None:
        """A queue of the class reached ``depth`` notifications, more than before."""

    def subscription_result(self, *, shared: bool) -> None:
        """An event's result was executed (``shared`` False) or taken from the results
        shared by equal subscriptions (True)."""

    def layer_watched(self, alias: str) -> None:
        """The fan-out uses the channel layer ``alias`` (its counters start at zero)."""

    def layer_failure(self, alias: str) -> None:
        """An episode of failures of the channel layer began."""

    def layer_retry(self, alias: str) -> None:
        """A round trip to the failing layer was tried again."""

    def layer_malformed_message(self, alias: str) -> None:
        """A message from the layer was dropped as malformed."""


class Observers(Observer):
    """Several observers (metrics and traces) as one.

    What is reported per notification goes only to the observers that override its
    method: the others' would do nothing, at the cost of a call per subscriber.
    """

    __slots__ = ("_dropped", "_observers", "_results", "_skipped")

    enabled = True

    def __init__(self, observers: tuple[Observer, ...]) -> None:
        self._observers = observers
        self._skipped = _overriding(observers, "notification_skipped")
        self._dropped = _overriding(observers, "notification_dropped")
        self._results = _overriding(observers, "subscription_result")

    def operation(self) -> OperationObserver:
        return _OperationObservers(tuple(each.operation() for each in self._observers))

    def connection_opened(self, transport: str, protocol: str) -> None:
        for each in self._observers:
            each.connection_opened(transport, protocol)

    def connection_closed(self, transport: str, protocol: str, code: int) -> None:
        for each in self._observers:
            each.connection_closed(transport, protocol, code)

    def subscription_opened(self, subscription: str) -> None:
        for each in self._observers:
            each.subscription_opened(subscription)

    def subscription_closed(self, subscription: str) -> None:
        for each in self._observers:
            each.subscription_closed(subscription)

    def notification_skipped(self, subscription: str) -> None:
        for each in self._skipped:
            each.notification_skipped(subscription)

    def notification_dropped(self, subscription: str) -> None:
        for each in self._dropped:
            each.notification_dropped(subscription)

    def queue_high_water(self, subscription: str, depth: int) -> None:
        for each in self._observers:
            each.queue_high_water(subscription, depth)

    def subscription_result(self, *, shared: bool) -> None:
        for each in self._results:
            each.subscription_result(shared=shared)

    def layer_watched(self, alias: str) -> None:
        for each in self._observers:
            each.layer_watched(alias)

    def layer_failure(self, alias: str) -> None:
        for each in self._observers:
            each.layer_failure(alias)

    def layer_retry(self, alias: str) -> None:
        for each in self._observers:
            each.layer_retry(alias)

    def layer_malformed_message(self, alias: str) -> None:
        for each in self._observers:
            each.layer_malformed_message(alias)


def _overriding(observers: tuple[Observer, ...], method: str) -> tuple[Observer, ...]:
    """The observers whose ``method`` is not the base's, which does nothing."""
    nothing = getattr(Observer, method)
    return tuple(each for each in observers if getattr(type(each), method) is not nothing)


class _OperationObservers(OperationObserver):
    __slots__ = ("_delivering", "_observers")

    def __init__(self, observers: tuple[OperationObserver, ...]) -> None:
        self._observers = observers
        self._delivering = observers
        """The observers of each delivered result: once subscribed, those it concerns."""

    def prepared(self, operation_type: str, name: str | None, document: str) -> None:
        for each in self._observers:
            each.prepared(operation_type, name, document)

    def failed(self, reason: str) -> None:
        for each in self._observers:
            each.failed(reason)

    def subscribed(self) -> None:
        for each in self._observers:
            each.subscribed()
        self._delivering = tuple(each for each in self._observers if each.observes_deliveries())

    def delivered(self) -> None:
        for each in self._delivering:
            each.delivered()

    def observes_deliveries(self) -> bool:
        return bool(self._delivering)

    def ended(self) -> None:
        for each in self._observers:
            each.ended()


observer: Observer = Observer()
"""What the layers report to; replaced by :mod:`channels_graphql_typed.observability`."""


delivering: contextvars.ContextVar[tuple[float | None, int] | None] = contextvars.ContextVar(
    "channels_graphql_typed_delivering", default=None
)
"""The notification a subscription is delivering, while an observer is enabled: its
broadcast time (seconds since the epoch, on the sender's clock; None when the message
carried none) and when the subscription took it from its queue (``time.time_ns()``)."""
