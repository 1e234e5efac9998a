"""The library's metrics, through ``prometheus_client`` (the ``[prometheus]`` extra).

Imported only once metrics are enabled (:mod:`channels_graphql_typed.observability`).
The names, labels and meanings are a stable interface, documented in the observability
guide's table: a dashboard built on them must not break on an upgrade.

Labels take few values: a transport, a subprotocol, a close code, an operation type, a
failure reason, a subscription class or a channel layer alias. No label holds what a
client chose (an operation's name, a group), which would let one client create series
without bound.

The series of the hot paths (every notification of every subscriber: delivered,
skipped, dropped, its latency, shared or executed results) are not ``prometheus_client``
metrics, whose every update takes a lock and walks its buckets: they are plain numbers
of :class:`_HotSeries`, updated by the event loop that delivers, and turned into metric
families when the registry is collected (a scrape). The exposition is the same as a
``Counter``'s or ``Histogram``'s of the same name.
"""

from __future__ import annotations

import bisect
import time
from typing import TYPE_CHECKING, Final, cast

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import _log as log_where
from ._observability import Observer, OperationObserver, delivering

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

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

_go_float = cast("Callable[[float], str]", floatToGoString)  # untyped in the package

UNKNOWN_TYPE: Final = "unknown"
"""The ``type`` label of an operation that failed before its type was known."""


class PrometheusMetrics(Observer):
    """Every metric of the library, registered in one ``CollectorRegistry``."""

    __slots__ = (
        "_high_water",
        "_subscriptions",
        "connections_closed",
        "connections_open",
        "connections_opened",
        "hot",
        "layer_failures",
        "layer_malformed_messages",
        "layer_retries",
        "notification_queue_high_water",
        "operation_duration",
        "operations_completed",
        "operations_failed",
        "operations_started",
        "subscriptions_active",
    )

    enabled = True

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, documentation: str, labels: tuple[str, ...]) -> Counter:
            return Counter(f"{PREFIX}_{name}", documentation, labels, registry=registry)

        def gauge(name: str, documentation: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", documentation, labels, registry=registry)

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
        self.operation_duration = Histogram(
            f"{PREFIX}_operation_duration_seconds",
            "Seconds from a query's or mutation's arrival to the end of its result.",
            ("type",),
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.subscriptions_active = gauge(
            "subscriptions_active", "Typed subscriptions in their groups now.", ("subscription",)
        )
        self.notification_queue_high_water = gauge(
            "notification_queue_high_water",
            "The most notifications any one subscriber's queue has held.",
            ("subscription",),
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
        self.hot = _HotSeries()
        registry.register(self.hot)
        self._subscriptions: dict[str, Gauge] = {}
        self._high_water: dict[str, int] = {}

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
        self.hot.series(self.hot.skipped, subscription).value += 1

    def notification_dropped(self, subscription: str) -> None:
        self.hot.series(self.hot.dropped, subscription).value += 1

    def queue_high_water(self, subscription: str, depth: int) -> None:
        if depth > self._high_water.get(subscription, 0):
            self._high_water[subscription] = depth
            self.notification_queue_high_water.labels(subscription).set(depth)

    def subscription_result(self, *, shared: bool) -> None:
        (self.hot.shared if shared else self.hot.executed).value += 1

    def layer_watched(self, alias: str) -> None:
        for metric in (self.layer_failures, self.layer_retries, self.layer_malformed_messages):
            metric.labels(alias)

    def layer_failure(self, alias: str) -> None:
        self.layer_failures.labels(alias).inc()

    def layer_retry(self, alias: str) -> None:
        self.layer_retries.labels(alias).inc()

    def layer_malformed_message(self, alias: str) -> None:
        self.layer_malformed_messages.labels(alias).inc()

    def _subscription_gauge(self, subscription: str) -> Gauge:
        gauge = self._subscriptions.get(subscription)
        if gauge is None:
            gauge = self._subscriptions[subscription] = self.subscriptions_active.labels(
                subscription
            )
        return gauge


class _Count:
    """One series of a counter: its value and when it was created."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()


class _Latency:
    """One series of the latency histogram: the count of each bucket (not cumulative;
    the last one is ``+Inf``), the sum and when it was created."""

    __slots__ = ("buckets", "created", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        # A bucket's bound is inclusive (``le``): the first bound at or above the value.
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sum += seconds


_BOUNDS: Final = (*(_go_float(bound) for bound in LATENCY_BUCKETS), "+Inf")
"""The ``le`` labels of the latency buckets, as ``prometheus_client`` writes them."""


class _HotSeries(Collector):
    """The metrics updated per notification, as plain numbers (see the module's
    docstring), collected into metric families at each scrape.

    A series exists from its first update on, as a ``prometheus_client`` labelled series
    does; the two of ``subscription_results`` from the start. Collecting copies each
    table first: a scrape may run in another thread than the event loop that adds
    series.
    """

    def __init__(self) -> None:
        self.delivered: dict[str, _Count] = {}
        self.skipped: dict[str, _Count] = {}
        self.dropped: dict[str, _Count] = {}
        self.latency: dict[str, _Latency] = {}
        self.executed = _Count()
        self.shared = _Count()

    @staticmethod
    def series(table: dict[str, _Count], subscription: str) -> _Count:
        """The series of ``subscription`` in ``table``, created at its first use."""
        series = table.get(subscription)
        if series is None:
            series = table[subscription] = _Count()
        return series

    def latency_of(self, subscription: str) -> _Latency:
        """The latency series of ``subscription``, created at its first use."""
        series = self.latency.get(subscription)
        if series is None:
            series = self.latency[subscription] = _Latency()
        return series

    def describe(self) -> Iterator[Metric]:
        # The names, for the registry's check that no other metric takes them.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        yield from self._families(
            counts=(
                tuple(self.delivered.items()),
                tuple(self.skipped.items()),
                tuple(self.dropped.items()),
            ),
            latencies=tuple(self.latency.items()),
            results=(("executed", self.executed), ("shared", self.shared)),
        )

    @staticmethod
    def _families(
        counts: tuple[tuple[tuple[str, _Count], ...], ...] = ((), (), ()),
        latencies: tuple[tuple[str, _Latency], ...] = (),
        results: tuple[tuple[str, _Count], ...] = (),
    ) -> Iterator[Metric]:
        for (name, documentation), series in zip(_SUBSCRIPTION_COUNTERS, counts, strict=True):
            family = CounterMetricFamily(
                f"{PREFIX}_{name}", documentation, labels=("subscription",)
            )
            for subscription, count in series:
                family.add_metric((subscription,), count.value, created=count.created)
            yield family
        latency = HistogramMetricFamily(
            f"{PREFIX}_notification_latency_seconds",
            "Seconds from a broadcast to the send of its result to one subscriber.",
            labels=("subscription",),
        )
        for subscription, histogram in latencies:
            cumulative, buckets = 0, []
            for bound, in_bucket in zip(_BOUNDS, list(histogram.buckets), strict=True):
                cumulative += in_bucket
                buckets.append((bound, float(cumulative)))
            latency.add_metric((subscription,), buckets, histogram.sum)
        yield latency
        shared = CounterMetricFamily(
            f"{PREFIX}_subscription_results",
            "Subscription results executed, or taken from the results shared by equal "
            "subscriptions.",
            labels=("source",),
        )
        for source, count in results:
            shared.add_metric((source,), count.value, created=count.created)
        yield shared


_SUBSCRIPTION_COUNTERS: Final = (
    ("notifications_delivered", "Subscription results sent."),
    ("notifications_skipped", "Notifications that publish() skipped."),
    ("notifications_dropped", "Notifications dropped by a subscriber's full queue."),
)
"""The names and help texts of the counters by subscription class, in the order of
:class:`_HotSeries`' tables."""


class _MeasuredOperation(OperationObserver):
    __slots__ = ("_delivered", "_failure", "_latency", "_metrics", "_started", "_type")

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics
        self._started = time.perf_counter()
        self._type = UNKNOWN_TYPE
        self._failure: str | None = None
        # The subscription's series, looked up at its first delivery.
        self._delivered: _Count | None = None
        self._latency: _Latency | None = None

    def prepared(self, operation_type: str, name: str | None, document: str) -> None:
        self._type = operation_type
        self._metrics.operations_started.labels(operation_type).inc()

    def failed(self, reason: str) -> None:
        self._failure = reason

    def delivered(self) -> None:
        delivered, latency = self._delivered, self._latency
        if delivered is None or latency is None:
            hot = self._metrics.hot
            subscription = log_where.subscription_class.get() or ""
            delivered = self._delivered = hot.series(hot.delivered, subscription)
            latency = self._latency = hot.latency_of(subscription)
        delivered.value += 1
        notification = delivering.get()
        if notification is not None and notification[0] is not None:
            # Another host's clock may be ahead of this one's: never a negative latency.
            latency.observe(max(0.0, time.time() - notification[0]))

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
