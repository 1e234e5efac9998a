"""Apollo's multipart subscriptions over HTTP, sans-IO.

Specification: Apollo's "Multipart HTTP protocol for GraphQL subscriptions" (the
GraphOS Router's documentation), as Apollo Client's ``HttpLink`` (its
``readMultipartBody``) and ``gql``'s HTTP transports read it; the framing is RFC 2046's
``multipart/mixed``.

Theory of operation
-------------------
A request is the same GraphQL-over-HTTP request as for
:class:`~.http.GraphqlHttpProtocol`, whose checks (method, body, content type, size)
and status codes it keeps; only the streamed form of the response differs. A client asks
for it with ``Accept: multipart/mixed;subscriptionSpec=1.0`` (the parameter's value
quoted or not, among other media types with their ``q`` weights); Apollo Client puts
``multipart/mixed;boundary=graphql;subscriptionSpec=1.0`` before its JSON types for
every subscription. The I/O shell picks :class:`GraphqlMultipartProtocol` for such a
request (:func:`multipart_requested`), unless it weighs ``text/event-stream`` higher.

What goes as multipart:

* a subscription, always: once it is in all its groups the response starts (status
  200, ``Content-Type: multipart/mixed;boundary=graphql;subscriptionSpec=1.0``) with
  the opening delimiter; each result is a part ``{"payload": result}``; a heartbeat part
  ``{}`` every few seconds keeps an idle response open through proxies (clients ignore
  it); the closing delimiter ends it when the subscription ends;
* a query or a mutation only when the client accepts no JSON type, as one
  ``{"payload": result}`` part and the closing delimiter. A client of this protocol
  accepts ``application/json`` too (Apollo's documentation: clients "MUST support"
  both), and gets a query's result as plain JSON, with the status codes of GraphQL over
  HTTP, as from any other request.

Errors: errors of the document (it does not parse or validate) are found before the
response's form is known, and go as they go over GraphQL over HTTP (a 400 or 200 JSON
response) when the client accepts JSON, else as a ``{"payload": {"errors": [...]}}``
part. Errors in a result are part of its payload. What the protocol calls a
transport-level error -- the server failed while the response streams -- is a part
``{"payload": null, "errors": [...]}`` followed by the closing delimiter: clients end
the subscription with an error.

Framing: every part is sent together with the delimiter that follows it (``CRLF
--graphql``): both clients parse a part once they see the next delimiter, so a part
whose delimiter waited for the next event would arrive one event late. Compact JSON
holds no line break, so no payload can contain a delimiter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .common import Action, EndStream, Failure, Operation, SendChunk, StartStream
from .http import (
    GraphqlHttpProtocol,
    RequestState,
    ResponseForm,
    _dumps,
    _header,
    _media_type,
    _weight,
    negotiate,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .messages import FormattedError

MULTIPART_MIXED: Final = "multipart/mixed"
SUBSCRIPTION_SPEC: Final = "1.0"
BOUNDARY: Final = "graphql"
CONTENT_TYPE: Final = f"{MULTIPART_MIXED};boundary={BOUNDARY};subscriptionSpec={SUBSCRIPTION_SPEC}"
"""The response's type. The parameters go unquoted, as Apollo Client sends them in its
``Accept``: ``gql`` looks for ``boundary=graphql`` and ``subscriptionSpec=1.0`` as they
are written here."""

DELIMITER: Final = b"\r\n--" + BOUNDARY.encode("ascii")
"""RFC 2046's delimiter: CRLF, two dashes, the boundary; a CRLF and a part's headers
follow it, or two dashes and the end of the response."""
PART_HEAD: Final = b"\r\nContent-Type: application/json; charset=utf-8\r\n\r\n"
HEARTBEAT: Final = PART_HEAD + b"{}" + DELIMITER
"""An empty JSON object: a part that clients ignore."""
CLOSE: Final = b"--\r\n"
"""What makes the last delimiter the closing one."""


def multipart_weight(accept: str | None) -> float:
    """The weight of ``multipart/mixed;subscriptionSpec=1.0`` in an ``Accept`` header
    (0: not acceptable). Another ``multipart/mixed`` (``deferSpec``, or none) is not
    this protocol."""
    weight = 0.0
    for entry in (accept or "").split(","):
        kind, parameters = _media_type(entry)
        if kind == MULTIPART_MIXED and parameters.get("subscriptionspec") == SUBSCRIPTION_SPEC:
            weight = max(weight, _weight(parameters))
    return weight


def multipart_requested(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request asks for multipart subscriptions (rather than, or before, an
    event stream)."""
    accept = _header(headers, b"accept")
    weight = multipart_weight(accept)
    return weight > 0 and weight >= negotiate(accept)[2]


def part(payload: bytes) -> bytes:
    """One part with ``payload`` (JSON), and the delimiter after it."""
    return PART_HEAD + payload + DELIMITER


class GraphqlMultipartProtocol(GraphqlHttpProtocol):
    """State machine of one GraphQL-over-HTTP request whose streamed response is
    multipart (see the module docstring).

    The HTTP machine's streamed form (:attr:`~.http.ResponseForm.EVENT_STREAM`) is,
    here, the multipart response: the request, its checks and its JSON responses are the
    HTTP machine's; the stream's start, parts, heartbeats, transport-level errors and end
    are this class's.
    """

    def __init__(self, **arguments: Any) -> None:
        super().__init__(**arguments)
        accept = _header(self.headers, b"accept")
        single_weight = negotiate(accept)[1]
        weight = multipart_weight(accept)
        # A subscription always streams; a query or mutation only for a client that
        # prefers multipart to every JSON type.
        self._stream_acceptable = weight > 0
        self._stream_preferred = weight > single_weight

    def heartbeat(self) -> list[Action]:
        """The heartbeat timer fired: an empty part, if the response streams."""
        if self.state is not RequestState.STREAMING:
            return []
        return [SendChunk(HEARTBEAT)]

    def send_errors(
        self,
        operation: Operation,
        errors: Sequence[FormattedError],
        failure: Failure = Failure.INVALID,
    ) -> list[Action]:
        """As over HTTP; but a failure of the server once the response streams (or is
        to stream) is a transport-level error, and the response ends."""
        if self.is_active(operation) and (
            self.state is RequestState.STREAMING
            or (failure is Failure.INTERNAL and self._form() is ResponseForm.EVENT_STREAM)
        ):
            message = _dumps({"payload": None, "errors": list(errors)})
            actions = self._start_stream() if self.state is RequestState.RUNNING else []
            return [*actions, SendChunk(part(message)), *self._close()]
        return super().send_errors(operation, errors, failure)

    def complete(self, operation: Operation) -> list[Action]:
        """The operation ended: the closing delimiter ends a streamed response."""
        if not self.is_active(operation) or self._form() is not ResponseForm.EVENT_STREAM:
            return super().complete(operation)
        actions = self._start_stream() if self.state is RequestState.RUNNING else []
        return [*actions, *self._close()]

    # --- framing --------------------------------------------------------------------------

    def _close(self) -> list[Action]:
        self.state = RequestState.DONE
        return [SendChunk(CLOSE), EndStream()]

    def _start_stream(self) -> list[Action]:
        self.state = RequestState.STREAMING
        self.form = ResponseForm.EVENT_STREAM
        headers = (
            ("content-type", CONTENT_TYPE),
            ("cache-control", "no-cache"),
            # nginx buffers responses unless told not to: parts would arrive late.
            ("x-accel-buffering", "no"),
        )
        # The opening delimiter goes at once, and the headers with it.
        return [StartStream(200, headers, DELIMITER)]

    def _next_event(self, data: bytes) -> list[Action]:
        actions = self._start_stream() if self.state is RequestState.RUNNING else []
        actions.append(SendChunk(part(b'{"payload":' + data + b"}")))
        return actions
