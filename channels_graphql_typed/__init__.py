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
from ._drain import drain_on_shutdown
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
from ._protocol.messages import (
    CONFIRM_SUBSCRIPTION_EXTENSION,
    EVENT_ID_EXTENSION,
    EVENTS_MISSED,
    RESUME_AFTER_EXTENSION,
    OperationPayload,
)
from ._replay import Replay
from ._serialization import register_payload_type
from ._server import GraphqlServer
from ._subscription import SKIP, Info, Skip, Subscription

__all__ = [
    "CONFIRM_SUBSCRIPTION_EXTENSION",
    "EVENTS_MISSED",
    "EVENT_ID_EXTENSION",
    "GRAPHQL_TRANSPORT_WS",
    "GRAPHQL_WS",
    "RESUME_AFTER_EXTENSION",
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
    "Replay",
    "Skip",
    "Subscription",
    "drain_on_shutdown",
    "register_payload_type",
]
