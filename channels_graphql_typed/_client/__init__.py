"""The Python client: GraphQL over WebSocket, either subprotocol, over a transport.

* :class:`GraphqlWsClient` -- connects, initialises, runs operations concurrently over
  one socket; :class:`GraphqlWsSubscriptionStream` -- one subscription's results;
  :class:`GraphqlWsResult` -- one result (``data``, ``errors``, ``extensions``).
* :class:`GraphqlWsTransport` -- the protocol a transport implements;
  :class:`GraphqlWsTransportAiohttp` -- a real WebSocket through aiohttp
  (``channels_graphql_typed.testing.GraphqlWsTransportCommunicator`` drives an ASGI application
  in-process).
* :class:`GraphqlWsClientState`, :class:`GraphqlWsStateChange` -- where the connection
  is, as ``on_state`` reports it; :mod:`.reconnect` -- when the client reconnects.
* :mod:`.machine` -- the sans-IO protocol core the client is built on.
"""

from __future__ import annotations

from .aiohttp import GraphqlWsTransportAiohttp
from .client import (
    DEFAULT_TIMEOUT,
    GraphqlWsClient,
    GraphqlWsStateChange,
    GraphqlWsSubscriptionStream,
)
from .reconnect import GraphqlWsClientState
from .result import GraphqlWsResult
from .transport import GraphqlWsTransport

__all__ = [
    "DEFAULT_TIMEOUT",
    "GraphqlWsClient",
    "GraphqlWsClientState",
    "GraphqlWsResult",
    "GraphqlWsStateChange",
    "GraphqlWsSubscriptionStream",
    "GraphqlWsTransport",
    "GraphqlWsTransportAiohttp",
]
