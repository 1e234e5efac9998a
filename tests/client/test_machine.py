"""The sans-IO client machine, without an event loop: frames in, events out; and wired
back to back with the server's protocol machines."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, GraphqlWsProtocolError
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
    ConnectionInitRequested,
    Send,
    StartOperation,
)

if TYPE_CHECKING:
    from channels_graphql_typed._client.machine import ClientEvent
    from channels_graphql_typed._protocol import Action, Operation
    from channels_graphql_typed._protocol.messages import FormattedError, PongMessage


def frame(message: dict[str, Any]) -> str:
    return json.dumps(message)


def ready(subprotocol: str) -> ClientProtocolMachine:
    machine = ClientProtocolMachine(subprotocol)
    machine.initialise(None)
    assert machine.receive_text(frame({"type": "connection_ack"})) == [ConnectionAcknowledged(None)]
    assert machine.state is ClientState.READY
    return machine


def result_type(subprotocol: str) -> str:
    return "next" if subprotocol == GRAPHQL_TRANSPORT_WS else "data"


# --- handshake -------------------------------------------------------------------------------


def test_unknown_subprotocol_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown subprotocol"):
        ClientProtocolMachine("graphql-whatever")


def test_connection_init_carries_the_params(subprotocol: str) -> None:
    machine = ClientProtocolMachine(subprotocol)
    assert machine.initialise({"token": "t"}) == {
        "type": "connection_init",
        "payload": {"token": "t"},
    }
    assert machine.state is ClientState.AWAITING_ACK
    with pytest.raises(RuntimeError, match="already sent"):
        machine.initialise(None)
    ack = frame({"type": "connection_ack", "payload": {"welcome": True}})
    assert machine.receive_text(ack) == [ConnectionAcknowledged({"welcome": True})]


def test_operations_need_the_acknowledgement(subprotocol: str) -> None:
    machine = ClientProtocolMachine(subprotocol)
    machine.initialise(None)
    with pytest.raises(RuntimeError, match="awaiting_ack"):
        machine.start({"query": "{ hello }"})


def test_connection_error_is_reported_on_legacy() -> None:
    machine = ClientProtocolMachine(GRAPHQL_WS)
    machine.initialise(None)
    error = frame({"type": "connection_error", "payload": {"message": "Bad token"}})
    assert machine.receive_text(error) == [ConnectionErrorReceived({"message": "Bad token"})]
    assert machine.receive_text(frame({"type": "connection_error"})) == [
        ConnectionErrorReceived({})
    ]


# --- operations --------------------------------------------------------------------------------


def test_start_and_stop_use_the_subprotocol_messages(subprotocol: str) -> None:
    machine = ready(subprotocol)
    first = machine.start({"query": "{ hello }"})
    second = machine.start({"query": "{ hello }"})
    assert first["id"] != second["id"]  # ids are never reused
    assert first == {
        "type": "subscribe" if subprotocol == GRAPHQL_TRANSPORT_WS else "start",
        "id": first["id"],
        "payload": {"query": "{ hello }"},
    }
    assert machine.active_operations == {first["id"], second["id"]}
    assert machine.stop(first["id"]) == {
        "type": "complete" if subprotocol == GRAPHQL_TRANSPORT_WS else "stop",
        "id": first["id"],
    }
    assert machine.stop(first["id"]) is None  # stopped already
    assert machine.active_operations == {second["id"]}


def test_results_then_complete_end_the_operation(subprotocol: str) -> None:
    machine = ready(subprotocol)
    id_ = machine.start({"query": "subscription { count(to: 2) }"})["id"]
    for number in (1, 2):
        payload = {"data": {"count": number}}
        assert machine.receive_text(
            frame({"type": result_type(subprotocol), "id": id_, "payload": payload})
        ) == [ResultReceived(id_, {"data": {"count": number}})]
    assert machine.receive_text(frame({"type": "complete", "id": id_})) == [OperationCompleted(id_)]
    assert not machine.is_active(id_)
    assert machine.stop(id_) is None


def test_messages_of_a_stopped_operation_are_dropped(subprotocol: str) -> None:
    machine = ready(subprotocol)
    id_ = machine.start({"query": "subscription { forever }"})["id"]
    machine.stop(id_)
    late = frame({"type": result_type(subprotocol), "id": id_, "payload": {"data": None}})
    assert machine.receive_text(late) == []
    assert machine.receive_text(frame({"type": "complete", "id": id_})) == []
    assert machine.receive_text(frame({"type": "complete", "id": "unknown"})) == []


def test_transport_ws_error_ends_the_operation() -> None:
    machine = ready(GRAPHQL_TRANSPORT_WS)
    id_ = machine.start({"query": "{ nope }"})["id"]
    errors: list[FormattedError] = [{"message": "Cannot query field 'nope'"}]
    message = frame({"type": "error", "id": id_, "payload": errors})
    assert machine.receive_text(message) == [ErrorsReceived(id_, errors)]
    assert not machine.is_active(id_)  # no complete follows, and none is needed


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        # This library's server: the first error plus all of them under "errors".
        (
            {"message": "a", "errors": [{"message": "a"}, {"message": "b"}]},
            [{"message": "a"}, {"message": "b"}],
        ),
        # The spec (and Strawberry): one error object.
        ({"message": "a", "locations": [{"line": 1, "column": 3}]}, None),
        # Some servers: a list.
        ([{"message": "a"}, {"message": "b"}], [{"message": "a"}, {"message": "b"}]),
    ],
)
def test_legacy_error_payload_shapes(payload: Any, errors: Any) -> None:
    machine = ready(GRAPHQL_WS)
    id_ = machine.start({"query": "{ nope }"})["id"]
    events = machine.receive_text(frame({"type": "error", "id": id_, "payload": payload}))
    assert events == [ErrorsReceived(id_, errors or [payload])]
    assert not machine.is_active(id_)


def test_legacy_error_without_id_is_about_the_connection() -> None:
    machine = ready(GRAPHQL_WS)
    message = frame({"type": "error", "id": None, "payload": {"message": "Bad message"}})
    assert machine.receive_text(message) == [
        ConnectionErrorReceived({"message": "Bad message", "errors": [{"message": "Bad message"}]})
    ]


# --- keep-alives -----------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [None, {"at": 1}])
def test_ping_is_answered_with_pong_echoing_the_payload(payload: dict[str, Any] | None) -> None:
    machine = ready(GRAPHQL_TRANSPORT_WS)
    ping: dict[str, Any] = {"type": "ping"}
    pong: PongMessage = {"type": "pong"}
    if payload is not None:
        ping["payload"] = pong["payload"] = payload
    assert machine.receive_text(frame(ping)) == [KeepAliveReceived(), SendMessage(pong)]


def test_pong_and_client_ping() -> None:
    machine = ready(GRAPHQL_TRANSPORT_WS)
    assert machine.ping({"n": 1}) == {"type": "ping", "payload": {"n": 1}}
    assert machine.receive_text(frame({"type": "pong", "payload": {"n": 1}})) == [
        PongReceived({"n": 1})
    ]
    legacy = ready(GRAPHQL_WS)
    with pytest.raises(ValueError, match="no client ping"):
        legacy.ping()


def test_legacy_keepalive() -> None:
    assert ready(GRAPHQL_WS).receive_text(frame({"type": "ka"})) == [KeepAliveReceived()]


# --- the end ---------------------------------------------------------------------------------


def test_terminate_and_closed_machine_ignores_everything(subprotocol: str) -> None:
    machine = ready(subprotocol)
    id_ = machine.start({"query": "subscription { forever }"})["id"]
    expected = None if subprotocol == GRAPHQL_TRANSPORT_WS else {"type": "connection_terminate"}
    assert machine.terminate() == expected
    assert machine.terminate() is None
    assert machine.state is ClientState.CLOSED
    assert machine.active_operations == frozenset()
    assert machine.stop(id_) is None
    assert machine.receive_text("not even JSON") == []


# --- invalid server messages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"type": 1}', "'type'"),
        ('{"type": "start", "id": "1", "payload": {"query": "{ a }"}}', "unexpected type"),
        ('{"type": "ka"}', "unexpected type 'ka' on graphql-transport-ws"),
        ('{"type": "next", "payload": {"data": null}}', "without a string 'id'"),
        ('{"type": "next", "id": "1"}', "without an object 'payload'"),
        ('{"type": "next", "id": "1", "payload": {"data": [1]}}', "'payload.data'"),
        ('{"type": "next", "id": "1", "payload": {"errors": [{}]}}', "'payload.errors'"),
        ('{"type": "next", "id": "1", "payload": {"extensions": 1}}', "'payload.extensions'"),
        ('{"type": "error", "id": "1", "payload": {"message": "x"}}', "list of errors"),
        ('{"type": "ping", "payload": []}', "not an object"),
        ('{"type": "connection_ack"}', "without a pending connection_init"),
    ],
)
def test_invalid_server_messages_raise_protocol_errors(text: str, reason: str) -> None:
    machine = ready(GRAPHQL_TRANSPORT_WS)
    machine.start({"query": "{ hello }"})
    with pytest.raises(GraphqlWsProtocolError, match=reason):
        machine.receive_text(text)


def test_legacy_machine_refuses_transport_ws_messages() -> None:
    with pytest.raises(GraphqlWsProtocolError, match="unexpected type 'next' on graphql-ws"):
        ready(GRAPHQL_WS).receive_text(frame({"type": "next", "id": "1", "payload": {}}))


# --- back to back with the server machine ---------------------------------------------------------


def test_client_and_server_machines_back_to_back(subprotocol: str) -> None:
    """The client machine's messages driven through the server's machine and back."""
    server = PROTOCOL_MACHINES[subprotocol]()
    client = ClientProtocolMachine(subprotocol)
    started: list[Operation] = []

    def to_server(message: Any) -> list[ClientEvent]:
        """Deliver a client message; deliver the server's answers back; run hooks."""
        events: list[ClientEvent] = []
        pending: list[Action] = server.receive_text(json.dumps(message))
        while pending:
            action = pending.pop(0)
            match action:
                case Send(reply):
                    events += client.receive_text(json.dumps(reply))
                case ConnectionInitRequested(payload):
                    pending += server.accept_connection({"params": payload})
                case StartOperation(operation):
                    started.append(operation)
        return events

    assert to_server(client.initialise({"token": "t"})) == [
        ConnectionAcknowledged({"params": {"token": "t"}})
    ]
    start = client.start({"query": "{ hello }"})
    assert to_server(start) == []
    (operation,) = started
    assert operation.id == start["id"]
    assert operation.payload["query"] == "{ hello }"
    answers: list[ClientEvent] = []
    for action in [
        *server.send_result(operation, {"data": {"hello": "hi"}}),
        *server.complete(operation),
    ]:
        assert isinstance(action, Send)
        answers += client.receive_text(json.dumps(action.message))
    id_ = start["id"]
    assert answers == [ResultReceived(id_, {"data": {"hello": "hi"}}), OperationCompleted(id_)]
    assert client.active_operations == frozenset()
    assert server.operations == {}
