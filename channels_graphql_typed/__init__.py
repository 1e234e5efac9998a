"""GraphQL over WebSocket on Django Channels, with subscriptions declared as typed classes."""

from __future__ import annotations

from .client import (
    GraphqlWsClient,
    GraphqlWsResult,
    GraphqlWsSubscriptionStream,
    GraphqlWsTransport,
    GraphqlWsTransportAiohttp,
)
from .consumer import GraphqlWsConsumer
from .context import Context
from .exceptions import (
    ConnectionRejected,
    GraphqlWsClientError,
    GraphqlWsConnectionClosed,
    GraphqlWsError,
    GraphqlWsProtocolError,
    GraphqlWsResponseError,
    GraphqlWsTimeoutError,
    OperationRejected,
    PayloadSerializationError,
)
from .model_subscription import ModelAction, ModelEvent, ModelSubscription
from .protocol import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, CloseCode
from .protocol.messages import CONFIRM_SUBSCRIPTION_EXTENSION, OperationPayload
from .serialization import register_payload_type
from .subscription import SKIP, Info, Skip, Subscription

__all__ = [
    "CONFIRM_SUBSCRIPTION_EXTENSION",
    "GRAPHQL_TRANSPORT_WS",
    "GRAPHQL_WS",
    "SKIP",
    "CloseCode",
    "ConnectionRejected",
    "Context",
    "GraphqlWsClient",
    "GraphqlWsClientError",
    "GraphqlWsConnectionClosed",
    "GraphqlWsConsumer",
    "GraphqlWsError",
    "GraphqlWsProtocolError",
    "GraphqlWsResponseError",
    "GraphqlWsResult",
    "GraphqlWsSubscriptionStream",
    "GraphqlWsTimeoutError",
    "GraphqlWsTransport",
    "GraphqlWsTransportAiohttp",
    "Info",
    "ModelAction",
    "ModelEvent",
    "ModelSubscription",
    "OperationPayload",
    "OperationRejected",
    "PayloadSerializationError",
    "Skip",
    "Subscription",
    "register_payload_type",
]
