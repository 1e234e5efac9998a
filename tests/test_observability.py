"""Metrics and spans: off, nothing of prometheus_client or OpenTelemetry is imported; on,
a scripted exchange (tests/observed_exchange.py) is counted and traced as documented.

The chat example's metrics, scraped under uvicorn, are tested in
tests/example/test_metrics.py."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import channels_graphql_typed as cgt
from channels_graphql_typed import _observability, observability
from channels_graphql_typed._channel_layer import ChannelLayerHealth
from channels_graphql_typed._layer_messages import (
    NOTIFY,
    MalformedLayerMessage,
    notify_message,
    read_layer_message,
)
from tests.observed_exchange import MUTATION, QUERY, SUBSCRIPTION, scripted_exchange

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opentelemetry.sdk.trace import ReadableSpan


@pytest.fixture(autouse=True)
def _observers_off() -> Iterator[None]:
    observability.disable()
    yield
    observability.disable()


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the registry's exposition, parsed back by prometheus_client."""
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("channels_graphql_") and not sample.name.endswith("_created")
    }


def test_off_nothing_of_them_is_imported() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.observed_exchange"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = json.loads(completed.stdout.splitlines()[-1])
    assert "channels_graphql_typed._subscription" in modules  # the exchange ran
    imported = [
        name
        for name in modules
        if name.split(".")[0] in ("prometheus_client", "opentelemetry")
        or name in ("channels_graphql_typed._prometheus", "channels_graphql_typed._tracing")
    ]
    assert imported == []


async def test_off_the_observer_does_nothing() -> None:
    assert _observability.observer.enabled is False
    assert _observability.observer.operation() is _observability.NO_OPERATION
    await scripted_exchange()


async def test_the_exchange_is_counted(subprotocol: str) -> None:
    registry = CollectorRegistry()
    observability.enable_metrics(registry)
    await scripted_exchange(subprotocol)
    for _ in range(100):  # the close reaches the consumer after the client's disconnect
        if samples(registry).get(("channels_graphql_connections_closed_total", ())) != 0:
            break
        await asyncio.sleep(0.01)
    values = samples(registry)
    websocket = (("protocol", subprotocol), ("transport", "websocket"))
    expected = {
        ("channels_graphql_connections_opened_total", websocket): 1,
        ("channels_graphql_connections_open", websocket): 0,
        (
            "channels_graphql_connections_closed_total",
            (("code", "1000"), ("transport", "websocket")),
        ): 1,
        ("channels_graphql_operations_started_total", (("type", "query"),)): 1,
        ("channels_graphql_operations_started_total", (("type", "mutation"),)): 1,
        ("channels_graphql_operations_started_total", (("type", "subscription"),)): 1,
        ("channels_graphql_operations_completed_total", (("type", "query"),)): 1,
        ("channels_graphql_operations_completed_total", (("type", "mutation"),)): 1,
        ("channels_graphql_operations_completed_total", (("type", "subscription"),)): 1,
        (
            "channels_graphql_operations_failed_total",
            (("reason", "invalid"), ("type", "unknown")),
        ): 1,
        ("channels_graphql_subscriptions_active", (("subscription", "OnReading"),)): 0,
        ("channels_graphql_notifications_delivered_total", (("subscription", "OnReading"),)): 1,
        ("channels_graphql_notifications_skipped_total", (("subscription", "OnReading"),)): 1,
        ("channels_graphql_notification_queue_high_water", (("subscription", "OnReading"),)): 1,
        ("channels_graphql_subscription_results_total", (("source", "executed"),)): 1,
        ("channels_graphql_subscription_results_total", (("source", "shared"),)): 0,
        ("channels_graphql_channel_layer_failure_episodes_total", (("layer", "default"),)): 0,
        ("channels_graphql_channel_layer_retries_total", (("layer", "default"),)): 0,
        ("channels_graphql_channel_layer_malformed_messages_total", (("layer", "default"),)): 0,
        (
            "channels_graphql_notification_latency_seconds_count",
            (("subscription", "OnReading"),),
        ): 1,
        ("channels_graphql_operation_duration_seconds_count", (("type", "query"),)): 1,
        ("channels_graphql_operation_duration_seconds_count", (("type", "mutation"),)): 1,
    }
    assert {key: values.get(key) for key in expected} == expected
    # No other series: what is not listed was not counted.
    counted = {
        key
        for key, value in values.items()
        if not key[0].endswith(("_bucket", "_sum")) and key not in expected
    }
    assert counted == set()
    latency = values[
        ("channels_graphql_notification_latency_seconds_sum", (("subscription", "OnReading"),))
    ]
    assert 0 <= latency < 60


async def test_a_failing_layer_is_one_episode_with_its_retries() -> None:
    registry = CollectorRegistry()
    observability.enable_metrics(registry)

    class FlakyLayer:
        """Fails the first two round trips."""

        failures = 2

        async def group_send(self, group: str, message: dict[str, Any]) -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("unreachable")

    health = ChannelLayerHealth(FlakyLayer(), "flaky")  # type: ignore[arg-type]
    health.report(ConnectionError("unreachable"))
    health.report(ConnectionError("still unreachable"))  # the same episode
    await asyncio.wait_for(health.wait_until_reachable(), 10)
    values = samples(registry)
    layer = (("layer", "flaky"),)
    assert values[("channels_graphql_channel_layer_failure_episodes_total", layer)] == 1
    assert values[("channels_graphql_channel_layer_retries_total", layer)] == 3
    health.malformed_message("a test")
    values = samples(registry)
    assert values[("channels_graphql_channel_layer_malformed_messages_total", layer)] == 1


def test_enabling_twice_registers_once() -> None:
    registry = CollectorRegistry()
    observability.enable_metrics(registry)
    observability.enable_metrics(registry)
    assert _observability.observer.enabled


def test_the_per_notification_series_read_as_prometheus_clients_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The delivered, skipped and dropped counters, the latency histogram and the shared
    # results are plain numbers collected at the scrape: their exposition is what
    # prometheus_client's Counter and Histogram of the same names give for the same
    # observations, bucket bounds (inclusive) included.
    from prometheus_client import Counter, Histogram

    from channels_graphql_typed import _log, _prometheus

    now = 1_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    latencies = (0.0, 0.001, 0.0011, 0.003, 0.25, 0.7, 10.0, 11.0, -1.0)
    ours = CollectorRegistry()
    metrics = _prometheus.PrometheusMetrics(ours)
    theirs = CollectorRegistry()
    name = _prometheus.PREFIX
    by_class = ("subscription",)
    delivered = Counter(f"{name}_notifications_delivered", "d", by_class, registry=theirs)
    skipped = Counter(f"{name}_notifications_skipped", "s", by_class, registry=theirs)
    dropped = Counter(f"{name}_notifications_dropped", "d", by_class, registry=theirs)
    latency = Histogram(
        f"{name}_notification_latency_seconds",
        "l",
        by_class,
        registry=theirs,
        buckets=_prometheus.LATENCY_BUCKETS,
    )
    results = Counter(f"{name}_subscription_results", "r", ("source",), registry=theirs)
    results.labels("executed")
    results.labels("shared")
    for subscription in ("OnA", "OnB"):
        _log.subscription_class.set(subscription)
        operation = metrics.operation()
        operation.subscribed()
        for seconds in latencies:
            # A sender's clock ahead of this one's (-1.0) counts as no latency.
            _observability.delivering.set((now - seconds, 0))
            operation.delivered()
            delivered.labels(subscription).inc()
            latency.labels(subscription).observe(max(0.0, now - (now - seconds)))
            metrics.subscription_result(shared=subscription == "OnB")
            results.labels("shared" if subscription == "OnB" else "executed").inc()
        _observability.delivering.set((None, 0))  # a broadcast without its time
        operation.delivered()
        delivered.labels(subscription).inc()
        metrics.notification_skipped(subscription)
        skipped.labels(subscription).inc()
    metrics.notification_dropped("OnA")
    dropped.labels("OnA").inc()
    assert samples(ours) == samples(theirs)
    assert (
        samples(ours)[
            (
                f"{name}_notification_latency_seconds_bucket",
                (("le", "0.25"), ("subscription", "OnA")),
            )
        ]
        == 6
    )  # 0.0, 0.001, 0.0011, 0.003, 0.25 and the negative one


async def test_the_spans_of_the_exchange(subprotocol: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability.enable_tracing(provider, include_document=True)
    await scripted_exchange(subprotocol)
    spans: tuple[ReadableSpan, ...] = exporter.get_finished_spans()
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert sorted((name, len(found)) for name, found in by_name.items()) == [
        ("GraphQL Operation", 1),
        ("mutation", 1),
        ("query Greeting", 1),
        ("subscription Readings", 2),
    ]
    (query,) = by_name["query Greeting"]
    assert query.kind is SpanKind.SERVER
    assert dict(query.attributes or {}) == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "Greeting",
        "graphql.document": QUERY,
    }
    (mutation,) = by_name["mutation"]
    assert dict(mutation.attributes or {}) == {
        "graphql.operation.type": "mutation",
        "graphql.document": MUTATION,
    }
    (invalid,) = by_name["GraphQL Operation"]
    assert invalid.status.status_code is StatusCode.ERROR
    assert dict(invalid.attributes or {}) == {"error.type": "invalid"}
    subscribe, event = sorted(
        by_name["subscription Readings"], key=lambda span: span.start_time or 0
    )
    assert subscribe.kind is SpanKind.SERVER
    assert dict(subscribe.attributes or {}) == {
        "graphql.operation.type": "subscription",
        "graphql.operation.name": "Readings",
        "graphql.document": SUBSCRIPTION,
    }
    # One span per delivered event (the skipped one has none), a root linked to the
    # subscribe span.
    assert event.kind is SpanKind.CONSUMER
    assert event.parent is None
    assert [link.context for link in event.links] == [subscribe.context]
    assert dict(event.attributes or {}) == {
        "graphql.operation.type": "subscription",
        "graphql.operation.name": "Readings",
    }
    assert subscribe.end_time is not None
    assert event.start_time is not None
    assert subscribe.end_time <= event.start_time


class OperationsDropped(Sampler):
    """Drops every span, and counts the spans it was asked about with links (events)."""

    def __init__(self) -> None:
        self.asked_with_links = 0
        self.asked = 0

    def should_sample(
        self, parent_context: Any, trace_id: int, name: str, *args: Any, **kwargs: Any
    ) -> SamplingResult:
        self.asked += 1
        links = kwargs.get("links") if "links" in kwargs else (args[2] if len(args) > 2 else None)
        if links:
            self.asked_with_links += 1
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "OperationsDropped"


async def test_an_unsampled_subscription_makes_no_event_spans(subprotocol: str) -> None:
    exporter = InMemorySpanExporter()
    sampler = OperationsDropped()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability.enable_tracing(provider)
    await scripted_exchange(subprotocol)
    assert exporter.get_finished_spans() == ()
    # Each operation's span was asked about (the subscription's delivered events too,
    # if it made spans for them: they carry a link); its events never were.
    assert sampler.asked == 4
    assert sampler.asked_with_links == 0


async def test_metrics_and_spans_together() -> None:
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability.enable_metrics(registry)
    observability.enable_tracing(provider)
    await scripted_exchange()
    values = samples(registry)
    delivered = ("channels_graphql_notifications_delivered_total", (("subscription", "OnReading"),))
    assert values[delivered] == 1
    assert len(exporter.get_finished_spans()) == 5
    assert all(
        "graphql.document" not in (span.attributes or {}) for span in exporter.get_finished_spans()
    )


def test_the_settings_enable_them() -> None:
    with override_settings(
        CHANNELS_GRAPHQL_TYPED_METRICS=True,
        CHANNELS_GRAPHQL_TYPED_TRACING={"include_document": True},
    ):
        observability.configure_from_settings()
    assert isinstance(_observability.observer, _observability.Observers)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"CHANNELS_GRAPHQL_TYPED_METRICS": "yes"}, "must be True or False, not str"),
        ({"CHANNELS_GRAPHQL_TYPED_TRACING": 1}, "must be True, False or a dict"),
        ({"CHANNELS_GRAPHQL_TYPED_TRACING": {"documents": True}}, "unknown key(s) ['documents']"),
        (
            {"CHANNELS_GRAPHQL_TYPED_TRACING": {"include_document": "yes"}},
            'TRACING["include_document"] must be True or False',
        ),
    ],
)
def test_bad_settings_say_what_is_expected(settings: dict[str, Any], message: str) -> None:
    with override_settings(**settings), pytest.raises(ImproperlyConfigured) as raised:
        observability.configure_from_settings()
    assert message in str(raised.value)
    assert _observability.observer.enabled is False


def test_the_view_answers_404_until_metrics_are_enabled() -> None:
    from django.test import RequestFactory

    response = observability.metrics_view(RequestFactory().get("/metrics"))
    assert response.status_code == 404
    assert b"CHANNELS_GRAPHQL_TYPED_METRICS" in response.content
    observability.enable_metrics(CollectorRegistry())
    response = observability.metrics_view(RequestFactory().get("/metrics"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"channels_graphql_connections_opened_total" in response.content


def test_a_broadcast_carries_its_time() -> None:
    message = notify_message("room", b"\x00", 1_700_000_000.5)
    assert read_layer_message(dict(message)) == message
    assert read_layer_message({"type": NOTIFY, "group": "room", "payload": b""}) == {
        "type": NOTIFY,
        "group": "room",
        "payload": b"",
    }


@pytest.mark.parametrize("sent_at", ["1700000000", True, math.nan, math.inf, [1.0]])
def test_a_malformed_broadcast_time_is_refused(sent_at: object) -> None:
    with pytest.raises(MalformedLayerMessage, match="broadcast time for group room") as raised:
        read_layer_message({"type": NOTIFY, "group": "room", "payload": b"", "sent_at": sent_at})
    assert raised.value.group == "room"


def test_the_public_module_is_not_in_the_package_namespace() -> None:
    assert "observability" not in cgt.__all__


async def test_the_guides_tracing_recipe() -> None:
    from examples.tracing import enable_tracing

    exporter = InMemorySpanExporter()
    provider = enable_tracing(exporter)
    await scripted_exchange()
    provider.force_flush()
    assert len(exporter.get_finished_spans()) == 5
    provider.shutdown()


async def test_http_requests_are_counted_as_connections() -> None:
    from channels.testing import HttpCommunicator

    from tests.observed_exchange import ObservedHttpConsumer

    registry = CollectorRegistry()
    observability.enable_metrics(registry)
    for method, path in [
        ("GET", "/graphql/?query=query+Greeting+%7B+hello+%7D"),  # 200
        ("GET", '/graphql/?query=mutation{echo(text:"x")}'),  # 405: a mutation over GET
    ]:
        communicator = HttpCommunicator(ObservedHttpConsumer.as_asgi(), method, path)
        await communicator.get_response()
        await communicator.wait()  # the consumer's end, after its response's
    values = samples(registry)
    http = (("protocol", "http"), ("transport", "http"))
    assert values[("channels_graphql_connections_opened_total", http)] == 2
    assert values[("channels_graphql_connections_open", http)] == 0
    for status in ("200", "405"):
        closed = (
            "channels_graphql_connections_closed_total",
            (("code", status), ("transport", "http")),
        )
        assert values[closed] == 1
    assert values[("channels_graphql_operations_completed_total", (("type", "query"),))] == 1
    unsupported = (("reason", "unsupported"), ("type", "mutation"))
    assert values[("channels_graphql_operations_failed_total", unsupported)] == 1
