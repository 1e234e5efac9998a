"""GraphQL over WebSocket, HTTP and Server-Sent Events on Django Channels, with subscriptions
declared as typed classes."""

# No ``from __future__ import annotations`` here: it would bind a public name,
# ``annotations``, that is not part of the API (and this module annotates nothing).

from ._client import (
    GraphqlWsClient,
    GraphqlWsClientState,
    GraphqlWsResult,
    GraphqlWsStateChange,
    GraphqlWsSubscriptionStream,
    GraphqlWsTransport,
    GraphqlWsTransportAiohttp,
)
from ._consumer import GraphqlWsConsumer
from ._context import Context
from ._exceptions import (
    ConnectionRejected,
    GraphqlWsClientError,
    GraphqlWsConnectionClosed,
    GraphqlWsError,
    GraphqlWsProtocolError,
    GraphqlWsResponseError,
    GraphqlWsRetriesExhausted,
    GraphqlWsTimeoutError,
    OperationRejected,
    PayloadSerializationError,
)
from ._http_consumer import GraphqlHttpConsumer
from ._model_subscription import ModelAction, ModelEvent, ModelSubscription
from ._protocol import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, CloseCode
from ._protocol.messages import CONFIRM_SUBSCRIPTION_EXTENSION, OperationPayload
from ._serialization import register_payload_type
from ._server import GraphqlServer
from ._subscription import SKIP, Info, Skip, Subscription

__all__ = [
    "CONFIRM_SUBSCRIPTION_EXTENSION",
    "GRAPHQL_TRANSPORT_WS",
    "GRAPHQL_WS",
    "SKIP",
    "CloseCode",
    "ConnectionRejected",
    "Context",
    "GraphqlHttpConsumer",
    "GraphqlServer",
    "GraphqlWsClient",
    "GraphqlWsClientError",
    "GraphqlWsClientState",
    "GraphqlWsConnectionClosed",
    "GraphqlWsConsumer",
    "GraphqlWsError",
    "GraphqlWsProtocolError",
    "GraphqlWsResponseError",
    "GraphqlWsResult",
    "GraphqlWsRetriesExhausted",
    "GraphqlWsStateChange",
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
