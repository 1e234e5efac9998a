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
INCREMENTAL_SPEC: Final = "v0.2"
"""Apollo's incremental delivery over multipart (``incrementalSpec=v0.2``): what Apollo
Client's ``GraphQL17Alpha9Handler`` asks for, in graphql-js 17.0.0-alpha.9's format of
payloads, which graphql-core's incremental executor produces."""
BOUNDARY: Final = "graphql"
CONTENT_TYPE: Final = f"{MULTIPART_MIXED};boundary={BOUNDARY};subscriptionSpec={SUBSCRIPTION_SPEC}"
INCREMENTAL_CONTENT_TYPE: Final = (
    f"{MULTIPART_MIXED};boundary={BOUNDARY};incrementalSpec={INCREMENTAL_SPEC}"
)
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


def multipart_weight(
    accept: str | None, spec: str = "subscriptionspec", version: str = SUBSCRIPTION_SPEC
) -> float:
    """The weight of ``multipart/mixed;subscriptionSpec=1.0`` in an ``Accept`` header
    (0: not acceptable), or of another ``spec`` parameter's ``version``
    (``incrementalSpec=v0.2``). Another ``multipart/mixed`` (``deferSpec``, or none) is
    not this protocol."""
    weight = 0.0
    for entry in (accept or "").split(","):
        kind, parameters = _media_type(entry)
        if kind == MULTIPART_MIXED and parameters.get(spec) == version:
            weight = max(weight, _weight(parameters))
    return weight


def incremental_weight(accept: str | None) -> float:
    """The weight of ``multipart/mixed;incrementalSpec=v0.2`` in an ``Accept`` header."""
    return multipart_weight(accept, "incrementalspec", INCREMENTAL_SPEC)


def multipart_requested(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request asks for multipart subscriptions or multipart incremental
    delivery (rather than, or before, an event stream)."""
    accept = _header(headers, b"accept")
    weight = max(multipart_weight(accept), incremental_weight(accept))
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
        # An incremental result goes as multipart when the client weighs it at least as
        # much as JSON (Apollo Client lists it first, at the same weight); otherwise it
        # comes whole, as JSON.
        incremental = incremental_weight(accept)
        self._incremental = incremental > 0 and incremental >= single_weight
        self._incremental_response = False

    def heartbeat(self) -> list[Action]:
        """The heartbeat timer fired: an empty part, if the response streams (but not
        between the payloads of an incremental result, whose format has no heartbeat:
        they come as fast as they are computed)."""
        if self.state is not RequestState.STREAMING or self._incremental_response:
            return []
        return [SendChunk(HEARTBEAT)]

    def incremental_delivery(self, operation: Operation) -> bool:
        """A query or mutation whose response is JSON may go as an incremental
        multipart response instead, when the client accepts ``incrementalSpec=v0.2``."""
        return self._incremental and self._form() is not ResponseForm.EVENT_STREAM

    def send_incremental_result(self, operation: Operation, payload_json: str) -> list[Action]:
        """One payload of an incremental result: a part of its own, as it is (the
        incremental format wraps nothing in ``payload``)."""
        if not self.is_active(operation):
            return []
        actions: list[Action] = []
        if self.state is RequestState.RUNNING:
            self._incremental_response = True
            actions += self._start_stream()
        actions.append(SendChunk(part(payload_json.encode("utf-8", "surrogatepass"))))
        return actions

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
            (
                "content-type",
                INCREMENTAL_CONTENT_TYPE if self._incremental_response else CONTENT_TYPE,
            ),
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
