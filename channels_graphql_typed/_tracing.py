"""The library's spans, through OpenTelemetry (the ``[otel]`` extra).

Imported only once tracing is enabled (:mod:`channels_graphql_typed.observability`).
The spans follow OpenTelemetry's semantic conventions for GraphQL servers:

* a query or a mutation is one span, from its arrival to the end of its result, named
  ``query`` or ``mutation`` followed by the operation's name when it has one;
* a subscription is one span for its subscribe phase (from its arrival until it is in
  all its groups, the confirmation sent when asked for), named ``subscription`` and
  its name, then one span per delivered event, of the same name, from when the
  subscription took the notification from its queue to the send of its result; each
  event span is a root span (the event is caused by a broadcast, not by the subscribe)
  with a link to the subscribe span. Only a subscription whose subscribe span was
  sampled makes event spans (each then sampled like any root span): with a sampler
  that keeps 1% of the traces, 99% of the subscriptions cost nothing per event.

Attributes: ``graphql.operation.type``, ``graphql.operation.name`` (when the document
names the operation) and, only when enabled with ``include_document`` (a document may
hold what a client typed), ``graphql.document``. An operation that fails gets the
status ``ERROR`` and the attribute ``error.type`` (the reason of the metrics table). An
operation that fails before its type is known keeps the convention's fallback name,
``GraphQL Operation``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from ._observability import Observer, OperationObserver, delivering

if TYPE_CHECKING:
    from opentelemetry.trace import Span, SpanContext, Tracer, TracerProvider

INSTRUMENTATION_NAME: Final = "channels_graphql_typed"
UNKNOWN_OPERATION_NAME: Final = "GraphQL Operation"
OPERATION_TYPE: Final = "graphql.operation.type"
OPERATION_NAME: Final = "graphql.operation.name"
DOCUMENT: Final = "graphql.document"
ERROR_TYPE: Final = "error.type"


class Tracing(Observer):
    """Spans of every operation, from one tracer."""

    __slots__ = ("include_document", "tracer")

    enabled = True

    def __init__(self, provider: TracerProvider | None, *, include_document: bool) -> None:
        self.tracer: Tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=provider)
        self.include_document = include_document

    def operation(self) -> OperationObserver:
        return _TracedOperation(self)


class _TracedOperation(OperationObserver):
    __slots__ = ("_attributes", "_name", "_span", "_subscribe", "_tracing")

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing
        self._span: Span | None = tracing.tracer.start_span(
            UNKNOWN_OPERATION_NAME, kind=SpanKind.SERVER
        )
        self._name = UNKNOWN_OPERATION_NAME
        self._attributes: dict[str, str] = {}
        self._subscribe: SpanContext | None = None

    def prepared(self, operation_type: str, name: str | None, document: str) -> None:
        self._name = f"{operation_type} {name}" if name else operation_type
        attributes = {OPERATION_TYPE: operation_type}
        if name:
            attributes[OPERATION_NAME] = name
        self._attributes = attributes
        span = self._span
        if span is not None:
            span.update_name(self._name)
            span.set_attributes(attributes)
            if self._tracing.include_document:
                span.set_attribute(DOCUMENT, document)

    def failed(self, reason: str) -> None:
        span = self._span
        if span is not None:
            span.set_attribute(ERROR_TYPE, reason)
            span.set_status(Status(StatusCode.ERROR, reason))

    def subscribed(self) -> None:
        span, self._span = self._span, None
        if span is not None:
            self._subscribe = span.get_span_context()
            span.end()

    def observes_deliveries(self) -> bool:
        # Only a subscription whose subscribe span was sampled makes event spans.
        subscribe = self._subscribe
        return subscribe is not None and subscribe.trace_flags.sampled

    def delivered(self) -> None:
        subscribe = self._subscribe
        if subscribe is None or not subscribe.trace_flags.sampled:
            return
        notification = delivering.get()
        started = notification[1] if notification is not None else None
        span = self._tracing.tracer.start_span(
            self._name,
            context=_ROOT,
            kind=SpanKind.CONSUMER,
            attributes=self._attributes,
            links=[Link(subscribe)],
            start_time=started,
        )
        span.end()

    def ended(self) -> None:
        span, self._span = self._span, None
        if span is not None:
            span.end()


_ROOT: Final = trace.set_span_in_context(trace.INVALID_SPAN)
"""The context of a span without a parent."""
