"""The HTTP machine on its own: requests in, actions out, no server."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from graphql import OperationType

from channels_graphql_typed._protocol import (
    EndStream,
    Failure,
    Operation,
    Respond,
    SendChunk,
    StartOperation,
    StartStream,
    StopOperation,
)
from channels_graphql_typed._protocol.http import GraphqlHttpProtocol, ResponseForm, negotiate

if TYPE_CHECKING:
    from channels_graphql_typed._protocol.messages import ExecutionResultPayload

GRAPHQL_RESPONSE = "application/graphql-response+json"


def machine(
    method: str = "POST",
    *,
    accept: str | None = None,
    content_type: str | None = "application/json",
    query_string: bytes = b"",
    max_body_size: int | None = 1000,
    http_version: str = "1.1",
) -> GraphqlHttpProtocol:
    headers = []
    if accept is not None:
        headers.append((b"accept", accept.encode()))
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    return GraphqlHttpProtocol(
        method=method,
        headers=headers,
        query_string=query_string,
        max_body_size=max_body_size,
        http_version=http_version,
    )


def started(request: GraphqlHttpProtocol, body: bytes = b"") -> Operation:
    actions = request.receive_body(body, False)
    assert len(actions) == 1
    assert isinstance(actions[0], StartOperation)
    return actions[0].operation


def response(actions: list[Any]) -> tuple[int, dict[str, str], Any]:
    assert len(actions) == 1
    assert isinstance(actions[0], Respond)
    respond: Respond = actions[0]
    return respond.status, dict(respond.headers), json.loads(respond.body)


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, ResponseForm.JSON),
        ("*/*", ResponseForm.JSON),
        ("application/*", ResponseForm.JSON),
        ("application/json", ResponseForm.JSON),
        (GRAPHQL_RESPONSE, ResponseForm.GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", ResponseForm.GRAPHQL_RESPONSE_JSON),
        (f"application/json, {GRAPHQL_RESPONSE}", ResponseForm.GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE};q=0.5, application/json", ResponseForm.JSON),
        ("text/html", None),
        ("application/json;q=0", None),
    ],
)
def test_negotiation_of_one_result(accept: str | None, expected: ResponseForm | None) -> None:
    assert negotiate(accept)[0] is expected


def test_a_post_runs_its_operation() -> None:
    request = machine()
    payload = {"query": "{ hello }", "variables": {"a": 1}, "operationName": "", "extensions": None}
    operation = started(request, body(payload))
    assert operation.payload == {
        "query": "{ hello }",
        "variables": {"a": 1},
        "operationName": None,
        "extensions": None,
    }


def test_a_body_in_chunks() -> None:
    request = machine()
    assert request.receive_body(b'{"query":', True) == []
    assert isinstance(request.receive_body(b' "{ a }"}', False)[0], StartOperation)


def test_a_get_reads_the_query_string() -> None:
    request = machine(
        "GET", content_type=None, query_string=b"query=%7B+a+%7D&variables=%7B%22x%22%3A1%7D"
    )
    operation = started(request)
    assert operation.payload["query"] == "{ a }"
    assert operation.payload["variables"] == {"x": 1}


@pytest.mark.parametrize(
    ("method", "content_type", "payload", "status"),
    [
        ("POST", None, b'{"query": "{ a }"}', 415),
        ("POST", "text/plain", b'{"query": "{ a }"}', 415),
        ("POST", "application/x-www-form-urlencoded", b"query=%7B+a+%7D", 415),
        ("POST", "multipart/form-data; boundary=x", b"--x", 415),
        ("POST", "application/json; charset=latin-1", b'{"query": "{ a }"}', 415),
        ("PUT", "application/json", b'{"query": "{ a }"}', 405),
        ("POST", "application/json", b"", 400),
        ("POST", "application/json", b'{ "not a JSON', 400),
        ("POST", "application/json", b"[]", 400),
        ("POST", "application/json", b'"query"', 400),
        ("POST", "application/json", b'{"query": NaN}', 400),
        ("POST", "application/json", b"\xff", 400),
        ("POST", "application/json", b'{"qeury": "{ a }"}', 400),
        ("POST", "application/json", b'{"query": 1}', 400),
        ("POST", "application/json", b'{"query": "{ a }", "variables": [1]}', 400),
        ("POST", "application/json", b'{"query": "{ a }", "variables": "x"}', 400),
        ("POST", "application/json", b'{"query": "{ a }", "extensions": 0}', 400),
        ("POST", "application/json", b'{"query": "{ a }", "operationName": {}}', 400),
        ("POST", "application/json", b'{"query": "' + b"x" * 2000 + b'"}', 413),
    ],
)
def test_bad_requests_never_execute(
    method: str, content_type: str | None, payload: bytes, status: int
) -> None:
    request = machine(method, content_type=content_type)
    got, headers, answer = response(request.receive_body(payload, False))
    assert got == status
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert isinstance(answer["errors"][0]["message"], str)
    if status == 405:
        assert headers["allow"] == "GET, POST"
    assert request.operation is None


def test_a_too_large_body_is_refused_before_it_is_complete() -> None:
    request = machine(max_body_size=10)
    status, _, _ = response(request.receive_body(b"x" * 11, True))
    assert status == 413
    assert request.receive_body(b"more", False) == []


def test_a_content_length_over_the_limit_is_refused_at_once() -> None:
    request = GraphqlHttpProtocol(
        method="POST",
        headers=[(b"content-type", b"application/json"), (b"content-length", b"5000")],
        max_body_size=1000,
    )
    assert response(request.receive_body(b"", True))[0] == 413


def test_nothing_acceptable_is_406() -> None:
    assert response(machine(accept="text/html").receive_body(b"{}", False))[0] == 406


def test_bad_get_parameters() -> None:
    request = machine("GET", content_type=None, query_string=b"query=%7B&variables=%5B%5D")
    assert response(request.receive_body(b"", False))[0] == 400
    request = machine("GET", content_type=None, query_string=b"variables=%7B%7D")
    assert response(request.receive_body(b"", False))[0] == 400


def test_a_mutation_over_get_is_405_with_allow() -> None:
    request = machine("GET", content_type=None, query_string=b"query=mutation+%7B+a+%7D")
    operation = started(request)
    status, headers, answer = response(request.refusal(operation, OperationType.MUTATION) or [])
    assert (status, headers["allow"]) == (405, "POST")
    assert "errors" in answer
    assert not request.is_active(operation)


@pytest.mark.parametrize(
    ("accept", "content_type", "status"),
    [(GRAPHQL_RESPONSE, GRAPHQL_RESPONSE, 400), ("application/json", "application/json", 200)],
)
def test_a_subscription_without_event_stream_is_refused(
    accept: str, content_type: str, status: int
) -> None:
    request = machine(accept=accept)
    operation = started(request, body({"query": "subscription { a }"}))
    got, headers, answer = response(request.refusal(operation, OperationType.SUBSCRIPTION) or [])
    assert got == status
    assert headers["content-type"] == f"{content_type}; charset=utf-8"
    assert "text/event-stream" in answer["errors"][0]["message"]


@pytest.mark.parametrize(
    ("accept", "failure", "status"),
    [
        (GRAPHQL_RESPONSE, Failure.INVALID, 400),
        (GRAPHQL_RESPONSE, Failure.REFUSED, 403),
        (GRAPHQL_RESPONSE, Failure.INTERNAL, 500),
        ("application/json", Failure.INVALID, 200),
        ("application/json", Failure.REFUSED, 200),
        ("application/json", Failure.INTERNAL, 500),
    ],
)
def test_status_of_errors_before_execution(accept: str, failure: Failure, status: int) -> None:
    request = machine(accept=accept)
    operation = started(request, body({"query": "{"}))
    got, _, answer = response(request.send_errors(operation, [{"message": "no"}], failure))
    assert (got, answer) == (status, {"errors": [{"message": "no"}]})


@pytest.mark.parametrize(
    ("accept", "status", "answer"),
    [
        (GRAPHQL_RESPONSE, 400, {"errors": [{"message": "bad"}]}),
        ("application/json", 200, {"data": None, "errors": [{"message": "bad"}]}),
    ],
)
def test_request_errors_of_execution(accept: str, status: int, answer: object) -> None:
    request = machine(accept=accept)
    operation = started(request, body({"query": "query($a: Int!) { a }"}))
    assert request.refusal(operation, OperationType.QUERY) is None
    result: ExecutionResultPayload = {"data": None, "errors": [{"message": "bad"}]}
    got = response(request.send_result(operation, result, request_error=True))
    assert (got[0], got[2]) == (status, answer)


def test_one_result_then_complete_sends_nothing_more() -> None:
    request = machine(accept=GRAPHQL_RESPONSE)
    operation = started(request, body({"query": "{ a }"}))
    assert request.refusal(operation, OperationType.QUERY) is None
    status, headers, answer = response(request.send_result(operation, {"data": {"a": 1}}))
    assert (status, answer) == (200, {"data": {"a": 1}})
    assert headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert request.complete(operation) == []
    assert request.heartbeat() == []


def stream_headers(http_version: str = "1.1") -> tuple[tuple[str, str], ...]:
    headers = (
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
        ("x-accel-buffering", "no"),
    )
    return (*headers, ("connection", "keep-alive")) if http_version != "2" else headers


@pytest.mark.parametrize("http_version", ["1.1", "2"])
def test_a_subscription_streams_events(http_version: str) -> None:
    request = machine(accept="text/event-stream", http_version=http_version)
    operation = started(request, body({"query": "subscription { a }"}))
    assert request.refusal(operation, OperationType.SUBSCRIPTION) is None
    assert request.heartbeat() == []
    assert request.subscribed(operation) == [
        StartStream(200, stream_headers(http_version), b":\n\n")
    ]
    assert request.heartbeat() == [SendChunk(b":\n\n")]
    assert request.send_serialized_result(operation, '{"data":{"a":1}}') == [
        SendChunk(b'event: next\ndata: {"data":{"a":1}}\n\n')
    ]
    assert request.complete(operation) == [
        SendChunk(b"event: complete\ndata:\n\n"),
        EndStream(),
    ]
    assert request.heartbeat() == []


def test_errors_before_execution_go_in_the_stream() -> None:
    request = machine(accept="text/event-stream")
    operation = started(request, body({"query": "{"}))
    actions = request.send_errors(operation, [{"message": "Syntax Error"}])
    assert actions == [
        StartStream(200, stream_headers(), b":\n\n"),
        SendChunk(b'event: next\ndata: {"errors":[{"message":"Syntax Error"}]}\n\n'),
        SendChunk(b"event: complete\ndata:\n\n"),
        EndStream(),
    ]


def test_a_query_over_sse_is_one_next_then_complete() -> None:
    request = machine(
        "GET", content_type=None, accept="text/event-stream", query_string=b"query=%7Ba%7D"
    )
    operation = started(request)
    assert request.refusal(operation, OperationType.QUERY) is None
    assert request.send_result(operation, {"data": {"a": 1}}) == [
        StartStream(200, stream_headers(), b":\n\n"),
        SendChunk(b'event: next\ndata: {"data":{"a":1}}\n\n'),
    ]
    assert request.complete(operation)[-1] == EndStream()


def test_a_query_prefers_json_when_both_are_accepted() -> None:
    request = machine(accept="application/json, text/event-stream")
    operation = started(request, body({"query": "{ a }"}))
    assert request.refusal(operation, OperationType.QUERY) is None
    assert response(request.send_result(operation, {"data": {"a": 1}}))[0] == 200
    request = machine(accept="application/json, text/event-stream")
    operation = started(request, body({"query": "subscription { a }"}))
    assert request.refusal(operation, OperationType.SUBSCRIPTION) is None
    assert isinstance(request.subscribed(operation)[0], StartStream)


def test_disconnect_stops_the_operation_once() -> None:
    request = machine(accept="text/event-stream")
    operation = started(request, body({"query": "subscription { a }"}))
    request.refusal(operation, OperationType.SUBSCRIPTION)
    request.subscribed(operation)
    assert request.disconnect() == [StopOperation(operation)]
    assert request.disconnect() == []
    assert request.send_serialized_result(operation, "{}") == []
    assert request.complete(operation) == []
