"""Exceptions of channels_graphql_typed.

The tree::

    GraphqlWsError                      root of everything this library raises
    ├── ConnectionRejected              raised by ``on_connect`` to refuse a connection
    ├── OperationRejected               raised by ``on_operation`` to refuse one operation
    └── PayloadSerializationError       (also a TypeError) a broadcast payload cannot
                                        cross the channel layer; raised by ``broadcast``

Protocol violations by a client never raise out of the consumer: the protocol machine
turns them into the close code or error message the protocol prescribes.
"""

from __future__ import annotations

from typing import Any


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
    Any other exception raised by ``on_operation`` refuses the operation the same way.
    """


class PayloadSerializationError(GraphqlWsError, TypeError):
    """A broadcast payload (or a value inside it) cannot cross the channel layer.

    Raised by ``broadcast`` / ``broadcast_sync`` in the caller's process.
    """
