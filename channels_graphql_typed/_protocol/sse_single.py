"""GraphQL over Server-Sent Events, "single connection mode", sans-IO.

Specification: graphql-sse's PROTOCOL.md
(https://github.com/enisdenjo/graphql-sse/blob/master/PROTOCOL.md), "Single connection
mode", with the status codes and bodies of graphql-sse's own handler, which its client
is written against.

Theory of operation
-------------------
One event stream carries the results of every operation of a client; separate requests
drive it. Each request names the stream by its *token*, in the
``X-GraphQL-Event-Stream-Token`` header or the ``token`` query parameter:

* ``PUT`` reserves a stream: ``201`` and the token, as ``text/plain``;
* ``GET`` with ``Accept: text/event-stream`` opens the reserved stream (once: a second
  one gets ``409``);
* ``POST`` (or ``GET`` without ``text/event-stream``) submits one operation, whose
  ``extensions.operationId`` names it in the stream: ``202`` once it runs, and its
  results go to the stream as ``next`` events whose data is ``{"id", "payload"}``, then
  ``complete`` with ``{"id"}``. A request error (a document that does not parse or
  validate, the ``on_operation`` hook's refusal) answers the submitting request instead,
  as GraphQL over HTTP answers it: ``400``, ``403`` (``500`` when the server failed);
* ``DELETE ?operationId=`` stops one operation: ``200``.

:func:`classify` tells such a request from a GraphQL-over-HTTP one (a request with
neither token nor ``PUT`` / ``DELETE`` is one), and the ``check_*`` / ``read_*``
functions read each kind, raising :class:`~.http.BadRequest`. A token is
``<channel>~<reservation>~<secret>`` (:class:`EventStreamToken`): the channel-layer
channel of the process that holds the stream (requests that reach another process are
forwarded to it there), the reservation's id, and a random secret compared in constant
time.

:class:`EventStreamProtocol` is the machine of one stream. It is the operation runner's
machine (``send_result``, ``complete``...) for all the stream's operations, and answers
each submitting request once, with an :class:`~.common.AnswerSubmission`: ``202`` at the
operation's first result or, for a subscription, once it is in all its groups (no
broadcast sent after the ``202`` passes it by); the errors of an operation that ended
before it ran, with their status; ``204`` for one stopped before either. Before the
stream is opened, its events wait in the I/O shell.
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import json
import re
import secrets
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl

from graphql import OperationType

from .common import (
    MAX_OPERATION_ID_LENGTH,
    Action,
    AnswerSubmission,
    Failure,
    Operation,
    Respond,
    SendChunk,
    StartOperation,
    StartStream,
    StopOperation,
    error,
)
from .http import (
    EVENT_STREAM,
    HEARTBEAT,
    JSON,
    BadRequest,
    _header,
    _media_type,
    _weight,
    decode_get,
    decode_post,
    negotiate,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .messages import ExecutionResultPayload, FormattedError, OperationPayload

TOKEN_HEADER: Final = b"x-graphql-event-stream-token"
TOKEN_PARAMETER: Final = "token"
OPERATION_ID_PARAMETER: Final = "operationId"
OPERATION_ID_EXTENSION: Final = "operationId"
ALLOWED_METHODS: Final = "GET, POST, PUT, DELETE"
JSON_CONTENT_TYPE: Final = (("content-type", f"{JSON}; charset=utf-8"),)

_CHANNEL: Final = re.compile(r"[A-Za-z0-9_.\-]{1,99}(![A-Za-z0-9_.\-]{0,99})?")
_RESERVATION: Final = re.compile(r"[0-9a-f]{16}")
_SECRET: Final = re.compile(r"[A-Za-z0-9_\-]{43}")
MAX_TOKEN_LENGTH: Final = 256


@dataclasses.dataclass(frozen=True, slots=True)
class EventStreamToken:
    """The name of one reserved stream: where it lives and the secret that opens it."""

    channel: str
    """The channel-layer channel of the process holding the stream."""
    reservation: str
    """The reservation's id (16 hex digits): it may be logged, the secret never."""
    secret: str = dataclasses.field(repr=False)
    """32 random bytes, URL-safe base64 (43 characters)."""

    @classmethod
    def new(cls, channel: str) -> EventStreamToken:
        return cls(channel, secrets.token_hex(8), secrets.token_urlsafe(32))

    @classmethod
    def parse(cls, text: str) -> EventStreamToken:
        """The token ``text`` spells, or :class:`~.http.BadRequest` (400)."""
        parts = text.split("~") if len(text) <= MAX_TOKEN_LENGTH else []
        if (
            len(parts) != 3
            or not _CHANNEL.fullmatch(parts[0])
            or not _RESERVATION.fullmatch(parts[1])
            or not _SECRET.fullmatch(parts[2])
        ):
            raise BadRequest(400, "The event stream token is malformed")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.channel}~{self.reservation}~{self.secret}"

    def opens(self, secret: str) -> bool:
        """Whether ``secret`` is this token's (in constant time)."""
        return hmac.compare_digest(self.secret.encode("ascii"), secret.encode("ascii"))


class RequestKind(enum.Enum):
    """What a single-connection-mode request asks."""

    RESERVE = "reserve"
    OPEN = "open"
    SUBMIT = "submit"
    STOP = "stop"


def _query_parameter(query_string: bytes, name: str) -> str | None:
    try:
        pairs = parse_qsl(query_string.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    return next((value for key, value in pairs if key == name), None)


def request_token(headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> str | None:
    """The token a request names: its header's, else its query parameter's."""
    token = _header(headers, TOKEN_HEADER)
    if token:
        return token
    return _query_parameter(query_string, TOKEN_PARAMETER) or None


def classify(
    method: str, headers: Sequence[tuple[bytes, bytes]], query_string: bytes
) -> RequestKind | None:
    """Which single-connection-mode request this is; None for a GraphQL-over-HTTP (or
    distinct connections mode) request."""
    method = method.upper()
    if method == "PUT":
        return RequestKind.RESERVE
    if method == "DELETE":
        return RequestKind.STOP
    if method not in ("GET", "POST") or request_token(headers, query_string) is None:
        return None
    if method == "GET" and _accepts_event_stream(_header(headers, b"accept")):
        return RequestKind.OPEN
    return RequestKind.SUBMIT


def _accepts_event_stream(accept: str | None) -> bool:
    return negotiate(accept)[2] > 0


def check_reserve(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """A ``PUT`` gets its token as ``text/plain``: 406 unless it accepts that."""
    accept = _header(headers, b"accept")
    if accept is None or not accept.strip():
        return
    for entry in accept.split(","):
        kind, parameters = _media_type(entry)
        if kind in ("text/plain", "text/*", "*/*") and _weight(parameters) > 0:
            return
    raise BadRequest(406, "A reservation's token is text/plain, which Accept does not allow")


def read_token(headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> EventStreamToken:
    """The request's token, or :class:`~.http.BadRequest`."""
    text = request_token(headers, query_string)
    if text is None:
        raise BadRequest(
            400,
            "The event stream token is missing: send it in the "
            "X-GraphQL-Event-Stream-Token header or the 'token' query parameter",
        )
    return EventStreamToken.parse(text)


def _checked_operation_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(400, f"Operation ID is missing: {where} must be a non-empty string")
    if len(value) > MAX_OPERATION_ID_LENGTH:
        raise BadRequest(400, f"The operation ID is longer than {MAX_OPERATION_ID_LENGTH}")
    return value


def read_stop(query_string: bytes) -> str:
    """The operation a ``DELETE`` stops (its ``operationId`` query parameter)."""
    return _checked_operation_id(
        _query_parameter(query_string, OPERATION_ID_PARAMETER), "the 'operationId' parameter"
    )


def check_submission_head(
    method: str, headers: Iterable[tuple[bytes, bytes]], query_string: bytes, max_size: int | None
) -> None:
    """What can be checked of a submission before its body: the answer's media type
    (JSON: the results go to the stream), a POST's content type, a GET's URL length."""
    headers = list(headers)
    if negotiate(_header(headers, b"accept"))[0] is None:
        raise BadRequest(406, f"A submitted operation is answered with {JSON}")
    if method.upper() == "GET":
        if max_size is not None and len(query_string) > max_size:
            raise BadRequest(414, f"The URL is longer than {max_size} bytes")
        return
    kind, parameters = _media_type(_header(headers, b"content-type") or "")
    if kind != JSON or parameters.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
        # Only application/json: a form or text/plain body is what a page of another
        # site may send without a CORS preflight.
        raise BadRequest(
            415,
            f"POST requests need 'Content-Type: {JSON}' (UTF-8)",
            (("accept-post", f"{JSON}; charset=utf-8"),),
        )


def read_submission(method: str, body: bytes, query_string: bytes) -> tuple[str, OperationPayload]:
    """A submission's operation ID and operation, or :class:`~.http.BadRequest`."""
    payload = decode_get(query_string) if method.upper() == "GET" else decode_post(body)
    extensions = payload.get("extensions") or {}
    operation_id = _checked_operation_id(
        extensions.get(OPERATION_ID_EXTENSION), "extensions.operationId"
    )
    return operation_id, payload


def dumps(value: object) -> bytes:
    # ASCII-only compact JSON: one "data:" line, lone surrogates stay escaped.
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def respond(
    status: int, message: str | None = None, headers: tuple[tuple[str, str], ...] = ()
) -> Respond:
    """A whole response: ``{"errors": [{"message": ...}]}`` as JSON, or no body."""
    if message is None:
        return Respond(status, headers, b"")
    return Respond(status, (*JSON_CONTENT_TYPE, *headers), dumps({"errors": [error(message)]}))


def respond_bad_request(exc: BadRequest) -> Respond:
    return respond(exc.status, exc.message, exc.headers)


class StreamState(enum.Enum):
    RESERVED = "reserved"
    """Reserved, not opened yet: events wait."""
    OPEN = "open"
    CLOSED = "closed"
    """Its client is gone, or the reservation expired: nothing more happens."""


class DuplicateOperation(Exception):
    """A submission whose operation ID is in use on the stream (409)."""


class EventStreamProtocol:
    """State machine of one single-connection-mode event stream (server side); see the
    module docstring."""

    def __init__(self) -> None:
        self.state = StreamState.RESERVED
        self.operations: dict[str, Operation] = {}
        """The active operations, by ID."""
        self._unanswered: dict[Operation, str] = {}
        """Operations whose submitting request awaits its answer, with its method."""

    # --- events from the I/O shell --------------------------------------------------------

    def open(self, http_version: str = "1.1") -> list[Action]:
        """The reserved stream's ``GET`` arrived: the event stream starts."""
        if self.state is not StreamState.RESERVED:
            return []
        self.state = StreamState.OPEN
        headers: list[tuple[str, str]] = [
            ("content-type", f"{EVENT_STREAM}; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("x-accel-buffering", "no"),
        ]
        if http_version in ("1.0", "1.1"):
            headers.append(("connection", "keep-alive"))
        return [StartStream(200, tuple(headers), HEARTBEAT)]

    def submit(self, operation_id: str, payload: OperationPayload, method: str) -> list[Action]:
        """A request submitted an operation; :class:`DuplicateOperation` if its ID is in
        use. The request waits for the operation's :class:`~.common.AnswerSubmission`."""
        if self.state is StreamState.CLOSED:
            return []
        if operation_id in self.operations:
            raise DuplicateOperation(operation_id)
        operation = Operation(operation_id, payload)
        self.operations[operation_id] = operation
        self._unanswered[operation] = method.upper()
        return [StartOperation(operation)]

    def stop(self, operation_id: str) -> list[Action]:
        """A ``DELETE`` stops an operation (nothing for an ID not in use)."""
        operation = self.operations.pop(operation_id, None)
        if operation is None:
            return []
        return [*self._answer(operation, 204), StopOperation(operation)]

    def heartbeat(self) -> list[Action]:
        if self.state is not StreamState.OPEN:
            return []
        return [SendChunk(HEARTBEAT)]

    def close(self) -> list[Action]:
        """The stream ends (its client left, or it was never opened): every operation
        stops; a request still waiting learns that the stream is gone."""
        self.state = StreamState.CLOSED
        actions: list[Action] = []
        for operation in self.operations.values():
            actions += self._answer(operation, 404, "Stream not found")
            actions.append(StopOperation(operation))
        self.operations.clear()
        return actions

    # --- from the operation runner ----------------------------------------------------------

    def is_active(self, operation: Operation) -> bool:
        return (
            self.state is not StreamState.CLOSED and self.operations.get(operation.id) is operation
        )

    def refusal(self, operation: Operation, operation_type: OperationType) -> list[Action] | None:
        if not self.is_active(operation):
            return []
        if operation_type is OperationType.MUTATION and self._unanswered.get(operation) == "GET":
            # GraphQL over HTTP, GET: "GET requests MUST NOT be used for executing
            # mutation operations"; 405, with the Allow header of RFC 9110.
            self._forget(operation)
            return self._answer(
                operation, 405, "Mutations cannot be sent with GET: use POST", (("allow", "POST"),)
            )
        return None

    def subscribed(self, operation: Operation) -> list[Action]:
        if not self.is_active(operation):
            return []
        return self._answer(operation, 202)

    def incremental_delivery(self, operation: Operation) -> bool:
        """Every payload of an incremental result is a ``next`` event of its own."""
        return True

    def send_incremental_result(self, operation: Operation, payload_json: str) -> list[Action]:
        return self.send_serialized_result(operation, payload_json)

    def send_result(
        self, operation: Operation, result: ExecutionResultPayload, *, request_error: bool = False
    ) -> list[Action]:
        if not self.is_active(operation):
            return []
        return [*self._answer(operation, 202), self._next(operation, dumps(result))]

    def send_serialized_result(self, operation: Operation, payload_json: str) -> list[Action]:
        if not self.is_active(operation):
            return []
        return [
            *self._answer(operation, 202),
            self._next(operation, payload_json.encode("utf-8", "surrogatepass")),
        ]

    def send_errors(
        self,
        operation: Operation,
        errors: Sequence[FormattedError],
        failure: Failure = Failure.INVALID,
    ) -> list[Action]:
        """The operation ended before it ran: its request gets the errors (GraphQL over
        HTTP's status for them), or, answered already, the stream gets them."""
        if not self.is_active(operation):
            return []
        if operation in self._unanswered:
            self._forget(operation)
            status = {Failure.INVALID: 400, Failure.REFUSED: 403, Failure.INTERNAL: 500}[failure]
            body = dumps({"errors": list(errors)})
            return [AnswerSubmission(operation, status, JSON_CONTENT_TYPE, body)]
        return [
            self._next(operation, dumps({"errors": list(errors)})),
            *self.complete(operation),
        ]

    def complete(self, operation: Operation) -> list[Action]:
        if not self.is_active(operation):
            return []
        actions = self._answer(operation, 202)
        self._forget(operation)
        data = dumps({"id": operation.id})
        return [*actions, SendChunk(b"event: complete\ndata: " + data + b"\n\n")]

    # --- internals ------------------------------------------------------------------------

    def _forget(self, operation: Operation) -> None:
        if self.operations.get(operation.id) is operation:
            del self.operations[operation.id]

    def _answer(
        self,
        operation: Operation,
        status: int,
        message: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> list[Action]:
        if self._unanswered.pop(operation, None) is None:
            return []
        response = respond(status, message, headers)
        return [AnswerSubmission(operation, status, response.headers, response.body)]

    def _next(self, operation: Operation, payload: bytes) -> SendChunk:
        # Compact JSON holds no line break: the data is one "data:" line.
        prefix = b'event: next\ndata: {"id":' + dumps(operation.id) + b',"payload":'
        return SendChunk(prefix + payload + b"}\n\n")
