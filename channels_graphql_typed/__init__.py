"""GraphQL over WebSocket on Django Channels, with subscriptions declared as typed classes."""

from __future__ import annotations

from .consumer import GraphqlWsConsumer
from .context import Context
from .exceptions import (
    ConnectionRejected,
    GraphqlWsError,
    OperationRejected,
    PayloadSerializationError,
)
from .protocol import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, CloseCode
from .protocol.messages import OperationPayload
from .subscription import SKIP, Info, Skip, Subscription

__all__ = [
    "GRAPHQL_TRANSPORT_WS",
    "GRAPHQL_WS",
    "SKIP",
    "CloseCode",
    "ConnectionRejected",
    "Context",
    "GraphqlWsConsumer",
    "GraphqlWsError",
    "Info",
    "OperationPayload",
    "OperationRejected",
    "PayloadSerializationError",
    "Skip",
    "Subscription",
]
