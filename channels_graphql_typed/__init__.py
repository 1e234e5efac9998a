"""GraphQL over WebSocket on Django Channels, with subscriptions declared as typed classes."""

from __future__ import annotations

from .consumer import GraphqlWsConsumer
from .context import Context
from .exceptions import ConnectionRejected, GraphqlWsError, OperationRejected
from .protocol import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, CloseCode

__all__ = [
    "GRAPHQL_TRANSPORT_WS",
    "GRAPHQL_WS",
    "CloseCode",
    "ConnectionRejected",
    "Context",
    "GraphqlWsConsumer",
    "GraphqlWsError",
    "OperationRejected",
]
