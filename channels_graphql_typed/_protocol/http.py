"""GraphQL over HTTP and over Server-Sent Events (distinct connections mode), sans-IO.

Specifications:

* GraphQL over HTTP, the working draft
  (https://github.com/graphql/graphql-over-http/blob/main/spec/GraphQLOverHTTP.md), as
  the ``graphql-http`` audit suite checks it;
* GraphQL over SSE, "distinct connections mode"
  (https://github.com/enisdenjo/graphql-sse/blob/master/PROTOCOL.md): one request, one
  operation, one event stream.

Theory of operation
-------------------
One :class:`GraphqlHttpProtocol` per HTTP request, which holds at most one operation.
The I/O shell feeds it the request's body as it arrives
(:meth:`~GraphqlHttpProtocol.receive_body`); the machine checks the request line and
headers on the first chunk, the body's size on each, and decodes the GraphQL request
once the body is complete. Its answer is either a :class:`~.common.Respond` (a request
that is not a well-formed GraphQL-over-HTTP request never reaches execution) or a
:class:`~.common.StartOperation`. From then on the operation runner reports through the
same methods as for the WebSocket machines (``send_result``, ``send_errors``,
``complete``), plus two that only matter here:

* ``refusal``, once the operation is prepared and its type known: a mutation over GET
  is refused with 405 (the spec's "GET requests MUST NOT be used for executing mutation
  operations"), a subscription without an event stream to carry it is refused with a
  GraphQL error (as graphql-http's reference server does); otherwise the response's
  form is settled: one JSON document, or an event stream;
* ``subscribed``: a subscription is in all its groups. The event stream starts there
  (status, headers and a first comment), so a client that has the response's headers
  knows that no broadcast sent from then on will pass its subscription by.

Content negotiation (``Accept``, with its ``q`` weights): one result goes as
``application/graphql-response+json`` or ``application/json``, the former preferred at
equal weight, the latter for ``*/*``, ``application/*`` and a missing ``Accept``; an
event stream needs ``text/event-stream`` by name. When the event stream weighs more than
either JSON type, or is the only one, every operation goes as an event stream (a
graphql-sse client asks for ``text/event-stream`` alone); otherwise only subscriptions
do.

Status codes of one JSON result (the draft's "Status Codes"): with
``application/graphql-response+json``, 200 once execution has begun; request errors --
a document that does not parse or validate, no operation to run, variables that cannot
be coerced -- are 400 without a ``data`` entry; 403 when the server's ``on_operation``
hook refused the operation; 500 when the server failed. With ``application/json``
(legacy clients), every well-formed request gets 200 but the server's failures (500).
A request that is not well formed gets 400 (405, 406, 413, 414, 415 where the draft
names them), whatever it accepts.

In an event stream, every outcome is events: ``next`` with a result (errors of the
document too: graphql-sse's "validation steps that run before execution MUST report
errors through an accepted SSE connection by emitting next events"), then ``complete``,
then the end of the response. A comment (``:``) keeps an idle stream open through
proxies (:meth:`GraphqlHttpProtocol.heartbeat`). The client ends a subscription by
closing the connection (:meth:`GraphqlHttpProtocol.disconnect`).
"""

from __future__ import annotations

import enum
import json
import math
import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from graphql import OperationType

from .common import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Action,
    EndStream,
    Failure,
    Operation,
    Respond,
    SendChunk,
    StartOperation,
    StartStream,
    StopOperation,
    error,
)
from .messages import EVENT_ID_EXTENSION, RESUME_AFTER_EXTENSION

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .messages import ExecutionResultPayload, FormattedError, OperationPayload

GRAPHQL_RESPONSE_JSON: Final = "application/graphql-response+json"
JSON: Final = "application/json"
EVENT_STREAM: Final = "text/event-stream"

ALLOWED_METHODS: Final = "GET, POST"
HEARTBEAT: Final = b":\n\n"
"""An SSE comment: the client's parser ignores it (WHATWG HTML, "Server-sent events")."""
COMPLETE_EVENT: Final = b"event: complete\ndata:\n\n"
"""The ``complete`` event, with the empty ``data`` field that EventSource needs to
dispatch it (graphql-sse PROTOCOL.md)."""


class ResponseForm(enum.Enum):
    """How the response carries the operation's outcome."""

    GRAPHQL_RESPONSE_JSON = GRAPHQL_RESPONSE_JSON
    JSON = JSON
    EVENT_STREAM = EVENT_STREAM


class RequestState(enum.Enum):
    """Where a request is."""

    RECEIVING = "receiving"
    """The body is arriving."""
    RUNNING = "running"
    """The operation runs; nothing is sent yet."""
    STREAMING = "streaming"
    """The event stream has started."""
    DONE = "done"
    """The response is complete (or the client is gone)."""


class BadRequest(Exception):
    """The request is not a well-formed GraphQL-over-HTTP request: answered with
    ``status`` (and ``headers``) and one error, before anything runs."""

    def __init__(
        self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = value.partition(";")
    parameters: dict[str, str] = {}
    for parameter in rest.split(";"):
        name, equals, parameter_value = parameter.partition("=")
        if equals:
            parameters[name.strip().lower()] = parameter_value.strip().strip('"')
    return kind.strip().lower(), parameters


def _weight(parameters: dict[str, str]) -> float:
    # RFC 9110, 12.4.2: a qvalue is 0 to 1 with at most three decimals; anything else
    # is not a weight we can read, and such an entry is ignored.
    text = parameters.get("q")
    if text is None:
        return 1.0
    try:
        weight = float(text)
    except ValueError:
        return 0.0
    return weight if math.isfinite(weight) and 0 <= weight <= 1 else 0.0


def negotiate(accept: str | None) -> tuple[ResponseForm | None, float, float]:
    """From an ``Accept`` header: the best single-result form (None: neither JSON type
    is acceptable), its weight, and the event stream's weight (0: not acceptable)."""
    if accept is None or not accept.strip():
        # The draft lets a server choose when there is no Accept; the audits expect JSON.
        return ResponseForm.JSON, 1.0, 0.0
    graphql_response = json_weight = stream = 0.0
    for entry in accept.split(","):
        kind, parameters = _media_type(entry)
        weight = _weight(parameters)
        if kind == GRAPHQL_RESPONSE_JSON:
            graphql_response = max(graphql_response, weight)
        elif kind in (JSON, "application/*", "*/*"):
            json_weight = max(json_weight, weight)
        elif kind == EVENT_STREAM:
            stream = max(stream, weight)
    if graphql_response == json_weight == 0:
        return None, 0.0, stream
    if graphql_response >= json_weight:
        return ResponseForm.GRAPHQL_RESPONSE_JSON, graphql_response, stream
    return ResponseForm.JSON, json_weight, stream


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BadRequest(400, f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest(400, f"{what} must be a JSON object")
    return value


def _optional(value: Any, kind: type, name: str, what: str) -> Any:
    # The draft: "Specifying null for optional request parameters is equivalent to not
    # specifying them at all."
    if value is None or isinstance(value, kind):
        return value
    raise BadRequest(400, f"'{name}' must be {what}")


def request_payload(parameters: dict[str, Any]) -> OperationPayload:
    """The operation of a decoded request's parameters, or :class:`BadRequest`."""
    query = parameters.get("query")
    if query is None:
        raise BadRequest(400, "'query' is missing")
    if not isinstance(query, str):
        raise BadRequest(400, "'query' must be a string")
    operation_name = _optional(parameters.get("operationName"), str, "operationName", "a string")
    return {
        "query": query,
        "variables": _optional(parameters.get("variables"), dict, "variables", "an object"),
        # The draft, GET: "Specifying the empty string for optional request parameters
        # is equivalent to not specifying them at all."
        "operationName": operation_name or None,
        "extensions": _optional(parameters.get("extensions"), dict, "extensions", "an object"),
    }


def decode_get(query_string: bytes) -> OperationPayload:
    """A GET request's parameters: ``application/x-www-form-urlencoded`` in the URL, with
    ``variables`` and ``extensions`` as JSON texts."""
    try:
        pairs = parse_qsl(query_string.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "The query string is not valid UTF-8 form data") from None
    parameters: dict[str, Any] = {}
    for name, value in pairs:
        parameters.setdefault(name, value)  # URLSearchParams.get: the first one
    for name in ("variables", "extensions"):
        text = parameters.get(name)
        if text == "":
            parameters[name] = None
        elif text is not None:
            parameters[name] = _json_object(text, f"'{name}'")
    return request_payload(parameters)


def decode_post(body: bytes) -> OperationPayload:
    """A POST request's ``application/json`` body."""
    if not body:
        raise BadRequest(400, "The request body is missing")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "The request body is not valid UTF-8") from None
    return request_payload(_json_object(text, "The request body"))


_EVENT_ID_KEY: Final = b'"' + EVENT_ID_EXTENSION.encode() + b'":"'
_EVENT_ID = re.compile(rb"[0-9]{1,20}-[0-9]{1,20}")


def _event_id_line(data: bytes) -> bytes:
    """The SSE ``id:`` line of a resumable subscription's result (its event id, which
    an EventSource sends back as ``Last-Event-ID`` when it reconnects), else nothing.

    Found in the serialized result rather than parsed: in compact JSON the key, quotes
    included, can only be the extension's (a string holding it has its quotes escaped,
    and GraphQL names hold no dot)."""
    start = data.rfind(_EVENT_ID_KEY)
    if start < 0:
        return b""
    start += len(_EVENT_ID_KEY)
    end = data.find(b'"', start)
    value = data[start:end]
    return b"id: " + value + b"\n" if _EVENT_ID.fullmatch(value) else b""


def _dumps(value: object) -> bytes:
    # ASCII-only JSON: a lone surrogate a client sent ("\ud800") stays escaped.
    return json.dumps(value, separators=(",", ":")).encode("ascii")


class GraphqlHttpProtocol:
    """State machine of one GraphQL-over-HTTP request (server side); see the module
    docstring."""

    def __init__(
        self,
        *,
        method: str,
        headers: Iterable[tuple[bytes, bytes]],
        query_string: bytes = b"",
        http_version: str = "1.1",
        operation_id: str = "1",
        max_body_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        allowed_methods: str = ALLOWED_METHODS,
    ) -> None:
        self.method = method.upper()
        self.allowed_methods = allowed_methods
        """What a 405's ``Allow`` lists: the methods the endpoint serves."""
        self.headers = list(headers)
        self.query_string = query_string
        self.http_version = http_version
        self.operation_id = operation_id
        self.max_body_size = max_body_size
        self.state = RequestState.RECEIVING
        self.operation: Operation | None = None
        self.form: ResponseForm | None = None
        """The response's form, once settled."""
        self._body: list[bytes] = []
        self._body_size = 0
        self._checked = False
        self._single, single_weight, stream_weight = negotiate(_header(self.headers, b"accept"))
        self._stream_acceptable = stream_weight > 0
        self._stream_preferred = stream_weight > 0 and stream_weight > single_weight

    # --- events from the I/O shell --------------------------------------------------------

    def receive_body(self, chunk: bytes, more_body: bool) -> list[Action]:
        """A chunk of the request's body arrived (``more_body``: more will follow)."""
        if self.state is not RequestState.RECEIVING:
            return []
        try:
            if not self._checked:
                self._checked = True
                self._check_head()
            if self.method == "POST":
                self._body_size += len(chunk)
                if self.max_body_size is not None and self._body_size > self.max_body_size:
                    raise BadRequest(
                        413, f"The request body is larger than {self.max_body_size} bytes"
                    )
                self._body.append(chunk)
            if more_body:
                return []
            if self.method == "GET":
                payload = decode_get(self.query_string)
            else:
                body, self._body = b"".join(self._body), []
                payload = decode_post(body)
        except BadRequest as exc:
            return self._bad_request(exc)
        last_event_id = _header(self.headers, b"last-event-id")
        if last_event_id is not None:
            # An EventSource that reconnects sends the last ``id:`` it got: the
            # subscription resumes after it, as with the extension (which wins).
            extensions = payload.get("extensions") or {}
            if RESUME_AFTER_EXTENSION not in extensions:
                payload["extensions"] = {**extensions, RESUME_AFTER_EXTENSION: last_event_id}
        self.state = RequestState.RUNNING
        self.operation = Operation(self.operation_id, payload)
        return [StartOperation(self.operation)]

    def heartbeat(self) -> list[Action]:
        """The heartbeat timer fired: a comment, if the event stream is open."""
        if self.state is not RequestState.STREAMING:
            return []
        return [SendChunk(HEARTBEAT)]

    def disconnect(self) -> list[Action]:
        """The client is gone: its operation stops."""
        operation, active = self.operation, self._active_operation()
        self.state = RequestState.DONE
        if operation is not None and active:
            return [StopOperation(operation)]
        return []

    # --- from the operation runner ----------------------------------------------------------

    def refusal(self, operation: Operation, operation_type: OperationType) -> list[Action] | None:
        """Refuse an operation this request cannot carry; else settle the response's form."""
        if not self.is_active(operation):
            return []
        if operation_type is OperationType.MUTATION and self.method == "GET":
            # The draft, GET: "the server MUST respond with an appropriate 4xx status
            # code and halt execution; status code 405 (Method Not Allowed) is
            # RECOMMENDED", with the Allow header that RFC 9110 requires for 405.
            return self._respond_errors(
                405,
                [error("Mutations cannot be sent with GET: use POST")],
                (("allow", "POST"),),
            )
        if operation_type is OperationType.SUBSCRIPTION:
            if not self._stream_acceptable:
                return self.send_errors(
                    operation,
                    [
                        error(
                            "Subscriptions need a streamed response: send the request "
                            f"with 'Accept: {EVENT_STREAM}' (Server-Sent Events) or "
                            "'Accept: multipart/mixed;subscriptionSpec=1.0' (multipart)"
                        )
                    ],
                )
            self.form = ResponseForm.EVENT_STREAM
        else:
            self.form = self._default_form()
        return None

    def incremental_delivery(self, operation: Operation) -> bool:
        """An event stream carries each payload of an incremental result as a ``next``
        event; one JSON response carries the whole result."""
        return self._form() is ResponseForm.EVENT_STREAM

    def send_incremental_result(self, operation: Operation, payload_json: str) -> list[Action]:
        """One payload of an incremental result: a ``next`` event."""
        return self.send_serialized_result(operation, payload_json)

    def subscribed(self, operation: Operation) -> list[Action]:
        """A subscription is in all its groups: the event stream starts."""
        if not self.is_active(operation) or self.state is RequestState.STREAMING:
            return []
        return self._start_stream()

    def send_result(
        self, operation: Operation, result: ExecutionResultPayload, *, request_error: bool = False
    ) -> list[Action]:
        """One result: the response (JSON), or a ``next`` event."""
        if not self.is_active(operation):
            return []
        if self._form() is ResponseForm.EVENT_STREAM:
            return self._next_event(_dumps(result))
        if request_error and self._form() is ResponseForm.GRAPHQL_RESPONSE_JSON:
            # Variables that cannot be coerced: a request error, so no "data" entry and
            # a 4xx status (the draft: "If the GraphQL response does not contain the
            # data entry then the server MUST reply with an appropriate 4xx or 5xx").
            return self._respond(400, _dumps({"errors": result.get("errors", [])}))
        return self._respond(200, _dumps(result))

    def send_serialized_result(self, operation: Operation, payload_json: str) -> list[Action]:
        """Like :meth:`send_result`, for a result already serialized to JSON."""
        if not self.is_active(operation):
            return []
        body = payload_json.encode("utf-8", "surrogatepass")
        if self._form() is ResponseForm.EVENT_STREAM:
            return self._next_event(body)
        return self._respond(200, body)

    def send_errors(
        self,
        operation: Operation,
        errors: Sequence[FormattedError],
        failure: Failure = Failure.INVALID,
    ) -> list[Action]:
        """The operation ended before it ran: ``errors`` as the response, or as a ``next``
        event followed by ``complete``."""
        if not self.is_active(operation):
            return []
        if self._form() is ResponseForm.EVENT_STREAM:
            return [*self._next_event(_dumps({"errors": list(errors)})), *self.complete(operation)]
        if failure is Failure.INTERNAL:
            status = 500
        elif self._form() is ResponseForm.JSON:
            # Legacy clients: 200 for every well-formed request (graphql-http's audits
            # 572B, FDE2, 7B9B).
            status = 200
        else:
            status = 403 if failure is Failure.REFUSED else 400
        return self._respond_errors(status, list(errors))

    def complete(self, operation: Operation) -> list[Action]:
        """The operation ended: ``complete`` and the end of the event stream."""
        if not self.is_active(operation):
            return []
        if self._form() is not ResponseForm.EVENT_STREAM:
            # Every runner path sends a result or errors before completing; never leave
            # a client waiting if one did not.
            return self._respond_errors(500, [error("The operation ended without a result")])
        actions = self._start_stream() if self.state is RequestState.RUNNING else []
        self.state = RequestState.DONE
        return [*actions, SendChunk(COMPLETE_EVENT), EndStream()]

    def is_active(self, operation: Operation) -> bool:
        return operation is self.operation and self._active_operation()

    # --- helpers --------------------------------------------------------------------------

    def _active_operation(self) -> bool:
        return self.state in (RequestState.RUNNING, RequestState.STREAMING)

    def _check_head(self) -> None:
        if self.method not in ("GET", "POST"):
            raise BadRequest(
                405, f"Method {self.method[:16]} is not allowed", (("allow", self.allowed_methods),)
            )
        if self._single is None and not self._stream_acceptable:
            # The draft, Body: "If the Accept header is present but does not indicate
            # support for any of the server's supported media types or
            # application/json, the server SHOULD respond with 406 Not Acceptable."
            raise BadRequest(406, "None of the media types in Accept can be served")
        if self.method == "GET":
            if self.max_body_size is not None and len(self.query_string) > self.max_body_size:
                raise BadRequest(414, f"The URL is longer than {self.max_body_size} bytes")
            return
        content_type = _header(self.headers, b"content-type")
        kind, parameters = _media_type(content_type or "")
        charset = parameters.get("charset", "utf-8").lower()
        # Only application/json: a form or text/plain body is what a page of another site
        # may send without a CORS preflight, and must never execute.
        if kind != JSON or charset not in ("utf-8", "utf8"):
            raise BadRequest(
                415,
                f"POST requests need 'Content-Type: {JSON}' (UTF-8)",
                (("accept-post", f"{JSON}; charset=utf-8"),),
            )
        length = _header(self.headers, b"content-length")
        if length is not None and self.max_body_size is not None:
            try:
                too_long = int(length) > self.max_body_size
            except ValueError:
                raise BadRequest(400, "Invalid Content-Length") from None
            if too_long:
                raise BadRequest(413, f"The request body is larger than {self.max_body_size} bytes")

    def _default_form(self) -> ResponseForm:
        if self._stream_preferred or self._single is None:
            return ResponseForm.EVENT_STREAM
        return self._single

    def _form(self) -> ResponseForm:
        # Before refusal() settled it (the operation failed while being prepared): the
        # form the request prefers.
        return self.form if self.form is not None else self._default_form()

    def _content_type(self) -> str:
        form = self._single or ResponseForm.JSON
        if self.form is not None and self.form is not ResponseForm.EVENT_STREAM:
            form = self.form
        return f"{form.value}; charset=utf-8"

    def _respond(
        self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()
    ) -> list[Action]:
        self.state = RequestState.DONE
        return [Respond(status, (("content-type", self._content_type()), *headers), body)]

    def _respond_errors(
        self,
        status: int,
        errors: list[FormattedError],
        headers: tuple[tuple[str, str], ...] = (),
    ) -> list[Action]:
        return self._respond(status, _dumps({"errors": errors}), headers)

    def _bad_request(self, exc: BadRequest) -> list[Action]:
        # Not a GraphQL response of an operation, so never in an event stream: a client
        # of graphql-sse reads a failed response's status and body.
        return self._respond_errors(exc.status, [error(exc.message)], exc.headers)

    def _start_stream(self) -> list[Action]:
        self.state = RequestState.STREAMING
        self.form = ResponseForm.EVENT_STREAM
        headers: list[tuple[str, str]] = [
            ("content-type", f"{EVENT_STREAM}; charset=utf-8"),
            ("cache-control", "no-cache"),
            # nginx buffers responses unless told not to: events would arrive late.
            ("x-accel-buffering", "no"),
        ]
        if self.http_version in ("1.0", "1.1"):
            # A connection-specific header: HTTP/2 and 3 forbid it (RFC 9113, 8.2.2).
            headers.append(("connection", "keep-alive"))
        # A first comment, so that the headers go out at once (some browsers wait for
        # a first chunk of the body).
        return [StartStream(200, tuple(headers), HEARTBEAT)]

    def _next_event(self, data: bytes) -> list[Action]:
        actions = self._start_stream() if self.state is RequestState.RUNNING else []
        # Compact JSON holds no line break, so the data is one "data:" line.
        actions.append(SendChunk(_event_id_line(data) + b"event: next\ndata: " + data + b"\n\n"))
        return actions
