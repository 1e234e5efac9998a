"""The library's client machine wired back to back with each server machine.

A :class:`ConnectionPair` (after h11's test helper of that name) holds a
:class:`ClientProtocolMachine` and the server machine of the same subprotocol, and
plays both I/O shells in memory: what one side sends reaches the other as JSON text,
and the test asserts what the other side makes of it. Each side's messages are written
by hand in its own module (the legacy ``error`` format above all), so these tests are
what keeps the two from drifting apart: a server message that the client reads
differently from what the server meant fails here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS
from channels_graphql_typed._client.machine import (
    ClientProtocolMachine,
    ClientState,
    ConnectionAcknowledged,
    ConnectionErrorReceived,
    ErrorsReceived,
    KeepAliveReceived,
    OperationCompleted,
    PongReceived,
    ResultReceived,
    SendMessage,
)
from channels_graphql_typed._protocol import (
    PROTOCOL_MACHINES,
    Close,
    CloseCode,
    ConnectionInitRequested,
    ConnectionState,
    Send,
    SendText,
    StartOperation,
    StopOperation,
)
from channels_graphql_typed._protocol.common import TOO_MANY_OPERATIONS

if TYPE_CHECKING:
    from channels_graphql_typed._client.machine import ClientEvent, ClientMessage
    from channels_graphql_typed._protocol import Action, Operation, ProtocolMachine
    from channels_graphql_typed._protocol.messages import ExecutionResultPayload, FormattedError

QUERY = "{ hello }"
SUBSCRIPTION = "subscription { ticks }"


class ConnectionPair:
    """A client machine and a server machine of one subprotocol, connected in memory."""

    def __init__(self, subprotocol: str, **server_settings: Any) -> None:
        self.client = ClientProtocolMachine(subprotocol)
        self.server: ProtocolMachine = PROTOCOL_MACHINES[subprotocol](**server_settings)
        self.init_payloads: list[dict[str, Any]] = []
        """What the server asked ``on_connect`` about (``ConnectionInitRequested``)."""
        self.started: list[Operation] = []
        self.stopped: list[Operation] = []
        self.closes: list[Close] = []

    @classmethod
    def ready(cls, subprotocol: str, **server_settings: Any) -> ConnectionPair:
        """A pair past the handshake, ``on_connect`` having accepted with no payload."""
        pair = cls(subprotocol, **server_settings)
        assert pair.send(pair.client.initialise(None)) == []
        assert pair.perform(pair.server.accept_connection(None)) == [ConnectionAcknowledged(None)]
        return pair

    def send(self, message: ClientMessage | None) -> list[ClientEvent]:
        """The client sends ``message`` (nothing if None): what the client machine makes
        of everything the server answers."""
        if message is None:
            return []
        return self.send_text(json.dumps(message))

    def send_text(self, text: str) -> list[ClientEvent]:
        """A text frame reaches the server (one this client would not write, at times)."""
        return self.perform(self.server.receive_text(text))

    def perform(self, actions: list[Action]) -> list[ClientEvent]:
        """Carry out the server's actions as the consumer does; the client's events."""
        events: list[ClientEvent] = []
        for action in actions:
            match action:
                case Send(message):
                    events += self._deliver(json.dumps(message))
                case SendText(text):
                    events += self._deliver(text)
                case Close():
                    self.closes.append(action)
                    self.client.connection_closed()
                case ConnectionInitRequested(payload):
                    self.init_payloads.append(payload)
                case StartOperation(operation):
                    self.started.append(operation)
                case StopOperation(operation):
                    self.stopped.append(operation)
        return events

    def start(self, query: str) -> tuple[str, Operation]:
        """The client starts an operation; its id and the server's operation."""
        message = self.client.start({"query": query})
        assert self.send(message) == []
        operation = self.started[-1]
        assert operation.id == message["id"]
        return message["id"], operation

    def _deliver(self, text: str) -> list[ClientEvent]:
        events = self.client.receive_text(text)
        for event in list(events):
            if isinstance(event, SendMessage):
                # The client's reply goes straight back, as its I/O shell sends it.
                events += self.send(event.message)
        return events


def transport_ws(subprotocol: str) -> bool:
    return subprotocol == GRAPHQL_TRANSPORT_WS


# --- handshake ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ack_payload", [None, {"user": "alice"}])
def test_the_handshake_reaches_on_connect_and_comes_back_acknowledged(
    subprotocol: str, ack_payload: dict[str, Any] | None
) -> None:
    pair = ConnectionPair(subprotocol)
    assert pair.send(pair.client.initialise({"token": "s3cr3t"})) == []
    assert pair.init_payloads == [{"token": "s3cr3t"}]
    assert pair.perform(pair.server.accept_connection(ack_payload)) == [
        ConnectionAcknowledged(ack_payload)
    ]
    assert pair.client.state is ClientState.READY
    assert pair.server.state is ConnectionState.READY


def test_a_rejected_connection_reaches_the_client(subprotocol: str) -> None:
    pair = ConnectionPair(subprotocol)
    pair.send(pair.client.initialise({"token": "wrong"}))
    events = pair.perform(pair.server.reject_connection({"message": "Bad token"}))
    if transport_ws(subprotocol):
        # No message can carry the payload: the close reason says it.
        assert events == []
        assert pair.closes == [Close(CloseCode.FORBIDDEN, "Bad token")]
    else:
        assert events == [ConnectionErrorReceived({"message": "Bad token"})]
        assert pair.closes == [Close(CloseCode.FORBIDDEN, "Forbidden")]
    assert pair.client.state is ClientState.CLOSED


def test_no_connection_init_in_time_closes_4408(subprotocol: str) -> None:
    pair = ConnectionPair(subprotocol)
    assert pair.perform(pair.server.init_timeout()) == []
    assert pair.closes == [
        Close(CloseCode.CONNECTION_INITIALISATION_TIMEOUT, "Connection initialisation timeout")
    ]
    assert pair.client.state is ClientState.CLOSED


# --- results -----------------------------------------------------------------------------------


def test_a_query_result_then_its_completion(subprotocol: str) -> None:
    pair = ConnectionPair.ready(subprotocol)
    id_, operation = pair.start(QUERY)
    assert operation.payload == {
        "query": QUERY,
        "variables": None,
        "operationName": None,
        "extensions": None,
    }
    result: ExecutionResultPayload = {
        "data": {"hello": None},
        "errors": [{"message": "Boom", "locations": [{"line": 1, "column": 3}], "path": ["hello"]}],
    }
    assert pair.perform(pair.server.send_result(operation, result)) == [ResultReceived(id_, result)]
    assert pair.perform(pair.server.complete(operation)) == [OperationCompleted(id_)]
    assert pair.client.active_operations == frozenset()
    assert pair.server.operations == {}


def test_a_serialized_result_reads_as_the_result_itself(subprotocol: str) -> None:
    pair = ConnectionPair.ready(subprotocol)
    id_, operation = pair.start(SUBSCRIPTION)
    results: list[ExecutionResultPayload] = [
        {"data": {"ticks": 1}},
        {"data": {"ticks": 2}, "extensions": {"cost": 3}},
    ]
    for result in results:
        payload_json = json.dumps(result, separators=(",", ":"))
        assert pair.perform(pair.server.send_serialized_result(operation, payload_json)) == [
            ResultReceived(id_, result)
        ]
    assert pair.client.is_active(id_)


@pytest.mark.parametrize(
    "errors",
    [
        [{"message": "Cannot query field 'nope' on type 'Query'."}],
        [
            {
                "message": "Unknown argument 'x'.",
                "locations": [{"line": 1, "column": 9}],
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
            },
            {"message": "Variable '$room' is never used.", "path": ["onChat"]},
        ],
    ],
    ids=["one error", "two errors"],
)
def test_errors_before_execution_reach_the_client_as_the_server_sent_them(
    subprotocol: str, errors: list[FormattedError]
) -> None:
    pair = ConnectionPair.ready(subprotocol)
    id_, operation = pair.start(QUERY)
    assert pair.perform(pair.server.send_errors(operation, errors)) == [ErrorsReceived(id_, errors)]
    # An error ends the operation on both sides: no complete follows.
    assert pair.client.active_operations == frozenset()
    assert pair.server.operations == {}
    assert pair.perform(pair.server.complete(operation)) == []


def test_an_operation_beyond_the_limit_gets_its_error_and_the_others_go_on(
    subprotocol: str,
) -> None:
    pair = ConnectionPair.ready(subprotocol, max_operations=1)
    first, operation = pair.start(SUBSCRIPTION)
    second = pair.client.start({"query": QUERY})
    assert pair.send(second) == [ErrorsReceived(second["id"], [{"message": TOO_MANY_OPERATIONS}])]
    assert pair.started == [operation]
    assert pair.client.active_operations == {first}
    assert pair.perform(pair.server.send_result(operation, {"data": {"ticks": 1}})) == [
        ResultReceived(first, {"data": {"ticks": 1}})
    ]


# --- the client ends things --------------------------------------------------------------------


def test_a_stopped_operation_gets_nothing_more(subprotocol: str) -> None:
    pair = ConnectionPair.ready(subprotocol)
    id_, operation = pair.start(SUBSCRIPTION)
    # On graphql-ws the server answers the stop with complete, which the client, having
    # stopped the operation already, takes for no event.
    assert pair.send(pair.client.stop(id_)) == []
    assert pair.stopped == [operation]
    assert pair.server.operations == {}
    assert pair.perform(pair.server.send_result(operation, {"data": {"ticks": 1}})) == []
    assert pair.perform(pair.server.complete(operation)) == []
    assert pair.client.stop(id_) is None


def test_the_client_leaving(subprotocol: str) -> None:
    pair = ConnectionPair.ready(subprotocol)
    _, operation = pair.start(SUBSCRIPTION)
    assert pair.send(pair.client.terminate()) == []
    assert pair.client.state is ClientState.CLOSED
    if transport_ws(subprotocol):
        # Nothing to send: closing the socket says it, and the server's shell stops
        # what runs when it sees the close.
        assert pair.closes == []
        assert pair.stopped == []
    else:
        assert pair.closes == [Close(CloseCode.NORMAL, "Connection terminated by the client")]
        assert pair.stopped == [operation]


# --- keep-alive ----------------------------------------------------------------------------------


def test_the_server_keepalive(subprotocol: str) -> None:
    pair = ConnectionPair.ready(subprotocol)
    events = pair.perform(pair.server.keepalive())
    if transport_ws(subprotocol):
        # The client answers the ping with a pong, which the server takes quietly.
        assert events == [KeepAliveReceived(), SendMessage({"type": "pong"})]
    else:
        assert events == [KeepAliveReceived()]
    assert pair.closes == []


@pytest.mark.parametrize("payload", [None, {"sent": 1}])
def test_a_client_ping_is_answered_with_its_payload(payload: dict[str, Any] | None) -> None:
    pair = ConnectionPair.ready(GRAPHQL_TRANSPORT_WS)
    assert pair.send(pair.client.ping(payload)) == [PongReceived(payload)]


# --- what the server says about frames this client would not send -------------------------------

LEGACY_COMPLAINTS = [
    ("not json", ConnectionErrorReceived({"message": "Invalid message: not valid JSON"})),
    (
        '{"type": "bogus"}',
        ConnectionErrorReceived(
            {
                "message": "Unexpected message of type 'bogus' received",
                "errors": [{"message": "Unexpected message of type 'bogus' received"}],
            }
        ),
    ),
    (
        '{"type": "connection_init"}',
        ConnectionErrorReceived({"message": "Too many initialisation requests"}),
    ),
]


@pytest.mark.parametrize(("text", "expected"), LEGACY_COMPLAINTS, ids=["json", "type", "init"])
def test_legacy_complaints_reach_the_client_and_the_connection_stays(
    text: str, expected: ClientEvent
) -> None:
    pair = ConnectionPair.ready(GRAPHQL_WS)
    id_, operation = pair.start(SUBSCRIPTION)
    assert pair.send_text(text) == [expected]
    assert pair.closes == []
    assert pair.client.state is ClientState.READY
    assert pair.perform(pair.server.send_result(operation, {"data": {"ticks": 1}})) == [
        ResultReceived(id_, {"data": {"ticks": 1}})
    ]


@pytest.mark.parametrize(
    ("text", "close"),
    [
        ("not json", Close(CloseCode.BAD_REQUEST, "Invalid message: not valid JSON")),
        (
            '{"type": "bogus"}',
            Close(CloseCode.BAD_REQUEST, "Unexpected message of type 'bogus' received"),
        ),
        (
            '{"type": "connection_init"}',
            Close(CloseCode.TOO_MANY_INITIALISATION_REQUESTS, "Too many initialisation requests"),
        ),
    ],
    ids=["json", "type", "init"],
)
def test_transport_ws_complaints_close_the_connection(text: str, close: Close) -> None:
    pair = ConnectionPair.ready(GRAPHQL_TRANSPORT_WS)
    _, operation = pair.start(SUBSCRIPTION)
    assert pair.send_text(text) == []
    assert pair.closes == [close]
    assert pair.stopped == [operation]
    assert pair.client.state is ClientState.CLOSED


def assert_frame_refused(pair: ConnectionPair, events: list[ClientEvent], reason: str) -> None:
    """graphql-transport-ws closes 4400; graphql-ws answers with an ``error`` about no
    operation, which the client reads as a complaint about the connection."""
    if transport_ws(pair.client.subprotocol):
        assert events == []
        assert pair.closes == [Close(CloseCode.BAD_REQUEST, reason)]
    else:
        assert events == [
            ConnectionErrorReceived({"message": reason, "errors": [{"message": reason}]})
        ]
        assert pair.closes == []


def test_a_binary_frame(subprotocol: str) -> None:
    pair = ConnectionPair.ready(subprotocol)
    events = pair.perform(pair.server.receive_bytes(b"\x00"))
    assert_frame_refused(pair, events, "Binary frames are not supported")


def test_a_frame_too_large(subprotocol: str) -> None:
    pair = ConnectionPair.ready(subprotocol, max_message_size=64)
    events = pair.send(pair.client.start({"query": "{ " + "hello " * 20 + "}"}))
    assert pair.started == []
    assert_frame_refused(pair, events, "Message too large")


def test_an_operation_before_the_ack_is_unauthorized(subprotocol: str) -> None:
    pair = ConnectionPair(subprotocol)
    start = "subscribe" if transport_ws(subprotocol) else "start"
    text = json.dumps({"type": start, "id": "1", "payload": {"query": QUERY}})
    assert pair.send_text(text) == []
    assert pair.closes == [Close(CloseCode.UNAUTHORIZED, "Unauthorized")]
