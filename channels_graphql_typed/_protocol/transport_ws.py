"""The ``graphql-transport-ws`` protocol (enisdenjo/graphql-ws PROTOCOL.md), sans-IO.

Transitions, client message -> what the server does::

    connection_init   AWAITING_INIT -> INITIALISING, run on_connect
                      any other state -> close 4429 "Too many initialisation requests"
    ping              answer pong with the same payload (allowed in any state)
    pong              ignored
    subscribe         before ack -> close 4401; id in use -> close 4409;
                      too many operations -> error for that id; else start it
    complete          stop the operation if active; unknown ids are ignored
    anything else     close 4400 (invalid JSON, binary frame, unknown or server-only
                      type, malformed id or payload, too large)

Server side: a query or mutation result is ``next`` then ``complete``; a parse or
validation failure is ``error`` (it terminates the operation: no ``complete``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import (
    TOO_MANY_OPERATIONS,
    Action,
    CloseCode,
    ConnectionInitRequested,
    ConnectionState,
    InvalidMessage,
    ProtocolMachine,
    Send,
    StopOperation,
    decode_frame,
    error,
    operation_id,
    operation_payload,
    optional_object,
)
from .messages import GRAPHQL_TRANSPORT_WS

if TYPE_CHECKING:
    from .messages import (
        ErrorMessage,
        ExecutionResultPayload,
        FormattedError,
        NextMessage,
        PingMessage,
        PongMessage,
    )


class GraphqlTransportWsProtocol(ProtocolMachine):
    """State machine of one ``graphql-transport-ws`` connection (server side)."""

    _result_envelope = "next"
    subprotocol = GRAPHQL_TRANSPORT_WS

    def receive_text(self, text: str) -> list[Action]:
        """A text frame arrived."""
        if self.state is ConnectionState.CLOSED:
            return []
        if self._too_large(text):
            return self.close(CloseCode.BAD_REQUEST, "Message too large")
        try:
            message = decode_frame(text)
            if self._init_too_large(message, text):
                raise InvalidMessage("connection_init payload too large")
            return self._handle(message)
        except InvalidMessage as exc:
            return self.close(exc.code, exc.reason)

    def receive_bytes(self, data: bytes) -> list[Action]:
        """A binary frame arrived: the protocol only uses text frames."""
        return self.close(CloseCode.BAD_REQUEST, "Binary frames are not supported")

    def keepalive(self) -> list[Action]:
        """Send a server ``ping`` (the client answers ``pong``)."""
        if self.state is ConnectionState.CLOSED:
            return []
        ping: PingMessage = {"type": "ping"}
        return [Send(ping)]

    def _handle(self, message: dict[str, object]) -> list[Action]:
        match message["type"]:
            case "connection_init":
                payload = optional_object(message, "payload", "the connection_init payload")
                if self.state is not ConnectionState.AWAITING_INIT:
                    return self.close(
                        CloseCode.TOO_MANY_INITIALISATION_REQUESTS,
                        "Too many initialisation requests",
                    )
                self.state = ConnectionState.INITIALISING
                return [ConnectionInitRequested(payload or {})]
            case "ping":
                payload = optional_object(message, "payload", "the ping payload")
                pong: PongMessage = {"type": "pong"}
                if payload is not None:
                    pong["payload"] = payload
                return [Send(pong)]
            case "pong":
                optional_object(message, "payload", "the pong payload")
                return []
            case "subscribe":
                id_ = operation_id(message)
                payload_ = operation_payload(message, id_)
                if self.state is not ConnectionState.READY:
                    return self.close(CloseCode.UNAUTHORIZED, "Unauthorized")
                if id_ in self.operations:
                    return self.close(
                        CloseCode.SUBSCRIBER_ALREADY_EXISTS, f"Subscriber for {id_} already exists"
                    )
                if self._too_many_operations():
                    rejected: ErrorMessage = {
                        "type": "error",
                        "id": id_,
                        "payload": [error(TOO_MANY_OPERATIONS)],
                    }
                    return [Send(rejected)]
                return self._start(id_, payload_)
            case "complete":
                id_ = operation_id(message)
                operation = self.operations.pop(id_, None)
                return [] if operation is None else [StopOperation(operation)]
            case other:
                raise InvalidMessage(f"Unexpected message of type {str(other)[:64]!r} received")

    def _reject(self, payload: dict[str, Any] | None) -> list[Action]:
        # The protocol has no message to carry a rejection payload: the close reason
        # says why (graphql-ws closes 4403 "Forbidden" when onConnect returns false).
        reason = "Forbidden"
        if payload and isinstance(payload.get("message"), str):
            reason = payload["message"]
        return self.close(CloseCode.FORBIDDEN, reason)

    def _result_message(self, operation_id: str, result: ExecutionResultPayload) -> NextMessage:
        return {"type": "next", "id": operation_id, "payload": result}

    def _errors_message(self, operation_id: str, errors: list[FormattedError]) -> ErrorMessage:
        return {"type": "error", "id": operation_id, "payload": errors}
