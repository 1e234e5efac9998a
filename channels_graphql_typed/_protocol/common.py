"""Pieces shared by both protocol state machines: close codes, actions, operations.

Theory of operation
-------------------
A protocol machine is a sans-IO object: it never awaits, never touches a socket,
knows nothing of Channels or Django. The I/O shell (the consumer) feeds it what
happens -- a text or binary frame arrived, the ``on_connect`` hook accepted or
rejected the connection, an operation produced a result, a timer fired -- and each
call returns a list of *actions* for the shell to carry out, in order:

* :class:`Send` -- send this message (a JSON-serializable dict) to the client;
* :class:`Close` -- close the socket with this code and reason;
* :class:`ConnectionInitRequested` -- run the ``on_connect`` hook with this payload,
  then call :meth:`ProtocolMachine.accept_connection` or
  :meth:`ProtocolMachine.reject_connection`;
* :class:`StartOperation` / :class:`StopOperation` -- start or cancel the execution of
  one operation.

The machine is the single authority on which operations are active. Each started
operation is an :class:`Operation` object; results are reported against that
object, not against its id, so that a result of an operation the client has
already completed (whose id the client may even have reused) is dropped instead
of being sent under the new operation's id.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import json
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .messages import OperationPayload, ServerMessage

if TYPE_CHECKING:
    from collections.abc import Sequence

    from graphql import OperationType

    from .messages import ExecutionResultPayload, FormattedError


class CloseCode(enum.IntEnum):
    """Every WebSocket close code this package sends, reports or expects.

    The 1xxx codes are RFC 6455's (section 7.4.1); the 4xxx codes are those of
    graphql-transport-ws (PROTOCOL.md, and the graphql-ws npm library's ``CloseCode``),
    which the legacy protocol's servers use too.
    """

    NORMAL = 1000
    """The purpose of the connection is fulfilled (also: ``connection_terminate``)."""
    GOING_AWAY = 1001
    """An endpoint leaves: a server going down, a browser leaving the page."""
    ABNORMAL_CLOSURE = 1006
    """Never sent: reported for a connection that ended without a close frame (it could
    not open, its handshake was refused, it was dropped), as browsers report it."""
    UNEXPECTED_CONDITION = 1011
    """RFC 6455's "internal error": the server met a condition it did not expect (the
    testing transport reports an application that raised with it)."""
    SERVICE_RESTART = 1012
    """The server is restarting (uvicorn closes its sockets with it on shutdown)."""
    BAD_RESPONSE = 4004
    """The client got a message it cannot accept from the server."""
    BAD_REQUEST = 4400
    """The server got a message it cannot accept from the client."""
    UNAUTHORIZED = 4401
    """An operation before the connection was acknowledged."""
    FORBIDDEN = 4403
    """``on_connect`` refused the connection."""
    SUBPROTOCOL_NOT_ACCEPTABLE = 4406
    """The client offered no subprotocol that the server speaks."""
    CONNECTION_INITIALISATION_TIMEOUT = 4408
    """No ``connection_init`` in time."""
    SUBSCRIBER_ALREADY_EXISTS = 4409
    """An operation id that is in use."""
    TOO_MANY_INITIALISATION_REQUESTS = 4429
    """A second ``connection_init``."""
    INTERNAL_ERROR = 4500
    """The server failed (graphql-ws' ``InternalServerError``)."""


class ConnectionState(enum.Enum):
    """Where a connection is in its handshake."""

    AWAITING_INIT = "awaiting_init"
    """No ``connection_init`` received yet."""
    INITIALISING = "initialising"
    """``connection_init`` received; ``on_connect`` is running."""
    READY = "ready"
    """Acknowledged: operations may run."""
    CLOSED = "closed"
    """The machine asked to close; it ignores everything from now on."""


@dataclasses.dataclass(eq=False, slots=True)
class Operation:
    """One operation started by the client: identity matters, not the id alone."""

    id: str
    payload: OperationPayload
    result_prefix: str = ""
    """The start of this operation's result messages, up to the payload (set by the
    machine that started it): a shared serialized result needs only the end appended."""


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    message: ServerMessage


@dataclasses.dataclass(frozen=True, slots=True)
class SendText:
    """A message already serialized to JSON text (see ``send_serialized_result``)."""

    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionInitRequested:
    payload: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class StartOperation:
    operation: Operation


@dataclasses.dataclass(frozen=True, slots=True)
class StopOperation:
    operation: Operation


@dataclasses.dataclass(frozen=True, slots=True)
class Respond:
    """HTTP: send this whole response (status, headers, body); the request is answered."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class StartStream:
    """HTTP: start a streamed response with this status, headers and first chunk."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class SendChunk:
    """HTTP: one more chunk of a streamed response."""

    body: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class EndStream:
    """HTTP: the streamed response is complete."""


@dataclasses.dataclass(frozen=True, slots=True)
class AnswerSubmission:
    """SSE, single connection mode: answer the request that submitted ``operation``
    (its results go to the event stream, not to that request)."""

    operation: Operation
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


Action = (
    Send
    | SendText
    | Close
    | ConnectionInitRequested
    | StartOperation
    | StopOperation
    | Respond
    | StartStream
    | SendChunk
    | EndStream
    | AnswerSubmission
)
"""Every action a machine may return: the WebSocket machines' and the HTTP machine's
(:mod:`.http`); each transport's shell carries out those of its machine."""


class Failure(enum.Enum):
    """Why an operation ended before it ran, for the transports whose answer depends on
    it (HTTP picks its status code by it; the WebSocket protocols answer alike)."""

    INVALID = "invalid"
    """The request's fault: the document does not parse or validate, names no operation,
    or passes a limit."""
    REFUSED = "refused"
    """The server's ``on_operation`` hook refused it."""
    INTERNAL = "internal"
    """The server failed."""


DEFAULT_MAX_MESSAGE_SIZE: Final = 1024 * 1024
DEFAULT_MAX_OPERATIONS_SIZE: Final = 200_000
"""Tokens of documents plus values of variables that one connection's active operations
may hold together."""
RELEASED_PAYLOAD: Final[OperationPayload] = {"query": ""}
"""What an operation keeps as its payload once it has been prepared."""
MAX_OPERATION_ID_LENGTH: Final = 1024
MAX_CLOSE_REASON_BYTES: Final = 123


class InvalidMessage(Exception):
    """Raised inside a machine while validating an incoming message.

    ``code`` is the close code that the message calls for, like wsproto's
    ``ParseFailed.code``: graphql-transport-ws closes with it; the legacy protocol keeps
    the connection open and answers with an ``error`` (about ``operation_id`` when the
    message named one).
    """

    def __init__(
        self,
        reason: str,
        operation_id: str | None = None,
        *,
        code: CloseCode = CloseCode.BAD_REQUEST,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.operation_id = operation_id
        self.code = code


def count_json_values(value: object, limit: int) -> int:
    """How many JSON values ``value`` holds (containers and scalars alike), counting no
    further than ``limit + 1``: a hostile frame costs at most that many steps."""
    count = 0
    pending = [value]
    while pending:
        item = pending.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count


def error(message: str) -> FormattedError:
    """A wire error with only a message."""
    return {"message": message}


def message_too_large(text: str, limit: int) -> bool:
    # A character takes 1 to 4 bytes in UTF-8: decide without encoding when we can.
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def truncate_reason(reason: str) -> str:
    """A close reason must fit in 123 bytes of UTF-8 (RFC 6455, section 5.5)."""
    # "replace": a reason may quote client input (an operation id), and JSON lets a
    # client send lone surrogates ("\ud800") that UTF-8 cannot encode.
    encoded = reason.encode("utf-8", "replace")
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return encoded.decode("utf-8")
    return encoded[: MAX_CLOSE_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; json.loads accepts them unless told otherwise.
    raise ValueError(f"{name} is not valid JSON")


_FRAME_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
"""One decoder for every frame: ``json.loads`` with an option builds a new one per call."""


def decode_frame(text: str) -> dict[str, object]:
    """Parse one text frame into a dict with a string ``type``, or raise InvalidMessage."""
    try:
        value = _FRAME_DECODER.decode(text)
    except (ValueError, RecursionError):
        raise InvalidMessage("Invalid message: not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidMessage("Invalid message: expected a JSON object")
    message_type = value.get("type")
    if not isinstance(message_type, str):
        raise InvalidMessage("Invalid message: missing or non-string 'type'")
    return value


_T = TypeVar("_T")


def optional_field(
    container: dict[str, object],
    key: str,
    kind: type[_T],
    reason: str,
    operation_id: str | None = None,
) -> _T | None:
    """``container[key]`` if it is a ``kind``; None if it is missing or null; else
    :class:`InvalidMessage` with ``reason``. Both sides read optional fields with it:
    the server machines from the client's messages, the client machine from the
    server's."""
    value = container.get(key)
    if value is None or isinstance(value, kind):
        return value
    raise InvalidMessage(reason, operation_id)


def optional_object(message: dict[str, object], key: str, what: str) -> dict[str, Any] | None:
    return optional_field(message, key, dict, f"Invalid message: {what} must be an object")


def operation_id(message: dict[str, object]) -> str:
    value = message.get("id")
    if not isinstance(value, str) or not value:
        raise InvalidMessage("Invalid message: 'id' must be a non-empty string")
    if len(value) > MAX_OPERATION_ID_LENGTH:
        raise InvalidMessage("Invalid message: 'id' is too long")
    return value


def operation_payload(message: dict[str, object], operation: str) -> OperationPayload:
    payload = message.get("payload")
    if not isinstance(payload, dict):
        raise InvalidMessage("Invalid message: the operation payload must be an object", operation)
    query = payload.get("query")
    if not isinstance(query, str):
        raise InvalidMessage("Invalid message: 'payload.query' must be a string", operation)

    def optional(key: str, kind: type[_T], what: str) -> _T | None:
        reason = f"Invalid message: 'payload.{key}' must be {what}"
        return optional_field(payload, key, kind, reason, operation)

    return {
        "query": query,
        "variables": optional("variables", dict, "an object"),
        "operationName": optional("operationName", str, "a string"),
        "extensions": optional("extensions", dict, "an object"),
    }


class ProtocolMachine(abc.ABC):
    """State shared by both protocols: the handshake state and the active operations.

    Subclasses implement the wire format (:meth:`receive_text` and the message builders).
    """

    subprotocol: str
    _result_envelope: str
    """The ``type`` of a result message: ``next`` or ``data``."""
    keepalive_on_ack = False
    """Whether the protocol expects a keep-alive right after the acknowledgement."""

    def __init__(
        self,
        *,
        max_operations: int | None = 100,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_init_payload_size: int | None = None,
    ) -> None:
        self.state = ConnectionState.AWAITING_INIT
        self.max_operations = max_operations
        self.max_message_size = max_message_size
        self.max_init_payload_size = max_init_payload_size
        self.operations: dict[str, Operation] = {}

    # --- events from the I/O shell --------------------------------------------------------

    @abc.abstractmethod
    def receive_text(self, text: str) -> list[Action]:
        """A text frame arrived."""

    @abc.abstractmethod
    def receive_bytes(self, data: bytes) -> list[Action]:
        """A binary frame arrived."""

    def accept_connection(self, payload: dict[str, Any] | None) -> list[Action]:
        """``on_connect`` accepted the connection: acknowledge it."""
        if self.state is not ConnectionState.INITIALISING:
            return []
        self.state = ConnectionState.READY
        return self._acknowledge(payload)

    def reject_connection(self, payload: dict[str, Any] | None) -> list[Action]:
        """``on_connect`` refused the connection."""
        if self.state is ConnectionState.CLOSED:
            return []
        return self._reject(payload)

    def init_timeout(self) -> list[Action]:
        """The ``connection_init`` wait timer fired."""
        if self.state is not ConnectionState.AWAITING_INIT:
            return []
        return self.close(
            CloseCode.CONNECTION_INITIALISATION_TIMEOUT, "Connection initialisation timeout"
        )

    def is_active(self, operation: Operation) -> bool:
        return self.operations.get(operation.id) is operation

    def send_result(
        self, operation: Operation, result: ExecutionResultPayload, *, request_error: bool = False
    ) -> list[Action]:
        """One result of an operation (a query's only result or a subscription event).

        ``request_error``: the result holds request errors that stopped execution before
        it began (variables that cannot be coerced); the WebSocket protocols send it
        like any result."""
        if not self.is_active(operation):
            return []
        return [Send(self._result_message(operation.id, result))]

    def send_serialized_result(self, operation: Operation, payload_json: str) -> list[Action]:
        """Like :meth:`send_result`, for a payload already serialized to JSON.

        Many subscribers often get the same result: it is serialized once and only the
        envelope, which carries the operation id, is built per subscriber.
        """
        if not self.is_active(operation):
            return []
        return [SendText(f"{operation.result_prefix}{payload_json}}}")]

    def send_errors(
        self,
        operation: Operation,
        errors: Sequence[FormattedError],
        failure: Failure = Failure.INVALID,
    ) -> list[Action]:
        """The operation failed before execution (parse, validation, rejection): it ends."""
        if not self.is_active(operation):
            return []
        del self.operations[operation.id]
        return [Send(self._errors_message(operation.id, list(errors)))]

    def refusal(self, operation: Operation, operation_type: OperationType) -> list[Action] | None:
        """Both WebSocket protocols run every type of operation: None."""
        return None

    def incremental_delivery(self, operation: Operation) -> bool:
        """Over WebSocket, ``@defer`` and ``@stream`` are ignored: a query's whole result
        is one result message. (Strawberry refuses such a query over WebSocket; clients
        of either subprotocol, this library's among them, expect one result per query
        and end it there.)"""
        return False

    def send_incremental_result(self, operation: Operation, payload_json: str) -> list[Action]:
        """Never called (see :meth:`incremental_delivery`); a result message."""
        return self.send_serialized_result(operation, payload_json)

    def subscribed(self, operation: Operation) -> list[Action]:
        """A subscription is in all its groups: nothing to send over WebSocket."""
        return []

    def complete(self, operation: Operation) -> list[Action]:
        """The operation finished on the server side."""
        if not self.is_active(operation):
            return []
        del self.operations[operation.id]
        return [Send({"type": "complete", "id": operation.id})]

    @abc.abstractmethod
    def keepalive(self) -> list[Action]:
        """The keep-alive timer fired."""

    def close(self, code: int, reason: str) -> list[Action]:
        """Close the connection; every active operation is stopped first."""
        if self.state is ConnectionState.CLOSED:
            return []
        self.state = ConnectionState.CLOSED
        actions: list[Action] = [StopOperation(op) for op in self.operations.values()]
        self.operations.clear()
        actions.append(Close(code, truncate_reason(reason)))
        return actions

    # --- helpers for subclasses -----------------------------------------------------------

    def _too_large(self, text: str) -> bool:
        return self.max_message_size is not None and message_too_large(text, self.max_message_size)

    def _init_too_large(self, message: dict[str, object], text: str) -> bool:
        return (
            message["type"] == "connection_init"
            and self.max_init_payload_size is not None
            and message_too_large(text, self.max_init_payload_size)
        )

    def _too_many_operations(self) -> bool:
        return self.max_operations is not None and len(self.operations) >= self.max_operations

    def _start(self, operation_id: str, payload: OperationPayload) -> list[Action]:
        prefix = f'{{"type":"{self._result_envelope}","id":{json.dumps(operation_id)},"payload":'
        operation = Operation(operation_id, payload, prefix)
        self.operations[operation_id] = operation
        return [StartOperation(operation)]

    def _acknowledge(self, payload: dict[str, Any] | None) -> list[Action]:
        # Both protocols acknowledge with the same message.
        if payload is None:
            return [Send({"type": "connection_ack"})]
        return [Send({"type": "connection_ack", "payload": payload})]

    @abc.abstractmethod
    def _reject(self, payload: dict[str, Any] | None) -> list[Action]: ...

    @abc.abstractmethod
    def _result_message(
        self, operation_id: str, result: ExecutionResultPayload
    ) -> ServerMessage: ...

    @abc.abstractmethod
    def _errors_message(self, operation_id: str, errors: list[FormattedError]) -> ServerMessage: ...


TOO_MANY_OPERATIONS = "Too many operations on this connection"
