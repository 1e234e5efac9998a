"""Apollo's legacy ``graphql-ws`` state machine, driven without an event loop.

Each test feeds frames and events to a :class:`LegacyGraphqlWsProtocol` and asserts the exact
actions it returns, following apollographql/subscriptions-transport-ws PROTOCOL.md.
Unlike ``graphql-transport-ws``, this protocol reports bad messages with ``error`` /
``connection_error`` and keeps the connection open.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import pytest

from channels_graphql_typed._protocol import (
    GRAPHQL_WS,
    PROTOCOL_MACHINES,
    Close,
    CloseCode,
    ConnectionInitRequested,
    ConnectionState,
    LegacyGraphqlWsProtocol,
    Send,
    StartOperation,
    StopOperation,
)
from channels_graphql_typed._protocol.common import (
    MAX_CLOSE_REASON_BYTES,
    MAX_OPERATION_ID_LENGTH,
    TOO_MANY_OPERATIONS,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from channels_graphql_typed._protocol import Action, Operation
    from channels_graphql_typed._protocol.messages import ExecutionResultPayload, FormattedError

QUERY = "subscription { ticks }"
LIVE_STATES = [ConnectionState.AWAITING_INIT, ConnectionState.INITIALISING, ConnectionState.READY]


# --- helpers ------------------------------------------------------------------------------


def frame(message: object) -> str:
    return json.dumps(message)


def wire(actions: list[Action]) -> list[dict[str, Any]]:
    """The messages of the Send actions, as plain dicts (what goes over the wire)."""
    return [
        cast("dict[str, Any]", action.message) for action in actions if isinstance(action, Send)
    ]


def start_frame(operation_id: object, payload: object = None) -> str:
    if payload is None:
        payload = {"query": QUERY}
    return frame({"type": "start", "id": operation_id, "payload": payload})


def error_message(operation_id: str | None, message: str) -> dict[str, Any]:
    """A legacy ``error`` carrying a single error."""
    return {
        "type": "error",
        "id": operation_id,
        "payload": {"message": message, "errors": [{"message": message}]},
    }


def initialise(machine: LegacyGraphqlWsProtocol) -> LegacyGraphqlWsProtocol:
    assert machine.receive_text(frame({"type": "connection_init"})) == [ConnectionInitRequested({})]
    return machine


def acknowledge(machine: LegacyGraphqlWsProtocol) -> LegacyGraphqlWsProtocol:
    initialise(machine)
    assert machine.accept_connection(None) == [Send({"type": "connection_ack"})]
    return machine


def start(machine: LegacyGraphqlWsProtocol, operation_id: str) -> Operation:
    actions = machine.receive_text(start_frame(operation_id))
    assert len(actions) == 1
    [action] = actions
    assert isinstance(action, StartOperation)
    assert action.operation.id == operation_id
    assert machine.is_active(action.operation)
    return action.operation


def in_state(state: ConnectionState) -> LegacyGraphqlWsProtocol:
    machine = LegacyGraphqlWsProtocol()
    if state is ConnectionState.AWAITING_INIT:
        return machine
    if state is ConnectionState.INITIALISING:
        return initialise(machine)
    if state is ConnectionState.READY:
        return acknowledge(machine)
    machine.close(CloseCode.NORMAL, "closed for the test")
    return machine


@pytest.fixture
def machine() -> LegacyGraphqlWsProtocol:
    return LegacyGraphqlWsProtocol()


@pytest.fixture
def ready() -> LegacyGraphqlWsProtocol:
    return acknowledge(LegacyGraphqlWsProtocol())


# --- identity -----------------------------------------------------------------------------


def test_subprotocol_and_registry() -> None:
    assert LegacyGraphqlWsProtocol.subprotocol == "graphql-ws"
    assert PROTOCOL_MACHINES[GRAPHQL_WS] is LegacyGraphqlWsProtocol
    # The legacy protocol expects a `ka` right after `connection_ack`.
    assert LegacyGraphqlWsProtocol.keepalive_on_ack is True


def test_fresh_machine_awaits_init(machine: LegacyGraphqlWsProtocol) -> None:
    assert machine.state is ConnectionState.AWAITING_INIT
    assert machine.operations == {}


# --- connection_init / ack / reject -------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected_payload"),
    [
        ({"type": "connection_init"}, {}),
        ({"type": "connection_init", "payload": None}, {}),
        ({"type": "connection_init", "payload": {}}, {}),
        ({"type": "connection_init", "payload": {"authToken": "t"}}, {"authToken": "t"}),
    ],
)
def test_connection_init_runs_on_connect(
    machine: LegacyGraphqlWsProtocol, message: dict[str, Any], expected_payload: dict[str, Any]
) -> None:
    assert machine.receive_text(frame(message)) == [ConnectionInitRequested(expected_payload)]
    assert machine.state is ConnectionState.INITIALISING


@pytest.mark.parametrize("payload", ["token", 1, [], True])
def test_connection_init_payload_not_an_object_is_an_error(
    machine: LegacyGraphqlWsProtocol, payload: object
) -> None:
    actions = machine.receive_text(frame({"type": "connection_init", "payload": payload}))
    assert wire(actions) == [
        error_message(None, "Invalid message: the connection_init payload must be an object")
    ]
    assert len(actions) == 1
    # The connection stays open and can still be initialised properly.
    assert machine.state is ConnectionState.AWAITING_INIT
    initialise(machine)


def test_accept_connection_without_payload(machine: LegacyGraphqlWsProtocol) -> None:
    initialise(machine)
    actions = machine.accept_connection(None)
    assert wire(actions) == [{"type": "connection_ack"}]
    assert len(actions) == 1
    assert machine.state is ConnectionState.READY


def test_accept_connection_with_payload(machine: LegacyGraphqlWsProtocol) -> None:
    initialise(machine)
    actions = machine.accept_connection({"user": "alice"})
    assert wire(actions) == [{"type": "connection_ack", "payload": {"user": "alice"}}]
    assert machine.state is ConnectionState.READY


@pytest.mark.parametrize(
    "state", [ConnectionState.AWAITING_INIT, ConnectionState.READY, ConnectionState.CLOSED]
)
def test_accept_connection_outside_initialising_does_nothing(state: ConnectionState) -> None:
    machine = in_state(state)
    assert machine.accept_connection(None) == []
    assert machine.state is state


@pytest.mark.parametrize("state", [ConnectionState.INITIALISING, ConnectionState.READY])
def test_second_connection_init_is_a_connection_error(state: ConnectionState) -> None:
    machine = in_state(state)
    actions = machine.receive_text(frame({"type": "connection_init", "payload": {"a": 1}}))
    assert wire(actions) == [
        {"type": "connection_error", "payload": {"message": "Too many initialisation requests"}}
    ]
    assert len(actions) == 1
    # The connection stays open, in the same state.
    assert machine.state is state


def test_second_connection_init_keeps_operations_running(ready: LegacyGraphqlWsProtocol) -> None:
    operation = start(ready, "1")
    ready.receive_text(frame({"type": "connection_init"}))
    assert ready.is_active(operation)
    assert wire(ready.send_result(operation, {"data": {"ticks": 1}})) == [
        {"type": "data", "id": "1", "payload": {"data": {"ticks": 1}}}
    ]


def test_reject_connection_sends_connection_error_then_closes_4403(
    machine: LegacyGraphqlWsProtocol,
) -> None:
    initialise(machine)
    actions = machine.reject_connection(None)
    assert actions == [
        Send({"type": "connection_error", "payload": {"message": "Forbidden"}}),
        Close(4403, "Forbidden"),
    ]
    assert machine.state is ConnectionState.CLOSED
    assert machine.accept_connection(None) == []
    assert machine.reject_connection(None) == []


@pytest.mark.parametrize(
    "payload", [{"message": "Bad token"}, {"message": "x", "code": 7}, {"reason": "any shape"}]
)
def test_reject_connection_payload_is_the_connection_error_payload(
    machine: LegacyGraphqlWsProtocol, payload: dict[str, Any]
) -> None:
    initialise(machine)
    actions = machine.reject_connection(payload)
    assert wire(actions) == [{"type": "connection_error", "payload": payload}]
    assert actions[-1] == Close(4403, "Forbidden")
    assert len(actions) == 2


def test_reject_connection_with_empty_payload_says_forbidden(
    machine: LegacyGraphqlWsProtocol,
) -> None:
    initialise(machine)
    assert wire(machine.reject_connection({})) == [
        {"type": "connection_error", "payload": {"message": "Forbidden"}}
    ]


# --- init timeout ---------------------------------------------------------------------------


def test_init_timeout_closes_4408_while_awaiting_init(machine: LegacyGraphqlWsProtocol) -> None:
    assert machine.init_timeout() == [Close(4408, "Connection initialisation timeout")]
    assert machine.state is ConnectionState.CLOSED


@pytest.mark.parametrize(
    "state", [ConnectionState.INITIALISING, ConnectionState.READY, ConnectionState.CLOSED]
)
def test_init_timeout_is_ignored_after_init(state: ConnectionState) -> None:
    machine = in_state(state)
    assert machine.init_timeout() == []
    assert machine.state is state


# --- keep-alive -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (ConnectionState.AWAITING_INIT, []),
        (ConnectionState.INITIALISING, []),
        (ConnectionState.READY, [{"type": "ka"}]),
        (ConnectionState.CLOSED, []),
    ],
)
def test_keepalive_sends_ka_only_when_ready(
    state: ConnectionState, expected: list[dict[str, Any]]
) -> None:
    machine = in_state(state)
    actions = machine.keepalive()
    assert wire(actions) == expected
    assert len(actions) == len(expected)
    assert machine.state is state


def test_keepalive_repeats(ready: LegacyGraphqlWsProtocol) -> None:
    assert [wire(ready.keepalive()) for _ in range(3)] == [[{"type": "ka"}]] * 3


# --- start --------------------------------------------------------------------------------


def test_start_before_connection_init_closes_4401() -> None:
    machine = in_state(ConnectionState.AWAITING_INIT)
    actions = machine.receive_text(start_frame("1"))
    assert actions == [Close(4401, "Unauthorized")]
    assert machine.state is ConnectionState.CLOSED
    assert machine.operations == {}


def test_start_while_on_connect_runs_is_held_until_the_ack() -> None:
    # Apollo's SubscriptionClient sends its starts right behind connection_init.
    machine = in_state(ConnectionState.INITIALISING)
    assert machine.receive_text(start_frame("1")) == []
    assert machine.receive_text(start_frame("2")) == []
    assert machine.operations == {}
    actions = machine.accept_connection(None)
    assert wire(actions) == [{"type": "connection_ack"}]
    started = [action.operation.id for action in actions if isinstance(action, StartOperation)]
    assert started == ["1", "2"]
    assert set(machine.operations) == {"1", "2"}


def test_held_starts_are_dropped_when_on_connect_refuses() -> None:
    machine = in_state(ConnectionState.INITIALISING)
    machine.receive_text(start_frame("1"))
    actions = machine.reject_connection({"message": "no"})
    assert not [action for action in actions if isinstance(action, StartOperation)]
    assert machine.operations == {}


def test_stop_of_a_held_start_answers_complete_and_it_never_starts() -> None:
    machine = in_state(ConnectionState.INITIALISING)
    machine.receive_text(start_frame("1"))
    assert wire(machine.receive_text(json.dumps({"type": "stop", "id": "1"}))) == [
        {"type": "complete", "id": "1"}
    ]
    actions = machine.accept_connection(None)
    assert not [action for action in actions if isinstance(action, StartOperation)]


def test_held_starts_are_bounded_by_max_operations() -> None:
    machine = LegacyGraphqlWsProtocol(max_operations=1)
    machine.receive_text('{"type": "connection_init"}')
    assert machine.receive_text(start_frame("1")) == []
    [refused] = wire(machine.receive_text(start_frame("2")))
    assert refused["type"] == "error"
    assert refused["id"] == "2"


def test_start_starts_an_operation(ready: LegacyGraphqlWsProtocol) -> None:
    actions = ready.receive_text(start_frame("1"))
    [action] = actions
    assert isinstance(action, StartOperation)
    assert action.operation.id == "1"
    assert action.operation.payload == {
        "query": QUERY,
        "variables": None,
        "operationName": None,
        "extensions": None,
    }
    assert ready.operations == {"1": action.operation}


def test_start_keeps_every_payload_field(ready: LegacyGraphqlWsProtocol) -> None:
    payload = {
        "query": "subscription S($n: Int) { ticks(n: $n) }",
        "variables": {"n": 2},
        "operationName": "S",
        "extensions": {"trace": True},
    }
    [action] = ready.receive_text(start_frame("1", payload))
    assert isinstance(action, StartOperation)
    assert action.operation.payload == payload


def test_start_with_active_id_replaces_the_operation(ready: LegacyGraphqlWsProtocol) -> None:
    old = start(ready, "1")
    actions = ready.receive_text(start_frame("1", {"query": "subscription { other }"}))
    assert len(actions) == 2
    stop, new_start = actions
    assert isinstance(stop, StopOperation)
    assert stop.operation is old
    assert isinstance(new_start, StartOperation)
    new = new_start.operation
    assert new is not old
    assert new.id == "1"
    assert new.payload["query"] == "subscription { other }"
    assert ready.operations == {"1": new}
    assert not ready.is_active(old)
    # No complete is sent for the replaced operation, and its late results are dropped.
    assert wire(actions) == []
    assert ready.send_result(old, {"data": {"ticks": "old"}}) == []
    assert ready.complete(old) == []
    assert ready.send_errors(old, [{"message": "old"}]) == []
    assert wire(ready.send_result(new, {"data": {"other": 1}})) == [
        {"type": "data", "id": "1", "payload": {"data": {"other": 1}}}
    ]


BAD_ID = "Invalid message: 'id' must be a non-empty string"


@pytest.mark.parametrize(
    ("operation_id", "reason"),
    [
        pytest.param(None, BAD_ID, id="null"),
        pytest.param("", BAD_ID, id="empty"),
        pytest.param(1, BAD_ID, id="int"),
        pytest.param(["1"], BAD_ID, id="list"),
        pytest.param(
            "i" * (MAX_OPERATION_ID_LENGTH + 1), "Invalid message: 'id' is too long", id="too-long"
        ),
    ],
)
def test_start_with_malformed_id_is_an_error(
    ready: LegacyGraphqlWsProtocol, operation_id: object, reason: str
) -> None:
    actions = ready.receive_text(start_frame(operation_id))
    assert wire(actions) == [error_message(None, reason)]
    assert len(actions) == 1
    assert ready.operations == {}
    assert ready.state is ConnectionState.READY


def test_start_without_id_is_an_error(ready: LegacyGraphqlWsProtocol) -> None:
    actions = ready.receive_text(frame({"type": "start", "payload": {"query": QUERY}}))
    assert wire(actions) == [error_message(None, BAD_ID)]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(
            "{a}", "Invalid message: the operation payload must be an object", id="payload-str"
        ),
        pytest.param([], "Invalid message: the operation payload must be an object", id="list"),
        pytest.param({}, "Invalid message: 'payload.query' must be a string", id="no-query"),
        pytest.param({"query": 1}, "Invalid message: 'payload.query' must be a string", id="q-int"),
        pytest.param(
            {"query": "{a}", "variables": []},
            "Invalid message: 'payload.variables' must be an object",
            id="variables",
        ),
        pytest.param(
            {"query": "{a}", "operationName": 3},
            "Invalid message: 'payload.operationName' must be a string",
            id="operationName",
        ),
        pytest.param(
            {"query": "{a}", "extensions": "x"},
            "Invalid message: 'payload.extensions' must be an object",
            id="extensions",
        ),
    ],
)
def test_start_with_malformed_payload_is_an_error_for_that_id(
    ready: LegacyGraphqlWsProtocol, payload: object, reason: str
) -> None:
    actions = ready.receive_text(start_frame("7", payload))
    assert wire(actions) == [error_message("7", reason)]
    assert len(actions) == 1
    assert ready.operations == {}
    assert ready.state is ConnectionState.READY


def test_start_with_missing_payload_is_an_error_for_that_id(ready: LegacyGraphqlWsProtocol) -> None:
    actions = ready.receive_text(frame({"type": "start", "id": "7"}))
    assert wire(actions) == [
        error_message("7", "Invalid message: the operation payload must be an object")
    ]


def test_malformed_start_with_active_id_leaves_the_operation_running(
    ready: LegacyGraphqlWsProtocol,
) -> None:
    operation = start(ready, "1")
    actions = ready.receive_text(start_frame("1", {"query": None}))
    assert wire(actions) == [
        error_message("1", "Invalid message: 'payload.query' must be a string")
    ]
    assert ready.is_active(operation)


# --- max_operations -----------------------------------------------------------------------


def test_max_operations_rejects_with_an_error_for_that_id() -> None:
    machine = acknowledge(LegacyGraphqlWsProtocol(max_operations=2))
    first = start(machine, "1")
    second = start(machine, "2")
    actions = machine.receive_text(start_frame("3"))
    assert wire(actions) == [error_message("3", TOO_MANY_OPERATIONS)]
    assert len(actions) == 1
    assert machine.operations == {"1": first, "2": second}
    assert machine.state is ConnectionState.READY
    # The rejected id was never registered.
    assert machine.receive_text(frame({"type": "stop", "id": "3"})) == []
    assert machine.receive_text(frame({"type": "stop", "id": "1"})) == [
        StopOperation(first),
        Send({"type": "complete", "id": "1"}),
    ]
    start(machine, "3")


def test_max_operations_allows_replacing_an_active_id() -> None:
    # Replacing frees the old slot first, so a full connection can still restart an id.
    machine = acknowledge(LegacyGraphqlWsProtocol(max_operations=1))
    old = start(machine, "1")
    actions = machine.receive_text(start_frame("1"))
    assert len(actions) == 2
    assert actions[0] == StopOperation(old)
    assert isinstance(actions[1], StartOperation)
    assert machine.operations == {"1": actions[1].operation}


def test_no_max_operations() -> None:
    machine = acknowledge(LegacyGraphqlWsProtocol(max_operations=None))
    for number in range(150):
        start(machine, str(number))
    assert len(machine.operations) == 150


# --- stop ---------------------------------------------------------------------------------


def test_stop_stops_the_operation_and_answers_complete(ready: LegacyGraphqlWsProtocol) -> None:
    operation = start(ready, "1")
    actions = ready.receive_text(frame({"type": "stop", "id": "1"}))
    assert actions == [StopOperation(operation), Send({"type": "complete", "id": "1"})]
    stop = actions[0]
    assert isinstance(stop, StopOperation)
    assert stop.operation is operation
    assert not ready.is_active(operation)
    # The server's own complete for it afterwards is not sent twice.
    assert ready.complete(operation) == []
    assert ready.send_result(operation, {"data": {"late": True}}) == []


@pytest.mark.parametrize("state", LIVE_STATES)
def test_stop_of_unknown_id_does_nothing(state: ConnectionState) -> None:
    machine = in_state(state)
    assert machine.receive_text(frame({"type": "stop", "id": "nope"})) == []
    assert machine.state is state


def test_stop_twice(ready: LegacyGraphqlWsProtocol) -> None:
    start(ready, "1")
    assert len(ready.receive_text(frame({"type": "stop", "id": "1"}))) == 2
    assert ready.receive_text(frame({"type": "stop", "id": "1"})) == []


def test_stop_then_restart_same_id(ready: LegacyGraphqlWsProtocol) -> None:
    old = start(ready, "1")
    ready.receive_text(frame({"type": "stop", "id": "1"}))
    new = start(ready, "1")
    assert new is not old
    assert ready.send_result(old, {"data": {"v": "old"}}) == []
    assert wire(ready.send_result(new, {"data": {"v": "new"}})) == [
        {"type": "data", "id": "1", "payload": {"data": {"v": "new"}}}
    ]


@pytest.mark.parametrize("message", [{"type": "stop"}, {"type": "stop", "id": 1}])
def test_stop_with_malformed_id_is_an_error(
    ready: LegacyGraphqlWsProtocol, message: dict[str, Any]
) -> None:
    assert wire(ready.receive_text(frame(message))) == [error_message(None, BAD_ID)]
    assert ready.state is ConnectionState.READY


# --- connection_terminate -----------------------------------------------------------------


@pytest.mark.parametrize("state", LIVE_STATES)
def test_connection_terminate_closes_1000(state: ConnectionState) -> None:
    machine = in_state(state)
    actions = machine.receive_text(frame({"type": "connection_terminate"}))
    assert actions == [Close(1000, "Connection terminated by the client")]
    assert machine.state is ConnectionState.CLOSED


def test_connection_terminate_stops_operations_first(ready: LegacyGraphqlWsProtocol) -> None:
    first = start(ready, "1")
    second = start(ready, "2")
    actions = ready.receive_text(frame({"type": "connection_terminate"}))
    assert actions == [
        StopOperation(first),
        StopOperation(second),
        Close(1000, "Connection terminated by the client"),
    ]
    assert ready.operations == {}


# --- bad messages: errors, no close -------------------------------------------------------


@pytest.mark.parametrize(
    "message_type",
    [
        "unknown",
        "subscribe",
        "complete",
        "ping",
        "pong",
        "connection_ack",
        "connection_error",
        "data",
        "error",
        "ka",
        "START",
        "",
    ],
)
@pytest.mark.parametrize("state", LIVE_STATES)
def test_unknown_type_is_an_error_with_the_id(state: ConnectionState, message_type: str) -> None:
    machine = in_state(state)
    actions = machine.receive_text(frame({"type": message_type, "id": "5"}))
    assert wire(actions) == [
        error_message("5", f"Unexpected message of type {message_type!r} received")
    ]
    assert len(actions) == 1
    assert machine.state is state


@pytest.mark.parametrize(
    ("message", "expected_id"),
    [
        ({"type": "unknown"}, None),
        ({"type": "unknown", "id": None}, None),
        ({"type": "unknown", "id": 5}, None),
        ({"type": "unknown", "id": ["5"]}, None),
        ({"type": "unknown", "id": "abc"}, "abc"),
    ],
)
def test_unknown_type_error_carries_the_id_only_when_it_is_a_string(
    ready: LegacyGraphqlWsProtocol, message: dict[str, Any], expected_id: str | None
) -> None:
    assert wire(ready.receive_text(frame(message))) == [
        error_message(expected_id, "Unexpected message of type 'unknown' received")
    ]


def test_unknown_type_keeps_operations_running(ready: LegacyGraphqlWsProtocol) -> None:
    operation = start(ready, "1")
    assert not any(
        isinstance(action, StopOperation | Close)
        for action in ready.receive_text(frame({"type": "bogus", "id": "1"}))
    )
    assert ready.is_active(operation)


def test_unknown_type_reason_is_bounded(ready: LegacyGraphqlWsProtocol) -> None:
    [message] = wire(ready.receive_text(frame({"type": "x" * 10_000})))
    assert message["payload"]["message"] == f"Unexpected message of type {'x' * 64!r} received"


NOT_JSON = "Invalid message: not valid JSON"
NOT_OBJECT = "Invalid message: expected a JSON object"
NO_TYPE = "Invalid message: missing or non-string 'type'"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", NOT_JSON, id="empty"),
        pytest.param("not json", NOT_JSON, id="garbage"),
        pytest.param('{"type": "start"', NOT_JSON, id="truncated"),
        pytest.param("[" * 100_000, NOT_JSON, id="deep-arrays"),
        pytest.param('{"a":' * 100_000, NOT_JSON, id="deep-objects"),
        pytest.param("[]", NOT_OBJECT, id="array"),
        pytest.param("null", NOT_OBJECT, id="null"),
        pytest.param('"start"', NOT_OBJECT, id="string"),
        pytest.param("{}", NO_TYPE, id="no-type"),
        pytest.param('{"type": 3, "id": "1"}', NO_TYPE, id="type-int"),
    ],
)
@pytest.mark.parametrize("state", LIVE_STATES)
def test_undecodable_frame_is_a_connection_error(
    state: ConnectionState, text: str, reason: str
) -> None:
    machine = in_state(state)
    actions = machine.receive_text(text)
    assert wire(actions) == [{"type": "connection_error", "payload": {"message": reason}}]
    assert len(actions) == 1
    assert machine.state is state


def test_undecodable_frame_keeps_operations_running(ready: LegacyGraphqlWsProtocol) -> None:
    operation = start(ready, "1")
    ready.receive_text("{{{")
    ready.receive_text("[" * 100_000)
    assert ready.is_active(operation)
    assert ready.state is ConnectionState.READY


@pytest.mark.parametrize("state", LIVE_STATES)
@pytest.mark.parametrize("data", [b"", b'{"type": "connection_init"}'])
def test_binary_frame_is_an_error(state: ConnectionState, data: bytes) -> None:
    machine = in_state(state)
    actions = machine.receive_bytes(data)
    assert wire(actions) == [error_message(None, "Binary frames are not supported")]
    assert len(actions) == 1
    assert machine.state is state


@pytest.mark.parametrize("state", LIVE_STATES)
def test_too_large_message_is_an_error(state: ConnectionState) -> None:
    machine = in_state(state)
    machine.max_message_size = 100
    actions = machine.receive_text(start_frame("1", {"query": "{" + "a " * 100 + "}"}))
    assert wire(actions) == [error_message(None, "Message too large")]
    assert len(actions) == 1
    assert machine.state is state
    assert machine.operations == {}


def test_message_size_limit_is_inclusive_and_counted_in_bytes(
    ready: LegacyGraphqlWsProtocol,
) -> None:
    text = start_frame("1", {"query": "{a}"})
    ready.max_message_size = len(text.encode("utf-8"))
    start_action = ready.receive_text(text)
    assert isinstance(start_action[0], StartOperation)
    multi_byte = '{"type": "start", "id": "2", "payload": {"query": "{é}"}}'
    ready.max_message_size = len(multi_byte)  # one byte short: "é" is two bytes
    assert wire(ready.receive_text(multi_byte)) == [error_message(None, "Message too large")]


def test_default_max_message_size(machine: LegacyGraphqlWsProtocol) -> None:
    assert machine.max_message_size == 1024 * 1024
    assert wire(machine.receive_text("x" * (1024 * 1024 + 1))) == [
        error_message(None, "Message too large")
    ]


# --- results from the server --------------------------------------------------------------


def test_results_are_data_messages(ready: LegacyGraphqlWsProtocol) -> None:
    operation = start(ready, "1")
    results: list[ExecutionResultPayload] = [
        {"data": {"ticks": 1}},
        {"data": None, "errors": [{"message": "resolver failed", "path": ["ticks"]}]},
    ]
    sent = [message for result in results for message in wire(ready.send_result(operation, result))]
    assert sent == [{"type": "data", "id": "1", "payload": result} for result in results]
    assert ready.is_active(operation)


def test_server_complete_sends_complete_once(ready: LegacyGraphqlWsProtocol) -> None:
    operation = start(ready, "q")
    assert wire(ready.send_result(operation, {"data": {"q": 1}})) == [
        {"type": "data", "id": "q", "payload": {"data": {"q": 1}}}
    ]
    assert ready.complete(operation) == [Send({"type": "complete", "id": "q"})]
    assert ready.complete(operation) == []
    assert not ready.is_active(operation)
    # A client stop racing with our complete is a no-op.
    assert ready.receive_text(frame({"type": "stop", "id": "q"})) == []


def test_send_errors_is_one_error_with_all_errors(ready: LegacyGraphqlWsProtocol) -> None:
    operation = start(ready, "1")
    errors: list[FormattedError] = [
        {
            "message": "Cannot query field 'x'.",
            "locations": [{"line": 1, "column": 3}],
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
        },
        {"message": "Second problem"},
    ]
    actions = ready.send_errors(operation, errors)
    assert wire(actions) == [
        {
            "type": "error",
            "id": "1",
            "payload": {
                "message": "Cannot query field 'x'.",
                "locations": [{"line": 1, "column": 3}],
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
                "errors": errors,
            },
        }
    ]
    assert len(actions) == 1
    # The error ends the operation: no complete, no more results, id free again.
    assert not ready.is_active(operation)
    assert ready.complete(operation) == []
    assert ready.send_result(operation, {"data": None}) == []
    start(ready, "1")


def test_send_errors_without_errors_still_has_a_message(ready: LegacyGraphqlWsProtocol) -> None:
    operation = start(ready, "1")
    assert wire(ready.send_errors(operation, [])) == [
        {"type": "error", "id": "1", "payload": {"message": "Unknown error", "errors": []}}
    ]


def test_messages_are_json_serializable(ready: LegacyGraphqlWsProtocol) -> None:
    operation = start(ready, "1")
    actions = [
        *ready.keepalive(),
        *ready.send_result(operation, {"data": {"a": [1, None]}}),
        *ready.send_errors(operation, [{"message": "x"}]),
        *ready.receive_text("bad json"),
        *ready.receive_bytes(b"x"),
    ]
    for message in wire(actions):
        assert json.loads(json.dumps(message)) == message


# --- close --------------------------------------------------------------------------------


def test_close_stops_all_operations_before_closing(ready: LegacyGraphqlWsProtocol) -> None:
    first = start(ready, "1")
    second = start(ready, "2")
    actions = ready.close(1001, "Going away")
    assert actions == [StopOperation(first), StopOperation(second), Close(1001, "Going away")]
    assert ready.operations == {}
    assert ready.state is ConnectionState.CLOSED


def test_close_reason_is_truncated(machine: LegacyGraphqlWsProtocol) -> None:
    [close] = machine.close(4500, "ü" * 100)
    assert isinstance(close, Close)
    assert close.reason == "ü" * 60 + "..."
    assert len(close.reason.encode("utf-8")) <= MAX_CLOSE_REASON_BYTES


ANY_CALL: list[tuple[str, Callable[[LegacyGraphqlWsProtocol, Operation], list[Action]]]] = [
    ("connection_init", lambda m, op: m.receive_text(frame({"type": "connection_init"}))),
    ("start", lambda m, op: m.receive_text(start_frame("9"))),
    ("start-same-id", lambda m, op: m.receive_text(start_frame(op.id))),
    ("stop", lambda m, op: m.receive_text(frame({"type": "stop", "id": op.id}))),
    ("terminate", lambda m, op: m.receive_text(frame({"type": "connection_terminate"}))),
    ("invalid-json", lambda m, op: m.receive_text("{{{")),
    ("unknown-type", lambda m, op: m.receive_text(frame({"type": "x", "id": "1"}))),
    ("too-large", lambda m, op: m.receive_text("x" * (2 * 1024 * 1024))),
    ("bytes", lambda m, op: m.receive_bytes(b"data")),
    ("accept", lambda m, op: m.accept_connection(None)),
    ("reject", lambda m, op: m.reject_connection(None)),
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
        pytest.param(
            lambda m: m.receive_text(frame({"type": "connection_terminate"})), id="terminate"
        ),
        pytest.param(lambda m: m.reject_connection(None), id="reject"),
    ],
)
def test_everything_after_close_returns_nothing(
    how: Callable[[LegacyGraphqlWsProtocol], list[Action]],
    call: Callable[[LegacyGraphqlWsProtocol, Operation], list[Action]],
) -> None:
    machine = acknowledge(LegacyGraphqlWsProtocol())
    operation = start(machine, "1")
    actions = how(machine)
    assert StopOperation(operation) in actions
    assert isinstance(actions[-1], Close)
    assert machine.state is ConnectionState.CLOSED
    assert call(machine, operation) == []
    assert machine.state is ConnectionState.CLOSED
    assert machine.operations == {}
