"""Wire messages of both GraphQL WebSocket subprotocols, as TypedDicts.

One TypedDict per message, discriminated by a ``Literal`` ``type``, following
the two specifications:

* ``graphql-transport-ws``: https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md
* ``graphql-ws`` (legacy Apollo): https://github.com/apollographql/subscriptions-transport-ws/blob/master/PROTOCOL.md

These types describe what a well-formed message looks like. Incoming frames are
untrusted JSON: the state machines validate every field before they treat a
dict as one of these types.
"""

from __future__ import annotations

from typing import Any, Final, Literal, NotRequired, TypedDict

GRAPHQL_TRANSPORT_WS: Literal["graphql-transport-ws"] = "graphql-transport-ws"
"""Subprotocol name of the modern protocol (the ``graphql-ws`` npm library)."""

GRAPHQL_WS: Literal["graphql-ws"] = "graphql-ws"
"""Subprotocol name of Apollo's legacy protocol (``subscriptions-transport-ws``)."""

Subprotocol = Literal["graphql-transport-ws", "graphql-ws"]
SUBPROTOCOLS: tuple[Subprotocol, ...] = (GRAPHQL_TRANSPORT_WS, GRAPHQL_WS)


class OperationPayload(TypedDict):
    """What a client asks to run: the payload of ``subscribe`` / ``start``."""

    query: str
    variables: NotRequired[dict[str, Any] | None]
    operationName: NotRequired[str | None]
    extensions: NotRequired[dict[str, Any] | None]


CONFIRM_SUBSCRIPTION_EXTENSION: Final = "channels_graphql_typed.confirm"
"""The key, in a subscription's ``extensions``, by which a client asks for that one
subscription's confirmation: ``{"extensions": {"channels_graphql_typed.confirm": true}}``
(both subprotocols carry ``extensions`` in ``subscribe`` / ``start``). Namespaced, so that
no other extension means something else by it."""


EVENT_ID_EXTENSION: Final = "channels_graphql_typed.event_id"
"""The key, in each result of a resumable subscription's ``extensions``, of the event's id
(a string: remember the last one to resume after it)."""

RESUME_AFTER_EXTENSION: Final = "channels_graphql_typed.resume_after"
"""The key, in a subscription's ``extensions``, of the last event id the client received:
the subscription first gets the events its groups had after that one
(``{"extensions": {"channels_graphql_typed.resume_after": "1700000000000-0"}}``)."""

EVENTS_MISSED: Final = "EVENTS_MISSED"
"""The ``extensions.code`` of the error in the result that tells a resuming subscription
that events may have been missed: its resume id is no longer in the history (or its class
is not resumable)."""


def confirmation_requested(payload: OperationPayload) -> bool:
    """Whether the operation's ``extensions`` ask for its subscription's confirmation."""
    extensions = payload.get("extensions")
    return isinstance(extensions, dict) and extensions.get(CONFIRM_SUBSCRIPTION_EXTENSION) is True


class FormattedError(TypedDict):
    """A GraphQL error as it goes over the wire (GraphQL spec, "Errors")."""

    message: str
    locations: NotRequired[list[dict[str, int]]]
    path: NotRequired[list[str | int]]
    extensions: NotRequired[dict[str, Any]]


class ExecutionResultPayload(TypedDict):
    """A GraphQL response: the payload of ``next`` / ``data``."""

    data: NotRequired[dict[str, Any] | None]
    errors: NotRequired[list[FormattedError]]
    extensions: NotRequired[dict[str, Any]]


# --- graphql-transport-ws -------------------------------------------------------------


class ConnectionInitMessage(TypedDict):
    type: Literal["connection_init"]
    payload: NotRequired[dict[str, Any] | None]


class ConnectionAckMessage(TypedDict):
    type: Literal["connection_ack"]
    payload: NotRequired[dict[str, Any]]


class PingMessage(TypedDict):
    type: Literal["ping"]
    payload: NotRequired[dict[str, Any]]


class PongMessage(TypedDict):
    type: Literal["pong"]
    payload: NotRequired[dict[str, Any]]


class SubscribeMessage(TypedDict):
    id: str
    type: Literal["subscribe"]
    payload: OperationPayload


class NextMessage(TypedDict):
    id: str
    type: Literal["next"]
    payload: ExecutionResultPayload


class ErrorMessage(TypedDict):
    id: str
    type: Literal["error"]
    payload: list[FormattedError]


class CompleteMessage(TypedDict):
    id: str
    type: Literal["complete"]


TransportWsServerMessage = (
    ConnectionAckMessage | PingMessage | PongMessage | NextMessage | ErrorMessage | CompleteMessage
)
TransportWsClientMessage = (
    ConnectionInitMessage | PingMessage | PongMessage | SubscribeMessage | CompleteMessage
)


# --- graphql-ws (legacy) ------------------------------------------------------------------


class LegacyStartMessage(TypedDict):
    id: str
    type: Literal["start"]
    payload: OperationPayload


class LegacyStopMessage(TypedDict):
    id: str
    type: Literal["stop"]


class LegacyConnectionTerminateMessage(TypedDict):
    type: Literal["connection_terminate"]


class LegacyConnectionErrorMessage(TypedDict):
    type: Literal["connection_error"]
    payload: dict[str, Any]


class LegacyKeepAliveMessage(TypedDict):
    type: Literal["ka"]


class LegacyDataMessage(TypedDict):
    id: str
    type: Literal["data"]
    payload: ExecutionResultPayload


class LegacyErrorPayload(FormattedError):
    """The legacy protocol's ``error`` payload is one error object; we add all of them
    under ``errors`` (Apollo's client reads that key first when it is present)."""

    errors: list[FormattedError]


class LegacyErrorMessage(TypedDict):
    id: str | None
    type: Literal["error"]
    payload: LegacyErrorPayload


class LegacyCompleteMessage(TypedDict):
    id: str
    type: Literal["complete"]


LegacyServerMessage = (
    ConnectionAckMessage
    | LegacyConnectionErrorMessage
    | LegacyKeepAliveMessage
    | LegacyDataMessage
    | LegacyErrorMessage
    | LegacyCompleteMessage
)
LegacyClientMessage = (
    ConnectionInitMessage
    | LegacyStartMessage
    | LegacyStopMessage
    | LegacyConnectionTerminateMessage
)

ServerMessage = TransportWsServerMessage | LegacyServerMessage
