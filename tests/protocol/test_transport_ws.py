"""The ``graphql-transport-ws`` state machine, driven without an event loop.

Each test feeds frames and events to a :class:`GraphqlTransportWsProtocol` and asserts
the exact actions it returns, following enisdenjo/graphql-ws PROTOCOL.md.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import pytest

from channels_graphql_typed._protocol import (
    GRAPHQL_TRANSPORT_WS,
    PROTOCOL_MACHINES,
    Close,
    CloseCode,
    ConnectionInitRequested,
    ConnectionState,
    GraphqlTransportWsProtocol,
    Send,
    StartOperation,
    StopOperation,
)
from channels_graphql_typed._protocol.common import (
    MAX_CLOSE_REASON_BYTES,
    MAX_OPERATION_ID_LENGTH,
    TOO_MANY_OPERATIONS,
    InvalidMessage,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from channels_graphql_typed._protocol import Action, Operation
    from channels_graphql_typed._protocol.messages import ExecutionResultPayload, FormattedError

QUERY = "subscription { ticks }"


# --- helpers ------------------------------------------------------------------------------


def frame(message: object) -> str:
    return json.dumps(message)


def wire(actions: list[Action]) -> list[dict[str, Any]]:
    """The messages of the Send actions, as plain dicts (what goes over the wire)."""
    return [
        cast("dict[str, Any]", action.message) for action in actions if isinstance(action, Send)
    ]


def subscribe_frame(operation_id: object, payload: object = None) -> str:
    if payload is None:
        payload = {"query": QUERY}
    return frame({"type": "subscribe", "id": operation_id, "payload": payload})


def initialise(machine: GraphqlTransportWsProtocol) -> GraphqlTransportWsProtocol:
    assert machine.receive_text(frame({"type": "connection_init"})) == [ConnectionInitRequested({})]
    return machine


def acknowledge(machine: GraphqlTransportWsProtocol) -> GraphqlTransportWsProtocol:
    initialise(machine)
    assert machine.accept_connection(None) == [Send({"type": "connection_ack"})]
    return machine


def start(machine: GraphqlTransportWsProtocol, operation_id: str) -> Operation:
    actions = machine.receive_text(subscribe_frame(operation_id))
    assert len(actions) == 1
    [action] = actions
    assert isinstance(action, StartOperation)
    assert action.operation.id == operation_id
    assert machine.is_active(action.operation)
    return action.operation


def assert_closed(
    machine: GraphqlTransportWsProtocol, actions: list[Action], code: int, reason: str | None = None
) -> Close:
    """The machine answered with exactly one Close, last, and is now closed."""
    assert actions, "expected a Close action"
    close = actions[-1]
    assert isinstance(close, Close)
    assert close.code == code
    if reason is not None:
        assert close.reason == reason
    assert not any(isinstance(action, Close) for action in actions[:-1])
    assert not any(isinstance(action, Send) for action in actions)
    assert machine.state is ConnectionState.CLOSED
    assert machine.operations == {}
    return close


def in_state(state: ConnectionState) -> GraphqlTransportWsProtocol:
    machine = GraphqlTransportWsProtocol()
    if state is ConnectionState.AWAITING_INIT:
        return machine
    if state is ConnectionState.INITIALISING:
        return initialise(machine)
    if state is ConnectionState.READY:
        return acknowledge(machine)
    machine.close(CloseCode.NORMAL, "closed for the test")
    return machine


@pytest.fixture
def machine() -> GraphqlTransportWsProtocol:
    return GraphqlTransportWsProtocol()


@pytest.fixture
def ready() -> GraphqlTransportWsProtocol:
    return acknowledge(GraphqlTransportWsProtocol())


# --- identity -----------------------------------------------------------------------------


def test_subprotocol_and_registry() -> None:
    assert GraphqlTransportWsProtocol.subprotocol == "graphql-transport-ws"
    assert PROTOCOL_MACHINES[GRAPHQL_TRANSPORT_WS] is GraphqlTransportWsProtocol
    # The modern protocol has no keep-alive message right after the acknowledgement.
    assert GraphqlTransportWsProtocol.keepalive_on_ack is False


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (CloseCode.NORMAL, 1000),
        (CloseCode.GOING_AWAY, 1001),
        (CloseCode.ABNORMAL_CLOSURE, 1006),
        (CloseCode.UNEXPECTED_CONDITION, 1011),
        (CloseCode.SERVICE_RESTART, 1012),
        (CloseCode.BAD_RESPONSE, 4004),
        (CloseCode.BAD_REQUEST, 4400),
        (CloseCode.UNAUTHORIZED, 4401),
        (CloseCode.FORBIDDEN, 4403),
        (CloseCode.CONNECTION_INITIALISATION_TIMEOUT, 4408),
        (CloseCode.SUBSCRIBER_ALREADY_EXISTS, 4409),
        (CloseCode.TOO_MANY_INITIALISATION_REQUESTS, 4429),
        (CloseCode.INTERNAL_ERROR, 4500),
    ],
)
def test_close_codes_match_the_spec(code: CloseCode, value: int) -> None:
    assert int(code) == value


def test_invalid_message_carries_its_close_code() -> None:
    assert InvalidMessage("Invalid message: not valid JSON").code is CloseCode.BAD_REQUEST
    forbidden = InvalidMessage("Forbidden", code=CloseCode.FORBIDDEN)
    assert forbidden.code is CloseCode.FORBIDDEN
    assert forbidden.reason == "Forbidden"


def test_fresh_machine_awaits_init(machine: GraphqlTransportWsProtocol) -> None:
    assert machine.state is ConnectionState.AWAITING_INIT
    assert machine.operations == {}


# --- connection_init / ack / reject -------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected_payload"),
    [
        ({"type": "connection_init"}, {}),
        ({"type": "connection_init", "payload": None}, {}),
        ({"type": "connection_init", "payload": {}}, {}),
        ({"type": "connection_init", "payload": {"token": "s3cr3t"}}, {"token": "s3cr3t"}),
        (
            {"type": "connection_init", "payload": {"nested": {"a": [1, 2]}}},
            {"nested": {"a": [1, 2]}},
        ),
    ],
)
def test_connection_init_runs_on_connect(
    machine: GraphqlTransportWsProtocol,
    message: dict[str, Any],
    expected_payload: dict[str, Any],
) -> None:
    assert machine.receive_text(frame(message)) == [ConnectionInitRequested(expected_payload)]
    assert machine.state is ConnectionState.INITIALISING


@pytest.mark.parametrize("payload", ["token", 1, 1.5, True, [], ["a"]])
def test_connection_init_payload_must_be_an_object(
    machine: GraphqlTransportWsProtocol, payload: object
) -> None:
    actions = machine.receive_text(frame({"type": "connection_init", "payload": payload}))
    assert actions == [
        Close(4400, "Invalid message: the connection_init payload must be an object")
    ]
    assert machine.state is ConnectionState.CLOSED


def test_accept_connection_without_payload(machine: GraphqlTransportWsProtocol) -> None:
    initialise(machine)
    actions = machine.accept_connection(None)
    assert wire(actions) == [{"type": "connection_ack"}]
    assert len(actions) == 1
    assert machine.state is ConnectionState.READY


def test_accept_connection_with_payload(machine: GraphqlTransportWsProtocol) -> None:
    initialise(machine)
    actions = machine.accept_connection({"user": "alice"})
    assert wire(actions) == [{"type": "connection_ack", "payload": {"user": "alice"}}]
    assert len(actions) == 1
    assert machine.state is ConnectionState.READY


@pytest.mark.parametrize(
    "state", [ConnectionState.AWAITING_INIT, ConnectionState.READY, ConnectionState.CLOSED]
)
def test_accept_connection_outside_initialising_does_nothing(state: ConnectionState) -> None:
    machine = in_state(state)
    assert machine.accept_connection({"user": "alice"}) == []
    assert machine.state is state


def test_accept_connection_is_acknowledged_once(machine: GraphqlTransportWsProtocol) -> None:
    initialise(machine)
    assert len(machine.accept_connection(None)) == 1
    assert machine.accept_connection(None) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "Forbidden"),
        ({}, "Forbidden"),
        ({"message": "Bad token"}, "Bad token"),
        ({"message": 42}, "Forbidden"),
        ({"other": "ignored"}, "Forbidden"),
    ],
)
def test_reject_connection_closes_4403(
    machine: GraphqlTransportWsProtocol, payload: dict[str, Any] | None, reason: str
) -> None:
    initialise(machine)
    actions = machine.reject_connection(payload)
    assert actions == [Close(4403, reason)]
    assert machine.state is ConnectionState.CLOSED
    # on_connect's answer cannot be changed afterwards.
    assert machine.accept_connection(None) == []
    assert machine.reject_connection(None) == []


def test_reject_connection_reason_is_truncated(machine: GraphqlTransportWsProtocol) -> None:
    initialise(machine)
    [close] = machine.reject_connection({"message": "é" * 200})
    assert isinstance(close, Close)
    assert close.code == 4403
    assert len(close.reason.encode("utf-8")) <= MAX_CLOSE_REASON_BYTES
    assert close.reason.endswith("...")
    assert close.reason.startswith("é" * 10)


@pytest.mark.parametrize("state", [ConnectionState.INITIALISING, ConnectionState.READY])
@pytest.mark.parametrize(
    "message",
    [
        {"type": "connection_init"},
        {"type": "connection_init", "payload": {"token": "again"}},
    ],
)
def test_second_connection_init_closes_4429(
    state: ConnectionState, message: dict[str, Any]
) -> None:
    machine = in_state(state)
    actions = machine.receive_text(frame(message))
    assert_closed(machine, actions, 4429, "Too many initialisation requests")


def test_second_connection_init_stops_active_operations(
    ready: GraphqlTransportWsProtocol,
) -> None:
    first = start(ready, "1")
    second = start(ready, "2")
    actions = ready.receive_text(frame({"type": "connection_init"}))
    assert actions == [
        StopOperation(first),
        StopOperation(second),
        Close(4429, "Too many initialisation requests"),
    ]


# --- init timeout ---------------------------------------------------------------------------


def test_init_timeout_closes_4408_while_awaiting_init(
    machine: GraphqlTransportWsProtocol,
) -> None:
    assert machine.init_timeout() == [Close(4408, "Connection initialisation timeout")]
    assert machine.state is ConnectionState.CLOSED
    assert machine.receive_text(frame({"type": "connection_init"})) == []


@pytest.mark.parametrize(
    "state", [ConnectionState.INITIALISING, ConnectionState.READY, ConnectionState.CLOSED]
)
def test_init_timeout_is_ignored_after_init(state: ConnectionState) -> None:
    machine = in_state(state)
    assert machine.init_timeout() == []
    assert machine.state is state


def test_init_timeout_while_initialising_then_accept(machine: GraphqlTransportWsProtocol) -> None:
    # on_connect is slow: the timer fires while it runs; the connection is still acked.
    initialise(machine)
    assert machine.init_timeout() == []
    assert wire(machine.accept_connection(None)) == [{"type": "connection_ack"}]


# --- ping / pong / keepalive --------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [ConnectionState.AWAITING_INIT, ConnectionState.INITIALISING, ConnectionState.READY],
)
@pytest.mark.parametrize(
    ("ping", "pong"),
    [
        ({"type": "ping"}, {"type": "pong"}),
        ({"type": "ping", "payload": None}, {"type": "pong"}),
        ({"type": "ping", "payload": {}}, {"type": "pong", "payload": {}}),
        (
            {"type": "ping", "payload": {"sent": 123, "tags": ["a", "b"]}},
            {"type": "pong", "payload": {"sent": 123, "tags": ["a", "b"]}},
        ),
    ],
)
def test_ping_is_answered_with_pong_echoing_the_payload(
    state: ConnectionState, ping: dict[str, Any], pong: dict[str, Any]
) -> None:
    machine = in_state(state)
    actions = machine.receive_text(frame(ping))
    assert len(actions) == 1
    assert wire(actions) == [pong]
    assert machine.state is state


@pytest.mark.parametrize("payload", ["x", 1, [], True])
def test_ping_payload_must_be_an_object(
    machine: GraphqlTransportWsProtocol, payload: object
) -> None:
    actions = machine.receive_text(frame({"type": "ping", "payload": payload}))
    assert_closed(machine, actions, 4400, "Invalid message: the ping payload must be an object")


@pytest.mark.parametrize(
    "state",
    [ConnectionState.AWAITING_INIT, ConnectionState.INITIALISING, ConnectionState.READY],
)
@pytest.mark.parametrize(
    "pong",
    [{"type": "pong"}, {"type": "pong", "payload": None}, {"type": "pong", "payload": {"a": 1}}],
)
def test_pong_is_ignored(state: ConnectionState, pong: dict[str, Any]) -> None:
    machine = in_state(state)
    assert machine.receive_text(frame(pong)) == []
    assert machine.state is state


def test_pong_payload_must_be_an_object(machine: GraphqlTransportWsProtocol) -> None:
    actions = machine.receive_text(frame({"type": "pong", "payload": "late"}))
    assert_closed(machine, actions, 4400, "Invalid message: the pong payload must be an object")


@pytest.mark.parametrize(
    "state",
    [ConnectionState.AWAITING_INIT, ConnectionState.INITIALISING, ConnectionState.READY],
)
def test_keepalive_sends_ping(state: ConnectionState) -> None:
    machine = in_state(state)
    actions = machine.keepalive()
    assert wire(actions) == [{"type": "ping"}]
    assert len(actions) == 1
    assert machine.state is state


def test_keepalive_after_close_does_nothing() -> None:
    assert in_state(ConnectionState.CLOSED).keepalive() == []


# --- invalid frames -> 4400 ---------------------------------------------------------------

NOT_JSON = "Invalid message: not valid JSON"
NOT_OBJECT = "Invalid message: expected a JSON object"
NO_TYPE = "Invalid message: missing or non-string 'type'"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", NOT_JSON, id="empty"),
        pytest.param("not json", NOT_JSON, id="garbage"),
        pytest.param("{", NOT_JSON, id="truncated"),
        pytest.param("{'type': 'ping'}", NOT_JSON, id="single-quotes"),
        pytest.param('{"type": "ping"} trailing', NOT_JSON, id="trailing-data"),
        pytest.param("[]", NOT_OBJECT, id="array"),
        pytest.param('[{"type": "ping"}]', NOT_OBJECT, id="array-of-message"),
        pytest.param('"ping"', NOT_OBJECT, id="string"),
        pytest.param("42", NOT_OBJECT, id="number"),
        pytest.param("null", NOT_OBJECT, id="null"),
        pytest.param("true", NOT_OBJECT, id="bool"),
        pytest.param("{}", NO_TYPE, id="no-type"),
        pytest.param('{"id": "1"}', NO_TYPE, id="no-type-with-id"),
        pytest.param('{"type": null}', NO_TYPE, id="type-null"),
        pytest.param('{"type": 1}', NO_TYPE, id="type-number"),
        pytest.param('{"type": ["ping"]}', NO_TYPE, id="type-array"),
        pytest.param('{"type": {"ping": 1}}', NO_TYPE, id="type-object"),
        pytest.param(
            '{"type": "unknown"}', "Unexpected message of type 'unknown' received", id="unknown"
        ),
        pytest.param('{"type": ""}', "Unexpected message of type '' received", id="type-empty"),
        pytest.param(
            '{"type": "PING"}', "Unexpected message of type 'PING' received", id="type-case"
        ),
        pytest.param(
            '{"type": "start", "id": "1", "payload": {"query": "{a}"}}',
            "Unexpected message of type 'start' received",
            id="legacy-start",
        ),
        pytest.param(
            '{"type": "stop", "id": "1"}',
            "Unexpected message of type 'stop' received",
            id="legacy-stop",
        ),
        pytest.param(
            '{"type": "connection_terminate"}',
            "Unexpected message of type 'connection_terminate' received",
            id="legacy-terminate",
        ),
    ],
)
@pytest.mark.parametrize(
    "state",
    [ConnectionState.AWAITING_INIT, ConnectionState.INITIALISING, ConnectionState.READY],
)
def test_invalid_frame_closes_4400(state: ConnectionState, text: str, reason: str) -> None:
    machine = in_state(state)
    actions = machine.receive_text(text)
    assert actions == [Close(4400, reason)]
    assert machine.state is ConnectionState.CLOSED


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"type": "connection_ack"}, id="connection_ack"),
        pytest.param({"type": "connection_ack", "payload": {}}, id="connection_ack-payload"),
        pytest.param({"type": "next", "id": "1", "payload": {"data": {}}}, id="next"),
        pytest.param({"type": "error", "id": "1", "payload": [{"message": "x"}]}, id="error"),
    ],
)
@pytest.mark.parametrize(
    "state",
    [ConnectionState.AWAITING_INIT, ConnectionState.INITIALISING, ConnectionState.READY],
)
def test_server_only_message_from_client_closes_4400(
    state: ConnectionState, message: dict[str, Any]
) -> None:
    machine = in_state(state)
    actions = machine.receive_text(frame(message))
    assert actions == [Close(4400, f"Unexpected message of type {message['type']!r} received")]


def test_unknown_type_reason_is_bounded(machine: GraphqlTransportWsProtocol) -> None:
    actions = machine.receive_text(frame({"type": "x" * 10_000}))
    close = assert_closed(machine, actions, 4400)
    assert len(close.reason.encode("utf-8")) <= MAX_CLOSE_REASON_BYTES
    assert close.reason.startswith("Unexpected message of type 'xxx")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 100_000, id="arrays"),
        pytest.param('{"a":' * 100_000, id="objects"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="balanced-arrays"),
        pytest.param(
            '{"type": "ping", "payload": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001,
            id="inside-a-valid-message",
        ),
    ],
)
def test_deeply_nested_json_closes_4400_without_crashing(
    ready: GraphqlTransportWsProtocol, text: str
) -> None:
    operation = start(ready, "1")
    actions = ready.receive_text(text)
    assert actions == [StopOperation(operation), Close(4400, NOT_JSON)]


@pytest.mark.parametrize(
    "state",
    [
        ConnectionState.AWAITING_INIT,
        ConnectionState.INITIALISING,
        ConnectionState.READY,
    ],
)
@pytest.mark.parametrize("data", [b"", b'{"type": "ping"}', b"\x00\xff"])
def test_binary_frame_closes_4400(state: ConnectionState, data: bytes) -> None:
    machine = in_state(state)
    actions = machine.receive_bytes(data)
    assert actions == [Close(4400, "Binary frames are not supported")]
    assert machine.state is ConnectionState.CLOSED


def test_invalid_frame_stops_active_operations_before_closing(
    ready: GraphqlTransportWsProtocol,
) -> None:
    first = start(ready, "a")
    second = start(ready, "b")
    actions = ready.receive_text("nope")
    assert actions == [StopOperation(first), StopOperation(second), Close(4400, NOT_JSON)]
    assert actions[0] == StopOperation(first)
    stops = [action for action in actions if isinstance(action, StopOperation)]
    assert [stop.operation for stop in stops] == [first, second]
    assert stops[0].operation is first
    assert stops[1].operation is second
    assert not ready.is_active(first)
    assert not ready.is_active(second)


# --- message size -------------------------------------------------------------------------


def test_message_over_max_size_closes_4400() -> None:
    machine = GraphqlTransportWsProtocol(max_message_size=100)
    text = frame({"type": "ping", "payload": {"pad": "x" * 100}})
    assert len(text) > 100
    assert machine.receive_text(text) == [Close(4400, "Message too large")]
    assert machine.state is ConnectionState.CLOSED


def test_message_size_limit_is_inclusive() -> None:
    prefix = '{"type": "ping", "payload": {"pad": "'
    suffix = '"}}'
    text = prefix + "x" * (100 - len(prefix) - len(suffix)) + suffix
    assert len(text.encode("utf-8")) == 100
    assert wire(GraphqlTransportWsProtocol(max_message_size=100).receive_text(text)) == [
        {"type": "pong", "payload": {"pad": "x" * (100 - len(prefix) - len(suffix))}}
    ]
    assert GraphqlTransportWsProtocol(max_message_size=99).receive_text(text) == [
        Close(4400, "Message too large")
    ]


def test_message_size_is_counted_in_utf8_bytes() -> None:
    # 78 characters, but "€" takes three bytes: 158 bytes on the wire.
    text = '{"type": "ping", "payload": {"p": "' + "€" * 40 + '"}}'
    assert len(text) <= 100 < len(text.encode("utf-8"))
    machine = GraphqlTransportWsProtocol(max_message_size=100)
    assert machine.receive_text(text) == [Close(4400, "Message too large")]


def test_default_max_message_size_is_one_mebibyte() -> None:
    machine = GraphqlTransportWsProtocol()
    assert machine.max_message_size == 1024 * 1024
    padding = 1024 * 1024
    text = frame({"type": "ping", "payload": {"pad": "x" * padding}})
    assert machine.receive_text(text) == [Close(4400, "Message too large")]


def test_no_max_message_size() -> None:
    machine = GraphqlTransportWsProtocol(max_message_size=None)
    payload = {"pad": "x" * (2 * 1024 * 1024)}
    assert wire(machine.receive_text(frame({"type": "ping", "payload": payload}))) == [
        {"type": "pong", "payload": payload}
    ]


def test_too_large_message_stops_active_operations(ready: GraphqlTransportWsProtocol) -> None:
    operation = start(ready, "1")
    ready.max_message_size = 64
    actions = ready.receive_text(frame({"type": "ping", "payload": {"pad": "x" * 64}}))
    assert actions == [StopOperation(operation), Close(4400, "Message too large")]


# --- subscribe ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", [ConnectionState.AWAITING_INIT, ConnectionState.INITIALISING])
def test_subscribe_before_ack_closes_4401(state: ConnectionState) -> None:
    machine = in_state(state)
    actions = machine.receive_text(subscribe_frame("1"))
    assert_closed(machine, actions, 4401, "Unauthorized")
    # A late acknowledgement does not reopen the connection.
    assert machine.accept_connection(None) == []


def test_subscribe_starts_an_operation(ready: GraphqlTransportWsProtocol) -> None:
    actions = ready.receive_text(subscribe_frame("op-1"))
    [action] = actions
    assert isinstance(action, StartOperation)
    operation = action.operation
    assert operation.id == "op-1"
    assert operation.payload == {
        "query": QUERY,
        "variables": None,
        "operationName": None,
        "extensions": None,
    }
    assert ready.operations == {"op-1": operation}
    assert ready.is_active(operation)


def test_subscribe_keeps_every_payload_field(ready: GraphqlTransportWsProtocol) -> None:
    payload = {
        "query": "query Q($n: Int) { n(n: $n) }",
        "variables": {"n": 3, "list": [1, {"a": None}]},
        "operationName": "Q",
        "extensions": {"persistedQuery": {"version": 1}},
    }
    [action] = ready.receive_text(subscribe_frame("1", payload))
    assert isinstance(action, StartOperation)
    assert action.operation.payload == payload


def test_subscribe_drops_unknown_payload_fields(ready: GraphqlTransportWsProtocol) -> None:
    [action] = ready.receive_text(subscribe_frame("1", {"query": "{a}", "extra": 1}))
    assert isinstance(action, StartOperation)
    assert action.operation.payload == {
        "query": "{a}",
        "variables": None,
        "operationName": None,
        "extensions": None,
    }


def test_subscribe_accepts_explicit_nulls(ready: GraphqlTransportWsProtocol) -> None:
    payload = {"query": "{a}", "variables": None, "operationName": None, "extensions": None}
    [action] = ready.receive_text(subscribe_frame("1", payload))
    assert isinstance(action, StartOperation)
    assert action.operation.payload == payload


def test_operation_id_of_max_length_is_accepted(ready: GraphqlTransportWsProtocol) -> None:
    operation = start(ready, "i" * MAX_OPERATION_ID_LENGTH)
    assert len(operation.id) == MAX_OPERATION_ID_LENGTH


@pytest.mark.parametrize(
    "operation_id", ["1", "a b", "ü-ñ-💥", "00000000-0000-0000-0000-000000000000"]
)
def test_any_non_empty_string_is_an_id(
    ready: GraphqlTransportWsProtocol, operation_id: str
) -> None:
    operation = start(ready, operation_id)
    assert operation.id == operation_id


BAD_ID = "Invalid message: 'id' must be a non-empty string"


@pytest.mark.parametrize(
    ("operation_id", "reason"),
    [
        pytest.param(None, BAD_ID, id="null"),
        pytest.param("", BAD_ID, id="empty"),
        pytest.param(1, BAD_ID, id="int"),
        pytest.param(1.5, BAD_ID, id="float"),
        pytest.param(True, BAD_ID, id="bool"),
        pytest.param(["1"], BAD_ID, id="list"),
        pytest.param({}, BAD_ID, id="object"),
        pytest.param(
            "i" * (MAX_OPERATION_ID_LENGTH + 1), "Invalid message: 'id' is too long", id="too-long"
        ),
    ],
)
def test_subscribe_with_malformed_id_closes_4400(
    ready: GraphqlTransportWsProtocol, operation_id: object, reason: str
) -> None:
    actions = ready.receive_text(subscribe_frame(operation_id))
    assert_closed(ready, actions, 4400, reason)


def test_subscribe_without_id_closes_4400(ready: GraphqlTransportWsProtocol) -> None:
    actions = ready.receive_text(frame({"type": "subscribe", "payload": {"query": QUERY}}))
    assert_closed(ready, actions, 4400, BAD_ID)


PAYLOAD_NOT_OBJECT = "Invalid message: the operation payload must be an object"
QUERY_NOT_STRING = "Invalid message: 'payload.query' must be a string"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(None, PAYLOAD_NOT_OBJECT, id="payload-null"),
        pytest.param("{a}", PAYLOAD_NOT_OBJECT, id="payload-string"),
        pytest.param([{"query": "{a}"}], PAYLOAD_NOT_OBJECT, id="payload-list"),
        pytest.param(1, PAYLOAD_NOT_OBJECT, id="payload-int"),
        pytest.param({}, QUERY_NOT_STRING, id="query-missing"),
        pytest.param({"query": None}, QUERY_NOT_STRING, id="query-null"),
        pytest.param({"query": 1}, QUERY_NOT_STRING, id="query-int"),
        pytest.param({"query": ["{a}"]}, QUERY_NOT_STRING, id="query-list"),
        pytest.param(
            {"query": "{a}", "variables": "x"},
            "Invalid message: 'payload.variables' must be an object",
            id="variables-string",
        ),
        pytest.param(
            {"query": "{a}", "variables": [1]},
            "Invalid message: 'payload.variables' must be an object",
            id="variables-list",
        ),
        pytest.param(
            {"query": "{a}", "operationName": 1},
            "Invalid message: 'payload.operationName' must be a string",
            id="operationName-int",
        ),
        pytest.param(
            {"query": "{a}", "operationName": {"name": "Q"}},
            "Invalid message: 'payload.operationName' must be a string",
            id="operationName-object",
        ),
        pytest.param(
            {"query": "{a}", "extensions": "x"},
            "Invalid message: 'payload.extensions' must be an object",
            id="extensions-string",
        ),
        pytest.param(
            {"query": "{a}", "extensions": [1]},
            "Invalid message: 'payload.extensions' must be an object",
            id="extensions-list",
        ),
    ],
)
def test_subscribe_with_malformed_payload_closes_4400(
    ready: GraphqlTransportWsProtocol, payload: object, reason: str
) -> None:
    operation = start(ready, "other")
    message: dict[str, Any] = {"type": "subscribe", "id": "1"}
    if payload is not None:
        message["payload"] = payload
    actions = ready.receive_text(frame(message))
    assert actions == [StopOperation(operation), Close(4400, reason)]
    assert ready.state is ConnectionState.CLOSED


def test_subscribe_with_explicit_null_payload_closes_4400(
    ready: GraphqlTransportWsProtocol,
) -> None:
    actions = ready.receive_text(frame({"type": "subscribe", "id": "1", "payload": None}))
    assert_closed(ready, actions, 4400, PAYLOAD_NOT_OBJECT)


def test_subscribe_with_active_id_closes_4409(ready: GraphqlTransportWsProtocol) -> None:
    operation = start(ready, "dup")
    actions = ready.receive_text(subscribe_frame("dup"))
    assert actions == [StopOperation(operation), Close(4409, "Subscriber for dup already exists")]
    assert ready.state is ConnectionState.CLOSED


def test_subscribe_4409_reason_with_long_id_is_truncated(
    ready: GraphqlTransportWsProtocol,
) -> None:
    operation_id = "é" * (MAX_OPERATION_ID_LENGTH // 2)
    start(ready, operation_id)
    actions = ready.receive_text(subscribe_frame(operation_id))
    close = assert_closed(ready, actions, 4409)
    assert close.reason.startswith("Subscriber for éé")
    assert close.reason.endswith("...")
    assert len(close.reason.encode("utf-8")) <= MAX_CLOSE_REASON_BYTES


def test_subscribe_4409_with_lone_surrogate_id_does_not_crash(
    ready: GraphqlTransportWsProtocol,
) -> None:
    # JSON lets a client send "\ud800", which Python decodes to a lone surrogate that
    # UTF-8 cannot encode; the close reason quoting that id must still be sendable.
    text = '{"type": "subscribe", "id": "\\ud800", "payload": {"query": "{a}"}}'
    [start_action] = ready.receive_text(text)
    assert isinstance(start_action, StartOperation)
    actions = ready.receive_text(text)
    assert actions[0] == StopOperation(start_action.operation)
    close = assert_closed(ready, actions, 4409)
    close.reason.encode("utf-8")  # must not raise
    assert close.reason.startswith("Subscriber for ")


def test_subscribe_malformed_id_wins_over_unauthorized(
    machine: GraphqlTransportWsProtocol,
) -> None:
    # The frame is validated before the handshake state is checked.
    actions = machine.receive_text(frame({"type": "subscribe", "id": 5, "payload": {}}))
    assert_closed(machine, actions, 4400, BAD_ID)


def test_several_operations_run_side_by_side(ready: GraphqlTransportWsProtocol) -> None:
    operations = [start(ready, str(number)) for number in range(5)]
    assert list(ready.operations) == ["0", "1", "2", "3", "4"]
    assert all(ready.is_active(operation) for operation in operations)
    assert len({id(operation) for operation in operations}) == 5


# --- max_operations -----------------------------------------------------------------------


def test_max_operations_rejects_with_an_error_for_that_id() -> None:
    machine = acknowledge(GraphqlTransportWsProtocol(max_operations=2))
    first = start(machine, "1")
    second = start(machine, "2")
    actions = machine.receive_text(subscribe_frame("3"))
    assert wire(actions) == [
        {"type": "error", "id": "3", "payload": [{"message": TOO_MANY_OPERATIONS}]}
    ]
    assert len(actions) == 1
    assert machine.operations == {"1": first, "2": second}
    assert machine.state is ConnectionState.READY
    # The rejected id was never registered: completing it is a no-op, and reusing it
    # once there is room is not a 4409.
    assert machine.receive_text(frame({"type": "complete", "id": "3"})) == []
    assert machine.receive_text(frame({"type": "complete", "id": "1"})) == [StopOperation(first)]
    third = start(machine, "3")
    assert machine.operations == {"2": second, "3": third}


def test_max_operations_counts_server_completed_operations_out() -> None:
    machine = acknowledge(GraphqlTransportWsProtocol(max_operations=1))
    first = start(machine, "1")
    assert wire(machine.receive_text(subscribe_frame("2")))[0]["type"] == "error"
    assert wire(machine.complete(first)) == [{"type": "complete", "id": "1"}]
    start(machine, "2")


def test_max_operations_zero_rejects_everything() -> None:
    machine = acknowledge(GraphqlTransportWsProtocol(max_operations=0))
    assert wire(machine.receive_text(subscribe_frame("1"))) == [
        {"type": "error", "id": "1", "payload": [{"message": TOO_MANY_OPERATIONS}]}
    ]
    assert machine.operations == {}


def test_default_max_operations_is_one_hundred(ready: GraphqlTransportWsProtocol) -> None:
    assert ready.max_operations == 100
    for number in range(100):
        start(ready, str(number))
    assert wire(ready.receive_text(subscribe_frame("100"))) == [
        {"type": "error", "id": "100", "payload": [{"message": TOO_MANY_OPERATIONS}]}
    ]


def test_no_max_operations() -> None:
    machine = acknowledge(GraphqlTransportWsProtocol(max_operations=None))
    for number in range(250):
        start(machine, str(number))
    assert len(machine.operations) == 250


def test_active_id_check_comes_before_max_operations() -> None:
    machine = acknowledge(GraphqlTransportWsProtocol(max_operations=1))
    operation = start(machine, "1")
    actions = machine.receive_text(subscribe_frame("1"))
    assert actions == [StopOperation(operation), Close(4409, "Subscriber for 1 already exists")]


# --- complete from the client -------------------------------------------------------------


def test_client_complete_stops_the_operation(ready: GraphqlTransportWsProtocol) -> None:
    operation = start(ready, "1")
    actions = ready.receive_text(frame({"type": "complete", "id": "1"}))
    assert actions == [StopOperation(operation)]
    [stop] = actions
    assert isinstance(stop, StopOperation)
    assert stop.operation is operation
    assert not ready.is_active(operation)
    assert ready.operations == {}
    # The server does not answer a client complete with its own complete.
    assert wire(actions) == []


def test_after_client_complete_the_old_operation_produces_nothing(
    ready: GraphqlTransportWsProtocol,
) -> None:
    operation = start(ready, "1")
    ready.receive_text(frame({"type": "complete", "id": "1"}))
    assert ready.send_result(operation, {"data": {"ticks": 1}}) == []
    assert ready.send_errors(operation, [{"message": "late"}]) == []
    assert ready.complete(operation) == []
    assert ready.receive_text(frame({"type": "complete", "id": "1"})) == []


def test_reused_id_is_a_new_operation(ready: GraphqlTransportWsProtocol) -> None:
    old = start(ready, "1")
    assert ready.receive_text(frame({"type": "complete", "id": "1"})) == [StopOperation(old)]
    new = start(ready, "1")
    assert new is not old
    assert ready.is_active(new)
    assert not ready.is_active(old)
    # A late result of the OLD operation must not leak under the reused id.
    assert ready.send_result(old, {"data": {"ticks": "old"}}) == []
    assert ready.send_errors(old, [{"message": "old"}]) == []
    assert ready.complete(old) == []
    assert ready.is_active(new)
    assert wire(ready.send_result(new, {"data": {"ticks": "new"}})) == [
        {"type": "next", "id": "1", "payload": {"data": {"ticks": "new"}}}
    ]
    # Completing the new one by id stops the new object, not the old one.
    actions = ready.receive_text(frame({"type": "complete", "id": "1"}))
    [stop] = actions
    assert isinstance(stop, StopOperation)
    assert stop.operation is new


@pytest.mark.parametrize(
    "state",
    [ConnectionState.AWAITING_INIT, ConnectionState.INITIALISING, ConnectionState.READY],
)
def test_complete_for_unknown_id_is_ignored(state: ConnectionState) -> None:
    machine = in_state(state)
    assert machine.receive_text(frame({"type": "complete", "id": "nope"})) == []
    assert machine.state is state


def test_complete_for_unknown_id_leaves_others_running(
    ready: GraphqlTransportWsProtocol,
) -> None:
    operation = start(ready, "1")
    assert ready.receive_text(frame({"type": "complete", "id": "2"})) == []
    assert ready.is_active(operation)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"type": "complete"}, id="missing"),
        pytest.param({"type": "complete", "id": ""}, id="empty"),
        pytest.param({"type": "complete", "id": 1}, id="int"),
        pytest.param({"type": "complete", "id": None}, id="null"),
    ],
)
def test_complete_with_malformed_id_closes_4400(
    ready: GraphqlTransportWsProtocol, message: dict[str, Any]
) -> None:
    actions = ready.receive_text(frame(message))
    assert_closed(ready, actions, 4400, BAD_ID)


# --- results from the server --------------------------------------------------------------


def test_send_result_sends_next(ready: GraphqlTransportWsProtocol) -> None:
    operation = start(ready, "1")
    results: list[ExecutionResultPayload] = [
        {"data": {"ticks": 1}},
        {"data": {"ticks": 2}, "extensions": {"cost": 3}},
        {"data": None, "errors": [{"message": "boom", "path": ["ticks"]}]},
    ]
    sent = [message for result in results for message in wire(ready.send_result(operation, result))]
    assert sent == [{"type": "next", "id": "1", "payload": result} for result in results]
    assert ready.is_active(operation)


def test_send_result_goes_to_the_right_operation(ready: GraphqlTransportWsProtocol) -> None:
    first = start(ready, "a")
    second = start(ready, "b")
    assert wire(ready.send_result(second, {"data": {"x": 2}})) == [
        {"type": "next", "id": "b", "payload": {"data": {"x": 2}}}
    ]
    assert wire(ready.send_result(first, {"data": {"x": 1}})) == [
        {"type": "next", "id": "a", "payload": {"data": {"x": 1}}}
    ]


def test_server_complete_sends_complete_once(ready: GraphqlTransportWsProtocol) -> None:
    operation = start(ready, "1")
    assert wire(ready.send_result(operation, {"data": {"q": 1}})) == [
        {"type": "next", "id": "1", "payload": {"data": {"q": 1}}}
    ]
    actions = ready.complete(operation)
    assert actions == [Send({"type": "complete", "id": "1"})]
    assert not ready.is_active(operation)
    assert ready.complete(operation) == []
    assert ready.send_result(operation, {"data": {"q": 2}}) == []
    # The client's own complete racing with ours is ignored.
    assert ready.receive_text(frame({"type": "complete", "id": "1"})) == []


def test_send_errors_ends_the_operation_with_error(ready: GraphqlTransportWsProtocol) -> None:
    operation = start(ready, "1")
    errors: list[FormattedError] = [
        {"message": "Cannot query field 'x'.", "locations": [{"line": 1, "column": 3}]},
        {"message": "Second problem", "extensions": {"code": "BAD"}},
    ]
    actions = ready.send_errors(operation, errors)
    assert wire(actions) == [{"type": "error", "id": "1", "payload": errors}]
    assert len(actions) == 1
    assert not ready.is_active(operation)
    # `error` terminates the operation: no complete follows.
    assert ready.complete(operation) == []
    assert ready.send_result(operation, {"data": None}) == []
    assert ready.send_errors(operation, errors) == []
    # The id is free again.
    start(ready, "1")


def test_send_errors_accepts_a_tuple(ready: GraphqlTransportWsProtocol) -> None:
    operation = start(ready, "1")
    errors: tuple[FormattedError, ...] = ({"message": "a"},)
    assert wire(ready.send_errors(operation, errors)) == [
        {"type": "error", "id": "1", "payload": [{"message": "a"}]}
    ]


def test_results_are_json_serializable(ready: GraphqlTransportWsProtocol) -> None:
    operation = start(ready, "1")
    actions = [
        *ready.send_result(operation, {"data": {"a": [1, "b", None, True]}}),
        *ready.complete(operation),
        *ready.keepalive(),
    ]
    for message in wire(actions):
        assert json.loads(json.dumps(message)) == message


# --- close --------------------------------------------------------------------------------


def test_close_stops_all_operations_before_closing(ready: GraphqlTransportWsProtocol) -> None:
    first = start(ready, "1")
    second = start(ready, "2")
    third = start(ready, "3")
    ready.receive_text(frame({"type": "complete", "id": "2"}))
    actions = ready.close(1000, "Bye")
    assert actions == [StopOperation(first), StopOperation(third), Close(1000, "Bye")]
    assert ready.operations == {}
    assert ready.state is ConnectionState.CLOSED
    assert not ready.is_active(first)
    assert not ready.is_active(second)


def test_close_without_operations(machine: GraphqlTransportWsProtocol) -> None:
    assert machine.close(CloseCode.INTERNAL_ERROR, "Internal error") == [
        Close(4500, "Internal error")
    ]


def test_close_twice_closes_once(ready: GraphqlTransportWsProtocol) -> None:
    start(ready, "1")
    assert len(ready.close(1000, "first")) == 2
    assert ready.close(4500, "second") == []


ANY_CALL: list[tuple[str, Callable[[GraphqlTransportWsProtocol, Operation], list[Action]]]] = [
    ("connection_init", lambda m, op: m.receive_text(frame({"type": "connection_init"}))),
    ("ping", lambda m, op: m.receive_text(frame({"type": "ping"}))),
    ("pong", lambda m, op: m.receive_text(frame({"type": "pong"}))),
    ("subscribe", lambda m, op: m.receive_text(subscribe_frame("9"))),
    ("subscribe-same-id", lambda m, op: m.receive_text(subscribe_frame(op.id))),
    ("complete-frame", lambda m, op: m.receive_text(frame({"type": "complete", "id": op.id}))),
    ("invalid-json", lambda m, op: m.receive_text("{{{")),
    ("unknown-type", lambda m, op: m.receive_text(frame({"type": "x"}))),
    ("too-large", lambda m, op: m.receive_text("x" * (2 * 1024 * 1024))),
    ("bytes", lambda m, op: m.receive_bytes(b"data")),
    ("accept", lambda m, op: m.accept_connection({"a": 1})),
    ("reject", lambda m, op: m.reject_connection({"message": "no"})),
    ("init_timeout", lambda m, op: m.init_timeout()),
    ("keepalive", lambda m, op: m.keepalive()),
    ("close", lambda m, op: m.close(1000, "again")),
    ("send_result", lambda m, op: m.send_result(op, {"data": {}})),
    ("send_errors", lambda m, op: m.send_errors(op, [{"message": "x"}])),
    ("complete", lambda m, op: m.complete(op)),
]


@pytest.mark.parametrize("call", [pytest.param(call, id=name) for name, call in ANY_CALL])
@pytest.mark.parametrize(
    "how",
    [
        pytest.param(lambda m: m.close(1000, "Bye"), id="server-close"),
        pytest.param(lambda m: m.receive_text("bad"), id="4400"),
        pytest.param(lambda m: m.receive_text(frame({"type": "connection_init"})), id="4429"),
        pytest.param(lambda m: m.reject_connection(None), id="4403"),
    ],
)
def test_everything_after_close_returns_nothing(
    how: Callable[[GraphqlTransportWsProtocol], list[Action]],
    call: Callable[[GraphqlTransportWsProtocol, Operation], list[Action]],
) -> None:
    machine = acknowledge(GraphqlTransportWsProtocol())
    operation = start(machine, "1")
    actions = how(machine)
    assert actions[0] == StopOperation(operation)
    assert isinstance(actions[-1], Close)
    assert machine.state is ConnectionState.CLOSED
    assert call(machine, operation) == []
    assert machine.state is ConnectionState.CLOSED
    assert machine.operations == {}


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        pytest.param("", "", id="empty"),
        pytest.param("short", "short", id="short"),
        pytest.param("a" * 123, "a" * 123, id="exactly-123-bytes"),
        pytest.param("a" * 124, "a" * 120 + "...", id="124-bytes"),
        pytest.param("a" * 1000, "a" * 120 + "...", id="long-ascii"),
        # "é" is two bytes: 61 of them (122 bytes) fit; 62 (124 bytes) do not.
        pytest.param("é" * 61, "é" * 61, id="two-byte-fits"),
        pytest.param("é" * 62, "é" * 60 + "...", id="two-byte-cut"),
        # "€" is three bytes: 41 of them are exactly 123 bytes.
        pytest.param("€" * 41, "€" * 41, id="three-byte-exact"),
        pytest.param("€" * 42, "€" * 40 + "...", id="three-byte-cut"),
        # A four-byte character straddling byte 120 is dropped whole, never split.
        pytest.param("a" + "💥" * 40, "a" + "💥" * 29 + "...", id="four-byte-straddle"),
    ],
)
def test_close_reason_is_truncated_to_123_utf8_bytes(reason: str, expected: str) -> None:
    machine = GraphqlTransportWsProtocol()
    [close] = machine.close(4000, reason)
    assert isinstance(close, Close)
    assert close.reason == expected
    assert len(close.reason.encode("utf-8")) <= MAX_CLOSE_REASON_BYTES


def test_close_reason_with_lone_surrogate_is_encodable() -> None:
    [close] = GraphqlTransportWsProtocol().close(4000, "bad \udc80 id")
    assert isinstance(close, Close)
    assert close.reason == "bad ? id"
    close.reason.encode("utf-8")
