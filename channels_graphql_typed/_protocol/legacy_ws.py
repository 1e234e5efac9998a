"""Apollo's legacy ``graphql-ws`` protocol (subscriptions-transport-ws PROTOCOL.md), sans-IO.

Transitions, client message -> what the server does::

    connection_init       AWAITING_INIT -> INITIALISING, run on_connect;
                          again later -> connection_error (the connection stays)
    start                 before connection_init -> close 4401 (a client must not skip
                          on_connect); while on_connect runs -> held, started after the
                          ack (Apollo's client does not wait for it), dropped on reject;
                          id active -> the old operation is stopped and replaced;
                          too many operations -> error for that id; else start it
    stop                  stop the operation and answer complete
    connection_terminate  close 1000
    anything else         error (or connection_error for a frame that is not JSON);
                          this protocol keeps the connection open on bad messages

Server side: every result is ``data`` (resolver errors inside it), then ``complete``
for queries and mutations. A failure before execution (parse, validation) is one
``error`` message that ends the operation. The spec makes its payload one error
object; we send the first error's fields plus all of them under ``errors``, which
Apollo's client reads first when present.
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
from .messages import GRAPHQL_WS

if TYPE_CHECKING:
    from .messages import (
        ExecutionResultPayload,
        FormattedError,
        LegacyConnectionErrorMessage,
        LegacyDataMessage,
        LegacyErrorMessage,
        LegacyKeepAliveMessage,
        OperationPayload,
    )


def legacy_error_message(
    operation_id: str | None, errors: list[FormattedError]
) -> LegacyErrorMessage:
    first = errors[0] if errors else error("Unknown error")
    return {
        "type": "error",
        "id": operation_id,
        "payload": {**first, "errors": errors},
    }


class LegacyGraphqlWsProtocol(ProtocolMachine):
    """State machine of one legacy ``graphql-ws`` connection (server side)."""

    _result_envelope = "data"
    subprotocol = GRAPHQL_WS
    keepalive_on_ack = True

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._pending_starts: dict[str, OperationPayload] = {}
        """Starts received while on_connect runs, in arrival order."""

    def receive_text(self, text: str) -> list[Action]:
        """A text frame arrived."""
        if self.state is ConnectionState.CLOSED:
            return []
        if self._too_large(text):
            return [Send(legacy_error_message(None, [error("Message too large")]))]
        try:
            message = decode_frame(text)
        except InvalidMessage as exc:
            connection_error: LegacyConnectionErrorMessage = {
                "type": "connection_error",
                "payload": {"message": exc.reason},
            }
            return [Send(connection_error)]
        if self._init_too_large(message, text):
            too_large: LegacyConnectionErrorMessage = {
                "type": "connection_error",
                "payload": {"message": "connection_init payload too large"},
            }
            return [Send(too_large)]
        try:
            return self._handle(message)
        except InvalidMessage as exc:
            return [Send(legacy_error_message(exc.operation_id, [error(exc.reason)]))]

    def receive_bytes(self, data: bytes) -> list[Action]:
        """A binary frame arrived: the protocol only uses text frames."""
        if self.state is ConnectionState.CLOSED:
            return []
        return [Send(legacy_error_message(None, [error("Binary frames are not supported")]))]

    def keepalive(self) -> list[Action]:
        """Send ``ka``; only once acknowledged, as the protocol expects."""
        if self.state is not ConnectionState.READY:
            return []
        ka: LegacyKeepAliveMessage = {"type": "ka"}
        return [Send(ka)]

    def _handle(self, message: dict[str, object]) -> list[Action]:
        match message["type"]:
            case "connection_init":
                payload = optional_object(message, "payload", "the connection_init payload")
                if self.state is not ConnectionState.AWAITING_INIT:
                    again: LegacyConnectionErrorMessage = {
                        "type": "connection_error",
                        "payload": {"message": "Too many initialisation requests"},
                    }
                    return [Send(again)]
                self.state = ConnectionState.INITIALISING
                return [ConnectionInitRequested(payload or {})]
            case "start":
                id_ = operation_id(message)
                payload_ = operation_payload(message, id_)
                if self.state is ConnectionState.INITIALISING:
                    # Apollo's client sends its starts right behind connection_init,
                    # without waiting for the ack: they wait for on_connect here.
                    self._pending_starts.pop(id_, None)
                    if self.max_operations is not None and (
                        len(self._pending_starts) >= self.max_operations
                    ):
                        return [Send(legacy_error_message(id_, [error(TOO_MANY_OPERATIONS)]))]
                    self._pending_starts[id_] = payload_
                    return []
                if self.state is not ConnectionState.READY:
                    return self.close(CloseCode.UNAUTHORIZED, "Unauthorized")
                return self._start_or_replace(id_, payload_)
            case "stop":
                id_ = operation_id(message)
                if self._pending_starts.pop(id_, None) is not None:
                    return [Send({"type": "complete", "id": id_})]
                operation = self.operations.pop(id_, None)
                if operation is None:
                    return []
                return [StopOperation(operation), Send({"type": "complete", "id": id_})]
            case "connection_terminate":
                return self.close(CloseCode.NORMAL, "Connection terminated by the client")
            case other:
                id_value = message.get("id")
                raise InvalidMessage(
                    f"Unexpected message of type {str(other)[:64]!r} received",
                    id_value if isinstance(id_value, str) else None,
                )

    def _start_or_replace(self, id_: str, payload: OperationPayload) -> list[Action]:
        actions: list[Action] = []
        previous = self.operations.pop(id_, None)
        if previous is not None:
            actions.append(StopOperation(previous))
        if self._too_many_operations():
            actions.append(Send(legacy_error_message(id_, [error(TOO_MANY_OPERATIONS)])))
            return actions
        return actions + self._start(id_, payload)

    def _acknowledge(self, payload: dict[str, Any] | None) -> list[Action]:
        actions = super()._acknowledge(payload)
        pending, self._pending_starts = self._pending_starts, {}
        for id_, operation_payload_ in pending.items():
            actions += self._start_or_replace(id_, operation_payload_)
        return actions

    def _reject(self, payload: dict[str, Any] | None) -> list[Action]:
        self._pending_starts.clear()  # on_connect refused: they never run
        rejection: LegacyConnectionErrorMessage = {
            "type": "connection_error",
            "payload": payload or {"message": "Forbidden"},
        }
        return [Send(rejection), *self.close(CloseCode.FORBIDDEN, "Forbidden")]

    def _result_message(
        self, operation_id: str, result: ExecutionResultPayload
    ) -> LegacyDataMessage:
        return {"type": "data", "id": operation_id, "payload": result}

    def _errors_message(
        self, operation_id: str, errors: list[FormattedError]
    ) -> LegacyErrorMessage:
        return legacy_error_message(operation_id, errors)
