"""Exceptions of channels_graphql_typed.

The tree::

    GraphqlWsError                      root of everything this library raises
    ├── ConnectionRejected              raised by ``on_connect`` to refuse a connection
    ├── OperationRejected               raised by ``on_operation`` to refuse one operation
    ├── PayloadSerializationError       (also a TypeError) a broadcast payload cannot
    │                                   cross the channel layer; raised by ``broadcast``
    └── GraphqlWsClientError            raised by the client (``GraphqlWsClient``)
        ├── GraphqlWsConnectionClosed   the socket closed or could not open: ``code``,
        │   │                           ``reason`` and, on graphql-ws, the payload of
        │   │                           the ``connection_error`` that preceded the close
        │   └── GraphqlWsRetriesExhausted  the client gave up reconnecting: the last
        │                               attempt's ``code`` and ``reason``, ``attempts``
        ├── GraphqlWsResponseError      an operation was answered with errors and no
        │                               data: ``errors`` (and ``result`` if there was one)
        ├── GraphqlWsTimeoutError       (also a TimeoutError) a wait took longer than its
        │                               timeout
        └── GraphqlWsProtocolError      the server broke the protocol: an invalid
                                        message, or another subprotocol than requested

Protocol violations by a client never raise out of the consumer: the protocol machine
turns them into the close code or error message the protocol prescribes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client.result import GraphqlWsResult
    from ._protocol.messages import FormattedError


class GraphqlWsError(Exception):
    """Root of the exceptions raised by channels_graphql_typed."""


class ConnectionRejected(GraphqlWsError):
    """Raise from ``GraphqlWsConsumer.on_connect`` to refuse the connection.

    ``payload`` goes to the client: in the ``connection_error`` message on the legacy
    ``graphql-ws`` protocol; on ``graphql-transport-ws`` its ``message`` (if any) becomes
    the reason of the 4403 close.
    """

    def __init__(self, payload: dict[str, Any] | None = None) -> None:
        message = payload.get("message") if payload else None
        super().__init__(message if isinstance(message, str) else "Connection rejected")
        self.payload = payload


class OperationRejected(GraphqlWsError):
    """Raise from ``GraphqlWsConsumer.on_operation`` to refuse one operation.

    The client gets an operation error with this message; the connection stays open.
    A :class:`graphql.GraphQLError` raised there reaches the client as it is; any other
    exception refuses the operation with a generic message and is logged.
    """


class PayloadSerializationError(GraphqlWsError, TypeError):
    """A broadcast payload (or a value inside it) cannot cross the channel layer.

    Raised by ``broadcast`` / ``broadcast_sync`` in the caller's process.
    """


class GraphqlWsClientError(GraphqlWsError):
    """Root of the exceptions raised by the client (:class:`GraphqlWsClient`)."""


class GraphqlWsConnectionClosed(GraphqlWsClientError):
    """The WebSocket closed (or never opened) while the client needed it.

    ``code`` and ``reason`` are those of the close frame. A connection that failed
    without a close frame (refused, handshake rejected, dropped) has code 1006, as
    browsers report it. On the legacy ``graphql-ws`` protocol, ``payload`` is that of
    the ``connection_error`` message the server sent before closing.
    """

    def __init__(self, code: int, reason: str = "", payload: dict[str, Any] | None = None) -> None:
        # Every constructor argument goes to ``args``: the exception copies and pickles.
        super().__init__(code, reason, payload)
        self.code = code
        self.reason = reason
        self.payload = payload

    def __str__(self) -> str:
        text = f"WebSocket closed with code {self.code}"
        if self.reason:
            text += f": {self.reason}"
        if self.payload is not None:
            text += f" (connection_error: {self.payload})"
        return text


class GraphqlWsRetriesExhausted(GraphqlWsConnectionClosed):
    """The client gave up reconnecting: ``retry_attempts`` consecutive attempts failed.

    ``code``, ``reason`` and ``payload`` are those of the last failure (code 1006 when
    it was no close, for example a timeout); ``attempts`` is how many reconnections
    were tried. Raised to every operation still waiting, and by later ones.
    """

    def __init__(
        self,
        code: int,
        reason: str = "",
        payload: dict[str, Any] | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(code, reason, payload)
        self.args = (code, reason, payload, attempts)
        self.attempts = attempts

    def __str__(self) -> str:
        return f"Gave up after {self.attempts} reconnection attempts: {super().__str__()}"


class GraphqlWsResponseError(GraphqlWsClientError):
    """The server answered an operation with errors and no data.

    Raised by ``GraphqlWsClient.execute`` for an ``error`` message (parse or validation
    errors, a rejected operation) and for a result whose ``data`` is null and that has
    errors (for example invalid variables); raised by a subscription stream for an
    ``error`` message. ``errors`` are the GraphQL errors as sent; ``result`` is the
    result when the errors came in one.
    """

    def __init__(self, errors: list[FormattedError], result: GraphqlWsResult | None = None) -> None:
        super().__init__(errors, result)
        self.errors = errors
        self.result = result

    def __str__(self) -> str:
        messages = [str(error.get("message")) for error in self.errors]
        return "; ".join(messages) or "The server answered with an error"


class GraphqlWsTimeoutError(GraphqlWsClientError, TimeoutError):
    """A wait of the client took longer than its timeout.

    What timed out is in the message. The connection stays usable: a timed-out
    ``execute`` has stopped its operation; a subscription stream keeps its subscription.
    """


class GraphqlWsProtocolError(GraphqlWsClientError):
    """The server broke the protocol: a message the client cannot accept, or a
    subprotocol other than the one requested. The client closes the connection."""
