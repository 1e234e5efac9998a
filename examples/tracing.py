"""Spans of the library's operations, sent to an OpenTelemetry exporter.

Call :func:`enable_tracing` once per server process at start-up (in the ASGI module,
before the application serves), with the exporter of your tracing backend (the OTLP
one, ``opentelemetry-exporter-otlp``, for most). Setting
``CHANNELS_GRAPHQL_TYPED_TRACING = True`` instead uses OpenTelemetry's global tracer
provider, configured elsewhere (by ``opentelemetry-instrument``, say).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# --8<-- [start:tracing]
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from channels_graphql_typed import observability

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


def enable_tracing(exporter: SpanExporter) -> TracerProvider:
    """A span per query and mutation, and per subscription's subscribe and event."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    # include_document=True would add each operation's text (graphql.document).
    observability.enable_tracing(provider)
    return provider


# --8<-- [end:tracing]
