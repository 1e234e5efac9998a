"""The library's metrics, through ``prometheus_client`` (the ``[prometheus]`` extra).

Imported only once metrics are enabled (:mod:`channels_graphql_typed.observability`).
The names, labels and meanings are a stable interface, documented in the observability
guide's table: a dashboard built on them must not break on an upgrade.

Labels take few values: a transport, a subprotocol, a close code, an operation type, a
failure reason, a subscription class or a channel layer alias. No label holds what a
client chose (an operation's name, a group), which would let one client create series
without bound. The hot paths (every notification of every subscriber) look their
labelled series up in dictionaries of their own, not through ``labels()``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from prometheus_client import Counter, Gauge, Histogram

from . import _log as log_where
from ._observability import Observer, OperationObserver, delivering

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

PREFIX: Final = "channels_graphql"

LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds, for the broadcast-to-send latency and the operation duration."""

UNKNOWN_TYPE: Final = "unknown"
"""The ``type`` label of an operation that failed before its type was known."""


class PrometheusMetrics(Observer):
    """Every metric of the library, registered in one ``CollectorRegistry``."""

    __slots__ = (
        "_delivered",
        "_dropped",
        "_executed_results",
        "_high_water",
        "_latency",
        "_shared_results",
        "_skipped",
        "_subscriptions",
        "connections_closed",
        "connections_open",
        "connections_opened",
        "layer_failures",
        "layer_malformed_messages",
        "layer_retries",
        "notification_latency",
        "notification_queue_high_water",
        "notifications_delivered",
        "notifications_dropped",
        "notifications_skipped",
        "operation_duration",
        "operations_completed",
        "operations_failed",
        "operations_started",
        "subscription_results",
        "subscriptions_active",
    )

    enabled = True

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, documentation: str, labels: tuple[str, ...]) -> Counter:
            return Counter(f"{PREFIX}_{name}", documentation, labels, registry=registry)

        def gauge(name: str, documentation: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", documentation, labels, registry=registry)

        def histogram(name: str, documentation: str, labels: tuple[str, ...]) -> Histogram:
            return Histogram(
                f"{PREFIX}_{name}",
                documentation,
                labels,
                registry=registry,
                buckets=LATENCY_BUCKETS,
            )

        self.connections_opened = counter(
            "connections_opened", "Connections accepted.", ("transport", "protocol")
        )
        self.connections_open = gauge(
            "connections_open", "Connections open now.", ("transport", "protocol")
        )
        self.connections_closed = counter(
            "connections_closed",
            "Connections ended, by WebSocket close code or HTTP status.",
            ("transport", "code"),
        )
        self.operations_started = counter(
            "operations_started", "Operations prepared and started, by type.", ("type",)
        )
        self.operations_completed = counter(
            "operations_completed", "Operations that ended without failing, by type.", ("type",)
        )
        self.operations_failed = counter(
            "operations_failed", "Operations that failed, by type and reason.", ("type", "reason")
        )
        self.operation_duration = histogram(
            "operation_duration_seconds",
            "Seconds from a query's or mutation's arrival to the end of its result.",
            ("type",),
        )
        self.subscriptions_active = gauge(
            "subscriptions_active", "Typed subscriptions in their groups now.", ("subscription",)
        )
        self.notifications_delivered = counter(
            "notifications_delivered", "Subscription results sent.", ("subscription",)
        )
        self.notifications_skipped = counter(
            "notifications_skipped", "Notifications that publish() skipped.", ("subscription",)
        )
        self.notifications_dropped = counter(
            "notifications_dropped",
            "Notifications dropped by a subscriber's full queue.",
            ("subscription",),
        )
        self.notification_queue_high_water = gauge(
            "notification_queue_high_water",
            "The most notifications any one subscriber's queue has held.",
            ("subscription",),
        )
        self.notification_latency = histogram(
            "notification_latency_seconds",
            "Seconds from a broadcast to the send of its result to one subscriber.",
            ("subscription",),
        )
        self.subscription_results = counter(
            "subscription_results",
            "Subscription results executed, or taken from the results shared by equal "
            "subscriptions.",
            ("source",),
        )
        self.layer_failures = counter(
            "channel_layer_failure_episodes",
            "Episodes of failures of a channel layer (each logged once).",
            ("layer",),
        )
        self.layer_retries = counter(
            "channel_layer_retries", "Round trips retried on a failing channel layer.", ("layer",)
        )
        self.layer_malformed_messages = counter(
            "channel_layer_malformed_messages",
            "Messages from a channel layer dropped as malformed.",
            ("layer",),
        )
        # The series of the hot paths, by subscription class.
        self._delivered: dict[str, Counter] = {}
        self._skipped: dict[str, Counter] = {}
        self._dropped: dict[str, Counter] = {}
        self._latency: dict[str, Histogram] = {}
        self._subscriptions: dict[str, Gauge] = {}
        self._high_water: dict[str, int] = {}
        self._executed_results = self.subscription_results.labels("executed")
        self._shared_results = self.subscription_results.labels("shared")

    # --- what the layers report -------------------------------------------------------------

    def operation(self) -> OperationObserver:
        return _MeasuredOperation(self)

    def connection_opened(self, transport: str, protocol: str) -> None:
        self.connections_opened.labels(transport, protocol).inc()
        self.connections_open.labels(transport, protocol).inc()

    def connection_closed(self, transport: str, protocol: str, code: int) -> None:
        self.connections_open.labels(transport, protocol).dec()
        self.connections_closed.labels(transport, str(code)).inc()

    def subscription_opened(self, subscription: str) -> None:
        self._subscription_gauge(subscription).inc()

    def subscription_closed(self, subscription: str) -> None:
        self._subscription_gauge(subscription).dec()

    def notification_skipped(self, subscription: str) -> None:
        _series(self._skipped, self.notifications_skipped, subscription).inc()

    def notification_dropped(self, subscription: str) -> None:
        _series(self._dropped, self.notifications_dropped, subscription).inc()

    def queue_high_water(self, subscription: str, depth: int) -> None:
        if depth > self._high_water.get(subscription, 0):
            self._high_water[subscription] = depth
            self.notification_queue_high_water.labels(subscription).set(depth)

    def subscription_result(self, *, shared: bool) -> None:
        (self._shared_results if shared else self._executed_results).inc()

    def layer_watched(self, alias: str) -> None:
        for metric in (self.layer_failures, self.layer_retries, self.layer_malformed_messages):
            metric.labels(alias)

    def layer_failure(self, alias: str) -> None:
        self.layer_failures.labels(alias).inc()

    def layer_retry(self, alias: str) -> None:
        self.layer_retries.labels(alias).inc()

    def layer_malformed_message(self, alias: str) -> None:
        self.layer_malformed_messages.labels(alias).inc()

    # --- series ------------------------------------------------------------------------------

    def _subscription_gauge(self, subscription: str) -> Gauge:
        gauge = self._subscriptions.get(subscription)
        if gauge is None:
            gauge = self._subscriptions[subscription] = self.subscriptions_active.labels(
                subscription
            )
        return gauge

    def delivery_series(self, subscription: str) -> tuple[Counter, Histogram]:
        """The delivered counter and the latency histogram of ``subscription``."""
        latency = self._latency.get(subscription)
        if latency is None:
            latency = self._latency[subscription] = self.notification_latency.labels(subscription)
        return _series(self._delivered, self.notifications_delivered, subscription), latency


def _series(cache: dict[str, Counter], metric: Counter, subscription: str) -> Counter:
    series = cache.get(subscription)
    if series is None:
        series = cache[subscription] = metric.labels(subscription)
    return series


class _MeasuredOperation(OperationObserver):
    __slots__ = ("_delivery", "_failure", "_metrics", "_started", "_type")

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics
        self._started = time.perf_counter()
        self._type = UNKNOWN_TYPE
        self._failure: str | None = None
        self._delivery: tuple[Counter, Histogram] | None = None
        """The subscription's series, looked up at its first delivery."""

    def prepared(self, operation_type: str, name: str | None, document: str) -> None:
        self._type = operation_type
        self._metrics.operations_started.labels(operation_type).inc()

    def failed(self, reason: str) -> None:
        self._failure = reason

    def delivered(self) -> None:
        delivery = self._delivery
        if delivery is None:
            subscription = log_where.subscription_class.get() or ""
            delivery = self._delivery = self._metrics.delivery_series(subscription)
        delivery[0].inc()
        notification = delivering.get()
        if notification is not None and notification[0] is not None:
            # Another host's clock may be ahead of this one's: never a negative latency.
            delivery[1].observe(max(0.0, time.time() - notification[0]))

    def ended(self) -> None:
        metrics = self._metrics
        if self._failure is not None:
            metrics.operations_failed.labels(self._type, self._failure).inc()
            return
        metrics.operations_completed.labels(self._type).inc()
        if self._type != "subscription":
            metrics.operation_duration.labels(self._type).observe(
                time.perf_counter() - self._started
            )
