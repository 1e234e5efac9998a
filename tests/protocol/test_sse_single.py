"""The sans-IO side of graphql-sse's single connection mode: tokens, requests, and the
machine of one event stream, without an event loop."""

from __future__ import annotations

import pytest
from graphql import OperationType

from channels_graphql_typed._protocol.common import (
    AnswerSubmission,
    Failure,
    SendChunk,
    StartOperation,
    StartStream,
    StopOperation,
)
from channels_graphql_typed._protocol.http import BadRequest
from channels_graphql_typed._protocol.sse_single import (
    DuplicateOperation,
    EventStreamProtocol,
    EventStreamToken,
    RequestKind,
    StreamState,
    check_reserve,
    classify,
    read_stop,
    read_submission,
    read_token,
)

STREAM = [(b"accept", b"text/event-stream")]
TOKEN = b"x-graphql-event-stream-token"


def test_a_token_names_its_channel_and_keeps_its_secret() -> None:
    token = EventStreamToken.new("specific.abc!def")
    text = str(token)
    assert text.startswith("specific.abc!def~")
    assert token.secret not in repr(token)
    parsed = EventStreamToken.parse(text)
    assert parsed == token
    assert parsed.opens(token.secret)
    assert not parsed.opens(EventStreamToken.new("specific.abc!def").secret)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nonsense",
        "a~b~c",
        "chan nel~0123456789abcdef~" + "A" * 43,
        "channel~0123456789ABCDEF~" + "A" * 43,
        "channel~0123456789abcdef~" + "A" * 42,
        "channel~0123456789abcdef~" + "A" * 43 + "~more",
        "x" * 300,
    ],
)
def test_malformed_tokens_are_400(text: str) -> None:
    with pytest.raises(BadRequest) as raised:
        EventStreamToken.parse(text)
    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("method", "headers", "query", "kind"),
    [
        ("PUT", [], b"", RequestKind.RESERVE),
        ("DELETE", [], b"operationId=x", RequestKind.STOP),
        ("GET", STREAM, b"token=t", RequestKind.OPEN),
        ("GET", [*STREAM, (TOKEN, b"t")], b"", RequestKind.OPEN),
        ("GET", [(TOKEN, b"t")], b"query=%7Bhello%7D", RequestKind.SUBMIT),
        ("POST", [(TOKEN, b"t")], b"", RequestKind.SUBMIT),
        ("POST", STREAM, b"", None),  # distinct connections mode
        ("GET", [], b"query=%7Bhello%7D", None),  # GraphQL over HTTP
        ("PATCH", [(TOKEN, b"t")], b"", None),
    ],
)
def test_classify(
    method: str, headers: list[tuple[bytes, bytes]], query: bytes, kind: RequestKind | None
) -> None:
    assert classify(method, headers, query) is kind


def test_reading_requests() -> None:
    check_reserve([])
    check_reserve([(b"accept", b"text/plain")])
    check_reserve([(b"accept", b"text/html, */*;q=0.1")])
    with pytest.raises(BadRequest, match="text/plain"):
        check_reserve([(b"accept", b"application/json")])
    assert read_stop(b"operationId=abc") == "abc"
    for query in (b"", b"operationId=", b"operationId=" + b"x" * 2000):
        with pytest.raises(BadRequest):
            read_stop(query)
    with pytest.raises(BadRequest, match="missing"):
        read_token([], b"")
    body = b'{"query": "{ hello }", "extensions": {"operationId": "one"}}'
    assert read_submission("POST", body, b"") == (
        "one",
        {
            "query": "{ hello }",
            "variables": None,
            "operationName": None,
            "extensions": {"operationId": "one"},
        },
    )
    for bad in (
        b'{"query": "{ hello }"}',
        b'{"query": "{ hello }", "extensions": {"operationId": 1}}',
    ):
        with pytest.raises(BadRequest, match="Operation ID is missing"):
            read_submission("POST", bad, b"")


def test_the_machine_answers_each_submission_once() -> None:
    machine = EventStreamProtocol()
    [start] = machine.submit("sub", {"query": "subscription { x }"}, "POST")
    assert isinstance(start, StartOperation)
    operation = start.operation
    with pytest.raises(DuplicateOperation):
        machine.submit("sub", {"query": "{ x }"}, "POST")
    # Events before the stream is open are the shell's to keep.
    assert machine.refusal(operation, OperationType.SUBSCRIPTION) is None
    [answer] = machine.subscribed(operation)
    assert isinstance(answer, AnswerSubmission)
    assert (answer.operation, answer.status, answer.body) == (operation, 202, b"")
    assert machine.subscribed(operation) == []  # answered once
    [opened] = machine.open()
    assert isinstance(opened, StartStream)
    assert machine.open() == []
    assert machine.state is StreamState.OPEN
    assert machine.send_serialized_result(operation, '{"data":{"x":1}}') == [
        SendChunk(b'event: next\ndata: {"id":"sub","payload":{"data":{"x":1}}}\n\n')
    ]
    assert machine.complete(operation) == [SendChunk(b'event: complete\ndata: {"id":"sub"}\n\n')]
    assert machine.send_result(operation, {"data": None}) == []  # ended
    # The ID is free again.
    [start] = machine.submit("sub", {"query": "{ x }"}, "GET")
    assert isinstance(start, StartOperation)
    [refusal] = machine.refusal(start.operation, OperationType.MUTATION) or []
    assert isinstance(refusal, AnswerSubmission)
    assert (refusal.status, ("allow", "POST") in refusal.headers) == (405, True)
    assert machine.operations == {}


@pytest.mark.parametrize(
    ("failure", "status"), [(Failure.INVALID, 400), (Failure.REFUSED, 403), (Failure.INTERNAL, 500)]
)
def test_errors_before_the_answer_answer_the_request(failure: Failure, status: int) -> None:
    machine = EventStreamProtocol()
    [start] = machine.submit("q", {"query": "{ x }"}, "POST")
    assert isinstance(start, StartOperation)
    [answer] = machine.send_errors(start.operation, [{"message": "no"}], failure)
    assert isinstance(answer, AnswerSubmission)
    assert (answer.status, answer.body) == (status, b'{"errors":[{"message":"no"}]}')
    assert machine.operations == {}


def test_stop_and_close() -> None:
    machine = EventStreamProtocol()
    [first] = machine.submit("a", {"query": "{ x }"}, "POST")
    [second] = machine.submit("b", {"query": "{ x }"}, "POST")
    assert isinstance(first, StartOperation)
    assert isinstance(second, StartOperation)
    # Stopped before its answer: 204, as graphql-sse's handler answers it.
    answer, stop = machine.stop("a")
    assert isinstance(answer, AnswerSubmission)
    assert answer.status == 204
    assert stop == StopOperation(first.operation)
    assert machine.stop("a") == []
    machine.subscribed(second.operation)
    assert machine.close() == [StopOperation(second.operation)]
    assert machine.state is StreamState.CLOSED
    assert machine.submit("c", {"query": "{ x }"}, "POST") == []
    assert machine.heartbeat() == []
