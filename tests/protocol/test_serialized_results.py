"""A result serialized once and spliced into each operation's message is exactly the
message the machine would have built from the dict."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from channels_graphql_typed._protocol import (
    GraphqlTransportWsProtocol,
    LegacyGraphqlWsProtocol,
    ProtocolMachine,
    Send,
    SendText,
    StartOperation,
)

if TYPE_CHECKING:
    from channels_graphql_typed._protocol.messages import ExecutionResultPayload


def started(
    machine_class: type[ProtocolMachine], operation_id: str
) -> tuple[ProtocolMachine, StartOperation]:
    machine = machine_class()
    machine.receive_text('{"type": "connection_init"}')
    machine.accept_connection(None)
    kind = "subscribe" if machine_class is GraphqlTransportWsProtocol else "start"
    (start,) = machine.receive_text(
        json.dumps({"type": kind, "id": operation_id, "payload": {"query": "{ a }"}})
    )
    assert isinstance(start, StartOperation)
    return machine, start


@pytest.mark.parametrize("machine_class", [GraphqlTransportWsProtocol, LegacyGraphqlWsProtocol])
@pytest.mark.parametrize("operation_id", ["1", 'quote " and \\ backslash', "ünïcode"])
def test_serialized_result_equals_the_built_message(
    machine_class: type[ProtocolMachine], operation_id: str
) -> None:
    machine, start = started(machine_class, operation_id)
    payload: ExecutionResultPayload = {"data": {"a": [1, "two", None]}}
    (built,) = machine.send_result(start.operation, payload)
    (spliced,) = machine.send_serialized_result(start.operation, json.dumps(payload))
    assert isinstance(built, Send)
    assert isinstance(spliced, SendText)
    assert json.loads(spliced.text) == built.message


@pytest.mark.parametrize("machine_class", [GraphqlTransportWsProtocol, LegacyGraphqlWsProtocol])
def test_serialized_result_of_an_ended_operation_is_dropped(
    machine_class: type[ProtocolMachine],
) -> None:
    machine, start = started(machine_class, "1")
    machine.complete(start.operation)
    assert machine.send_serialized_result(start.operation, '{"data": null}') == []
