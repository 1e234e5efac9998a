"""The client side of both GraphQL WebSocket subprotocols, sans-IO.

Theory of operation
-------------------
:class:`ClientProtocolMachine` is the client's counterpart of the server machines in
:mod:`channels_graphql_typed._protocol`: it never awaits and never touches a socket.
The I/O shell (:class:`~channels_graphql_typed._client.GraphqlWsClient`) asks it for
the messages to send -- :meth:`~ClientProtocolMachine.initialise`,
:meth:`~ClientProtocolMachine.start`, :meth:`~ClientProtocolMachine.stop`,
:meth:`~ClientProtocolMachine.ping`, :meth:`~ClientProtocolMachine.terminate` -- and
feeds it every text frame the server sends (:meth:`~ClientProtocolMachine.receive_text`),
which returns *events*, in order:

* :class:`SendMessage` -- a reply the protocol requires at once (``pong`` to ``ping``);
* :class:`ConnectionAcknowledged`, :class:`ConnectionErrorReceived` -- the handshake;
* :class:`KeepAliveReceived`, :class:`PongReceived`;
* :class:`ResultReceived`, :class:`ErrorsReceived`, :class:`OperationCompleted` -- the
  results of one operation; the last two end it.

The machine is the authority on which operations are active. A message for an
operation that is not -- one the client has stopped, whose results may still be in
flight -- yields no event, so the shell never sees a result of an operation it gave
up. Every frame is validated: a malformed one, or a message the subprotocol does not
have, raises :class:`GraphqlWsProtocolError`.

The two subprotocols, message by message::

                        graphql-transport-ws          graphql-ws (legacy)
    start an operation  subscribe                     start
    a result            next                          data
    operation failed    error: a list of errors       error: one error object (this
                        (ends it, no complete)        library's server adds all of them
                                                      under ``errors``; ends it)
    operation ended     complete                      complete
    client stops one    complete (nothing follows)    stop (the server answers complete)
    keep-alive          ping, answered with pong      ka
    init rejected       close 4403                    connection_error, then a close
    client leaves       close                         connection_terminate, then close

Specifications: https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md and
https://github.com/apollographql/subscriptions-transport-ws/blob/master/PROTOCOL.md
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any, cast

from .._exceptions import GraphqlWsProtocolError
from .._protocol.common import InvalidMessage, decode_frame, optional_field
from .._protocol.messages import (
    GRAPHQL_TRANSPORT_WS,
    SUBPROTOCOLS,
    ExecutionResultPayload,
    FormattedError,
    LegacyClientMessage,
    TransportWsClientMessage,
)

if TYPE_CHECKING:
    from .._protocol.messages import (
        CompleteMessage,
        ConnectionInitMessage,
        LegacyConnectionTerminateMessage,
        LegacyStartMessage,
        LegacyStopMessage,
        OperationPayload,
        PingMessage,
        PongMessage,
        Subprotocol,
        SubscribeMessage,
    )

ClientMessage = TransportWsClientMessage | LegacyClientMessage
"""A message the client sends, on either subprotocol."""


class ClientState(enum.Enum):
    """Where the client is in the handshake."""

    CONNECTED = "connected"
    """The socket is open; ``connection_init`` not sent yet."""
    AWAITING_ACK = "awaiting_ack"
    """``connection_init`` sent; waiting for ``connection_ack``."""
    READY = "ready"
    """Acknowledged: operations may start."""
    CLOSED = "closed"
    """The connection is over; every frame is ignored."""


# --- events ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SendMessage:
    """Send this message to the server now (a reply the protocol requires)."""

    message: ClientMessage


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionAcknowledged:
    """``connection_ack``, with its payload (None when it had none)."""

    payload: dict[str, Any] | None


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionErrorReceived:
    """graphql-ws only: ``connection_error`` (during the handshake: the connection is
    rejected and a close follows), or an ``error`` about no operation in particular."""

    payload: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class KeepAliveReceived:
    """A server keep-alive: ``ping`` (graphql-transport-ws) or ``ka`` (graphql-ws)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PongReceived:
    """graphql-transport-ws only: ``pong``, the answer to a client ``ping``."""

    payload: dict[str, Any] | None


@dataclasses.dataclass(frozen=True, slots=True)
class ResultReceived:
    """One result of an active operation (``next`` / ``data``)."""

    operation_id: str
    payload: ExecutionResultPayload


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorsReceived:
    """The operation failed before execution (``error``); it has ended."""

    operation_id: str
    errors: list[FormattedError]


@dataclasses.dataclass(frozen=True, slots=True)
class OperationCompleted:
    """The server ended the operation (``complete``)."""

    operation_id: str


ClientEvent = (
    SendMessage
    | ConnectionAcknowledged
    | ConnectionErrorReceived
    | KeepAliveReceived
    | PongReceived
    | ResultReceived
    | ErrorsReceived
    | OperationCompleted
)
OperationEvent = ResultReceived | ErrorsReceived | OperationCompleted


# --- validation of server messages ----------------------------------------------------------


# They raise InvalidMessage, as the server machines' validators do (and share their
# helpers); receive_text turns it into GraphqlWsProtocolError, whatever its close code:
# the client closes 4004 (CloseCode.BAD_RESPONSE) on any message it cannot accept.


def _optional_object(message: dict[str, object], key: str) -> dict[str, Any] | None:
    reason = f"{message['type']!r} has a {key!r} that is not an object"
    return optional_field(message, key, dict, reason)


def _operation_id(message: dict[str, object]) -> str:
    value = message.get("id")
    if not isinstance(value, str):
        raise InvalidMessage(f"{message['type']!r} without a string 'id'")
    return value


def _errors(value: object, what: str) -> list[FormattedError]:
    if not isinstance(value, list) or not all(
        isinstance(error, dict) and isinstance(error.get("message"), str) for error in value
    ):
        raise InvalidMessage(f"{what} must be a list of errors with a string 'message'")
    return cast("list[FormattedError]", value)


def _result(message: dict[str, object]) -> ExecutionResultPayload:
    payload = message.get("payload")
    if not isinstance(payload, dict):
        raise InvalidMessage(f"{message['type']!r} without an object 'payload'")
    optional_field(payload, "data", dict, "'payload.data' must be an object or null")
    if "errors" in payload:
        _errors(payload["errors"], "'payload.errors'")
    optional_field(payload, "extensions", dict, "'payload.extensions' must be an object")
    return cast("ExecutionResultPayload", payload)


def _legacy_errors(message: dict[str, object]) -> list[FormattedError]:
    # The legacy spec makes the payload one error object. This library's server puts
    # all errors under "errors" as well (Apollo's client reads that key first); some
    # servers send a list. Accept the three shapes.
    payload = message.get("payload")
    if isinstance(payload, dict):
        errors = payload.get("errors")
        if isinstance(errors, list) and errors:
            return _errors(errors, "'payload.errors'")
        return _errors([payload], "'payload'")
    return _errors(payload, "'payload'")


# --- the machine --------------------------------------------------------------------------


class ClientProtocolMachine:
    """State machine of the client side of one connection, for either subprotocol."""

    def __init__(self, subprotocol: str) -> None:
        if subprotocol not in SUBPROTOCOLS:
            raise ValueError(f"Unknown subprotocol {subprotocol!r}; expected one of {SUBPROTOCOLS}")
        self.subprotocol: Subprotocol = subprotocol
        self.state = ClientState.CONNECTED
        self._active: set[str] = set()
        self._last_id = 0

    @property
    def transport_ws(self) -> bool:
        """Whether the subprotocol is graphql-transport-ws (else: legacy graphql-ws)."""
        return self.subprotocol == GRAPHQL_TRANSPORT_WS

    @property
    def active_operations(self) -> frozenset[str]:
        """Ids of the operations started and not ended (by either side)."""
        return frozenset(self._active)

    def is_active(self, operation_id: str) -> bool:
        return operation_id in self._active

    # --- what the client sends -----------------------------------------------------------

    def initialise(self, payload: dict[str, Any] | None) -> ConnectionInitMessage:
        """The ``connection_init`` message; then wait for :class:`ConnectionAcknowledged`."""
        if self.state is not ClientState.CONNECTED:
            raise RuntimeError("connection_init was already sent")
        self.state = ClientState.AWAITING_ACK
        message: ConnectionInitMessage = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        return message

    def start(
        self, payload: OperationPayload, operation_id: str | None = None
    ) -> SubscribeMessage | LegacyStartMessage:
        """Start an operation under a new id (ids are never reused on a connection), or
        under ``operation_id`` (the client keeps a subscription's id when it subscribes
        again on a new connection); it must not be active."""
        if self.state is not ClientState.READY:
            raise RuntimeError(f"Cannot start an operation: the connection is {self.state.value}")
        if operation_id is None:
            self._last_id += 1
            operation_id = str(self._last_id)
        elif operation_id in self._active:
            raise ValueError(f"Operation {operation_id!r} is already active")
        self._active.add(operation_id)
        if self.transport_ws:
            return {"type": "subscribe", "id": operation_id, "payload": payload}
        return {"type": "start", "id": operation_id, "payload": payload}

    def stop(self, operation_id: str) -> CompleteMessage | LegacyStopMessage | None:
        """Stop an operation: the message to send, or None if it has already ended."""
        if operation_id not in self._active:
            return None
        self._active.discard(operation_id)
        if self.state is ClientState.CLOSED:
            return None
        if self.transport_ws:
            return {"type": "complete", "id": operation_id}
        return {"type": "stop", "id": operation_id}

    def ping(self, payload: dict[str, Any] | None = None) -> PingMessage:
        """A client ``ping`` (graphql-transport-ws only; the server answers ``pong``)."""
        if not self.transport_ws:
            raise ValueError("The graphql-ws subprotocol has no client ping")
        message: PingMessage = {"type": "ping"}
        if payload is not None:
            message["payload"] = payload
        return message

    def terminate(self) -> LegacyConnectionTerminateMessage | None:
        """The client leaves: ``connection_terminate`` on graphql-ws, nothing on
        graphql-transport-ws (closing the socket says it). The machine is closed."""
        was_open = self.state is not ClientState.CLOSED
        self.connection_closed()
        if was_open and not self.transport_ws:
            return {"type": "connection_terminate"}
        return None

    def connection_closed(self) -> None:
        """The socket is closed: every operation has ended."""
        self.state = ClientState.CLOSED
        self._active.clear()

    # --- what the server sends -------------------------------------------------------------

    def receive_text(self, text: str) -> list[ClientEvent]:
        """A text frame arrived from the server."""
        if self.state is ClientState.CLOSED:
            return []
        try:
            message = decode_frame(text)
            if self.transport_ws:
                return self._transport_ws(message)
            return self._legacy(message)
        except InvalidMessage as exc:
            reason = exc.reason.removeprefix("Invalid message: ")
            raise GraphqlWsProtocolError(f"Invalid message from the server: {reason}") from None

    def _transport_ws(self, message: dict[str, object]) -> list[ClientEvent]:
        match message["type"]:
            case "connection_ack":
                return self._acknowledge(message)
            case "ping":
                pong: PongMessage = {"type": "pong"}
                payload = _optional_object(message, "payload")
                if payload is not None:
                    pong["payload"] = payload  # the spec: echo the ping's payload
                return [KeepAliveReceived(), SendMessage(pong)]
            case "pong":
                return [PongReceived(_optional_object(message, "payload"))]
            case "next":
                return self._result(message)
            case "error":
                operation_id = _operation_id(message)
                errors = _errors(message.get("payload"), "'payload'")
                return self._end(ErrorsReceived(operation_id, errors))
            case "complete":
                return self._end(OperationCompleted(_operation_id(message)))
            case other:
                raise InvalidMessage(f"unexpected type {str(other)[:64]!r} on graphql-transport-ws")

    def _legacy(self, message: dict[str, object]) -> list[ClientEvent]:
        match message["type"]:
            case "connection_ack":
                return self._acknowledge(message)
            case "connection_error":
                return [ConnectionErrorReceived(_optional_object(message, "payload") or {})]
            case "ka":
                return [KeepAliveReceived()]
            case "data":
                return self._result(message)
            case "error":
                errors = _legacy_errors(message)
                if message.get("id") is None:
                    # About no operation: a complaint about something the client sent.
                    return [ConnectionErrorReceived({**errors[0], "errors": errors})]
                return self._end(ErrorsReceived(_operation_id(message), errors))
            case "complete":
                return self._end(OperationCompleted(_operation_id(message)))
            case other:
                raise InvalidMessage(f"unexpected type {str(other)[:64]!r} on graphql-ws")

    def _acknowledge(self, message: dict[str, object]) -> list[ClientEvent]:
        payload = _optional_object(message, "payload")
        if self.state is not ClientState.AWAITING_ACK:
            raise InvalidMessage("connection_ack without a pending connection_init")
        self.state = ClientState.READY
        return [ConnectionAcknowledged(payload)]

    def _result(self, message: dict[str, object]) -> list[ClientEvent]:
        operation_id = _operation_id(message)
        result = _result(message)
        return [ResultReceived(operation_id, result)] if self.is_active(operation_id) else []

    def _end(self, event: ErrorsReceived | OperationCompleted) -> list[ClientEvent]:
        if event.operation_id not in self._active:
            return []
        self._active.discard(event.operation_id)
        return [event]
