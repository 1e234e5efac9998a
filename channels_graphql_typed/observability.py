"""Metrics through ``prometheus_client`` and spans through OpenTelemetry.

Both are off until enabled, and cost nothing then: neither package is imported. Enable
them in the Django settings, read when the ``channels_graphql_typed`` app is ready::

    CHANNELS_GRAPHQL_TYPED_METRICS = True  # pip install channels-graphql-typed[prometheus]
    CHANNELS_GRAPHQL_TYPED_TRACING = True  # pip install channels-graphql-typed[otel]

or by calling :func:`enable_metrics` and :func:`enable_tracing` once, at start-up, in
each server process. :func:`metrics_view` serves the metrics to Prometheus. The metric
names and the spans are described in the observability guide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from django.core.exceptions import ImproperlyConfigured

from . import _observability

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse
    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from ._observability import Observer

__all__ = ["disable", "enable_metrics", "enable_tracing", "metrics_view"]

METRICS_SETTING: Final = "CHANNELS_GRAPHQL_TYPED_METRICS"
TRACING_SETTING: Final = "CHANNELS_GRAPHQL_TYPED_TRACING"

_metrics: dict[int, Observer] = {}
"""The metrics registered in each registry (by id): enabling twice registers once."""
_active: dict[str, Observer] = {}
"""What is enabled, by kind: ``metrics``, ``tracing``."""
_registry: list[CollectorRegistry] = []
"""The registry of the enabled metrics (what :func:`metrics_view` serves)."""


def enable_metrics(registry: CollectorRegistry | None = None) -> None:
    """Record the library's metrics in ``registry`` (prometheus_client's default
    ``REGISTRY`` if None). Calling it again with the same registry changes nothing."""
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImproperlyConfigured(
            "Metrics need prometheus_client: pip install channels-graphql-typed[prometheus]"
        ) from exc
    from ._prometheus import PrometheusMetrics

    if registry is None:
        registry = prometheus_client.REGISTRY
    metrics = _metrics.get(id(registry))
    if metrics is None:
        metrics = _metrics[id(registry)] = PrometheusMetrics(registry)
    _registry[:] = [registry]
    _activate("metrics", metrics)


def enable_tracing(
    tracer_provider: TracerProvider | None = None, *, include_document: bool = False
) -> None:
    """Make a span per query and mutation, and spans for each subscription's subscribe and
    delivered events, with ``tracer_provider`` (OpenTelemetry's global one if None).
    ``include_document`` adds each operation's document as ``graphql.document``: leave it
    off when documents may hold what users typed."""
    if not isinstance(include_document, bool):
        raise TypeError(f"include_document must be a bool, not {type(include_document).__name__}")
    try:
        from ._tracing import Tracing
    except ImportError as exc:
        raise ImproperlyConfigured(
            "Tracing needs opentelemetry-api: pip install channels-graphql-typed[otel]"
        ) from exc
    _activate("tracing", Tracing(tracer_provider, include_document=include_document))


def disable() -> None:
    """Stop recording metrics and spans (what was recorded stays in its registry)."""
    _active.clear()
    _registry.clear()
    _observability.observer = _observability.Observer()


def metrics_view(request: HttpRequest) -> HttpResponse:
    """A Django view that answers Prometheus' scrape with the enabled metrics (and
    whatever else their registry holds); 404 while metrics are not enabled. Route it
    where only your Prometheus reaches::

        path("metrics", metrics_view)
    """
    from django.http import HttpResponse, HttpResponseNotFound

    if not _registry:
        return HttpResponseNotFound(
            f"Metrics are not enabled (set {METRICS_SETTING} = True)\n",
            content_type="text/plain; charset=utf-8",
        )
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return HttpResponse(generate_latest(_registry[0]), content_type=CONTENT_TYPE_LATEST)


def configure_from_settings() -> None:
    """Enable what the Django settings ask for (called when the app is ready)."""
    from django.conf import settings

    metrics: Any = getattr(settings, METRICS_SETTING, False)
    if not isinstance(metrics, bool):
        raise ImproperlyConfigured(
            f"{METRICS_SETTING} must be True or False, not {type(metrics).__name__}"
        )
    tracing: Any = getattr(settings, TRACING_SETTING, False)
    if isinstance(tracing, dict):
        unknown = set(tracing) - {"include_document"}
        if unknown:
            raise ImproperlyConfigured(
                f"{TRACING_SETTING}: unknown key(s) {sorted(map(str, unknown))}; the one "
                'option is "include_document"'
            )
        include_document = tracing.get("include_document", False)
        if not isinstance(include_document, bool):
            raise ImproperlyConfigured(
                f'{TRACING_SETTING}["include_document"] must be True or False, not '
                f"{type(include_document).__name__}"
            )
    elif isinstance(tracing, bool):
        include_document = False
    else:
        raise ImproperlyConfigured(
            f"{TRACING_SETTING} must be True, False or a dict of options "
            f'({{"include_document": True}}), not {type(tracing).__name__}'
        )
    if metrics:
        enable_metrics()
    if tracing:
        enable_tracing(include_document=include_document)


def _activate(kind: str, observer: Observer) -> None:
    _active[kind] = observer
    observers = tuple(_active[name] for name in ("metrics", "tracing") if name in _active)
    _observability.observer = (
        observers[0] if len(observers) == 1 else _observability.Observers(observers)
    )
