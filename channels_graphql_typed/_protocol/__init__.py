"""Sans-IO state machines of the two GraphQL WebSocket subprotocols.

See :mod:`.common` for the theory of operation.
"""

from __future__ import annotations

from .common import (
    Action,
    Close,
    CloseCode,
    ConnectionInitRequested,
    ConnectionState,
    EndStream,
    Failure,
    Operation,
    ProtocolMachine,
    Respond,
    Send,
    SendChunk,
    SendText,
    StartOperation,
    StartStream,
    StopOperation,
)
from .legacy_ws import LegacyGraphqlWsProtocol
from .messages import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, SUBPROTOCOLS, Subprotocol
from .transport_ws import GraphqlTransportWsProtocol

PROTOCOL_MACHINES: dict[str, type[ProtocolMachine]] = {
    GRAPHQL_TRANSPORT_WS: GraphqlTransportWsProtocol,
    GRAPHQL_WS: LegacyGraphqlWsProtocol,
}

__all__ = [
    "GRAPHQL_TRANSPORT_WS",
    "GRAPHQL_WS",
    "PROTOCOL_MACHINES",
    "SUBPROTOCOLS",
    "Action",
    "Close",
    "CloseCode",
    "ConnectionInitRequested",
    "ConnectionState",
    "EndStream",
    "Failure",
    "GraphqlTransportWsProtocol",
    "LegacyGraphqlWsProtocol",
    "Operation",
    "ProtocolMachine",
    "Respond",
    "Send",
    "SendChunk",
    "SendText",
    "StartOperation",
    "StartStream",
    "StopOperation",
    "Subprotocol",
]
