"""The multipart machine on its own: requests in, actions out, no server."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from graphql import OperationType
from hypothesis import given, settings
from hypothesis import strategies as st

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
from channels_graphql_typed._protocol.multipart import (
    CONTENT_TYPE,
    DELIMITER,
    HEARTBEAT,
    GraphqlMultipartProtocol,
    multipart_requested,
    multipart_weight,
)

if TYPE_CHECKING:
    from channels_graphql_typed._protocol.messages import ExecutionResultPayload

APOLLO_ACCEPT = (
    "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,"
    "application/graphql-response+json,application/json;q=0.9"
)
SUBSCRIPTION = b'{"query": "subscription { count(to: 2) }"}'
QUERY = b'{"query": "{ hello }"}'


def machine(
    accept: str = APOLLO_ACCEPT, method: str = "POST", *, content_type: str = "application/json"
) -> GraphqlMultipartProtocol:
    return GraphqlMultipartProtocol(
        method=method,
        headers=[(b"accept", accept.encode()), (b"content-type", content_type.encode())],
        max_body_size=1000,
    )


def started(request: GraphqlMultipartProtocol, body: bytes) -> Operation:
    actions = request.receive_body(body, False)
    assert len(actions) == 1
    assert isinstance(actions[0], StartOperation)
    return actions[0].operation


def parts(chunks: list[bytes]) -> tuple[list[Any], bool]:
    """The JSON parts of a multipart body, the way Apollo Client splits it, and whether
    the closing delimiter ended it."""
    body = b"".join(chunks).decode()
    delimiter = DELIMITER.decode()
    assert body.startswith(delimiter)
    pieces = body.split(delimiter)[1:]
    # Every part ends with a delimiter: what follows the last one is the end, or nothing
    # yet.
    closed = pieces[-1] == "--\r\n"
    assert closed or pieces[-1] == ""
    found = []
    for piece in pieces[:-1]:
        head, _, payload = piece.partition("\r\n\r\n")
        assert head == "\r\nContent-Type: application/json; charset=utf-8"
        found.append(json.loads(payload))
    return found, closed


def body_of(actions: list[Any]) -> list[bytes]:
    chunks = []
    for action in actions:
        if isinstance(action, StartStream | SendChunk):
            chunks.append(action.body)
    return chunks


@pytest.mark.parametrize(
    ("accept", "weight"),
    [
        ("multipart/mixed;subscriptionSpec=1.0", 1.0),
        ('multipart/mixed;subscriptionSpec="1.0"', 1.0),
        ('multipart/mixed; boundary="graphql"; subscriptionSpec="1.0", application/json', 1.0),
        (APOLLO_ACCEPT, 1.0),
        ("application/json, multipart/mixed;subscriptionSpec=1.0;q=0.5", 0.5),
        ("multipart/mixed;subscriptionSpec=1.0;q=0", 0.0),
        ("multipart/mixed;subscriptionSpec=2.0", 0.0),
        ("multipart/mixed;deferSpec=20220824", 0.0),
        ("multipart/mixed", 0.0),
        ("multipart/*", 0.0),
        ("application/json", 0.0),
        (None, 0.0),
    ],
)
def test_accept(accept: str | None, weight: float) -> None:
    assert multipart_weight(accept) == weight


@pytest.mark.parametrize(
    ("accept", "requested"),
    [
        (APOLLO_ACCEPT, True),
        ("text/event-stream", False),
        ("text/event-stream;q=0.5, multipart/mixed;subscriptionSpec=1.0", True),
        ("text/event-stream, multipart/mixed;subscriptionSpec=1.0;q=0.5", False),
        ("application/json", False),
        # Apollo Client's GraphQL17Alpha9Handler, for a query with @defer or @stream.
        ("multipart/mixed;incrementalSpec=v0.2,application/json;q=0.9", True),
        ('multipart/mixed; incrementalSpec="v0.2"', True),
        ("multipart/mixed;incrementalSpec=v0.1,application/json", False),
        ("multipart/mixed;deferSpec=20220824,application/json", False),
    ],
)
def test_which_machine(accept: str, requested: bool) -> None:
    assert multipart_requested([(b"accept", accept.encode())]) is requested


def test_a_subscription_streams_parts_with_heartbeats_then_closes() -> None:
    request = machine()
    operation = started(request, SUBSCRIPTION)
    assert request.heartbeat() == []  # nothing streams yet
    assert request.refusal(operation, OperationType.SUBSCRIPTION) is None
    start = request.subscribed(operation)
    assert len(start) == 1
    assert isinstance(start[0], StartStream)
    assert start[0].status == 200
    headers = dict(start[0].headers)
    assert headers["content-type"] == CONTENT_TYPE
    assert headers["content-type"] == "multipart/mixed;boundary=graphql;subscriptionSpec=1.0"
    assert headers["x-accel-buffering"] == "no"
    actions = [
        *start,
        *request.send_serialized_result(operation, '{"data":{"count":1}}'),
        *request.heartbeat(),
        *request.send_result(operation, {"data": {"count": 2}}),
        *request.complete(operation),
    ]
    assert isinstance(actions[-1], EndStream)
    assert parts(body_of(actions)) == (
        [{"payload": {"data": {"count": 1}}}, {}, {"payload": {"data": {"count": 2}}}],
        True,
    )
    # Done: nothing more goes out.
    assert request.heartbeat() == []
    assert request.send_result(operation, {"data": None}) == []
    assert request.complete(operation) == []


def test_every_part_carries_the_delimiter_after_it() -> None:
    # A client parses a part when it sees the next delimiter: it must not wait for the
    # next event.
    request = machine()
    operation = started(request, SUBSCRIPTION)
    request.refusal(operation, OperationType.SUBSCRIPTION)
    request.subscribed(operation)
    (chunk,) = request.send_result(operation, {"data": {"count": 1}})
    assert isinstance(chunk, SendChunk)
    assert chunk.body.endswith(DELIMITER)
    assert HEARTBEAT.endswith(DELIMITER)


def test_a_query_gets_plain_json_when_json_is_acceptable() -> None:
    request = machine()
    operation = started(request, QUERY)
    assert request.refusal(operation, OperationType.QUERY) is None
    (response,) = request.send_result(operation, {"data": {"hello": "x"}})
    assert isinstance(response, Respond)
    assert response.status == 200
    assert dict(response.headers)["content-type"].startswith("application/graphql-response+json")
    assert json.loads(response.body) == {"data": {"hello": "x"}}


@pytest.mark.parametrize(
    "accept",
    [
        "multipart/mixed;subscriptionSpec=1.0",
        "multipart/mixed;subscriptionSpec=1.0, application/json;q=0.5",
    ],
)
def test_a_query_is_one_part_when_multipart_is_preferred(accept: str) -> None:
    request = machine(accept)
    operation = started(request, QUERY)
    assert request.refusal(operation, OperationType.QUERY) is None
    actions = [
        *request.send_result(operation, {"data": {"hello": "x"}}),
        *request.complete(operation),
    ]
    assert isinstance(actions[0], StartStream)
    assert parts(body_of(actions)) == ([{"payload": {"data": {"hello": "x"}}}], True)


def test_a_mutation_over_get_is_still_refused() -> None:
    request = GraphqlMultipartProtocol(
        method="GET",
        headers=[(b"accept", APOLLO_ACCEPT.encode())],
        query_string=b"query=mutation+%7B+a+%7D",
    )
    operation = started(request, b"")
    (response,) = request.refusal(operation, OperationType.MUTATION) or []
    assert isinstance(response, Respond)
    assert response.status == 405


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"[]", 400), (b"{", 400), (b'{"query": "' + b"x" * 2000 + b'"}', 413)],
)
def test_bad_requests_are_http_errors(body: bytes, status: int) -> None:
    (response,) = machine().receive_body(body, False)
    assert isinstance(response, Respond)
    assert response.status == status


def test_a_form_post_never_executes() -> None:
    request = machine("multipart/mixed;subscriptionSpec=1.0", content_type="text/plain")
    (response,) = request.receive_body(SUBSCRIPTION, False)
    assert isinstance(response, Respond)
    assert response.status == 415


def test_document_errors_of_a_subscription_are_a_json_response() -> None:
    # Found before the response's form is known: as over GraphQL over HTTP.
    request = machine()
    operation = started(request, SUBSCRIPTION)
    (response,) = request.send_errors(operation, [{"message": "Cannot query field"}])
    assert isinstance(response, Respond)
    assert response.status == 400


def test_document_errors_are_a_part_for_a_multipart_only_client() -> None:
    request = machine("multipart/mixed;subscriptionSpec=1.0")
    operation = started(request, SUBSCRIPTION)
    actions = request.send_errors(operation, [{"message": "Cannot query field"}])
    assert parts(body_of(actions)) == (
        [{"payload": {"errors": [{"message": "Cannot query field"}]}}],
        True,
    )


def test_variables_that_cannot_be_coerced_are_the_payloads_errors() -> None:
    request = machine()
    operation = started(request, SUBSCRIPTION)
    request.refusal(operation, OperationType.SUBSCRIPTION)
    actions = [
        *request.send_result(operation, {"errors": [{"message": "bad"}]}, request_error=True),
        *request.complete(operation),
    ]
    assert parts(body_of(actions)) == ([{"payload": {"errors": [{"message": "bad"}]}}], True)


def test_a_server_failure_while_streaming_is_a_transport_level_error() -> None:
    request = machine()
    operation = started(request, SUBSCRIPTION)
    request.refusal(operation, OperationType.SUBSCRIPTION)
    actions = [
        *request.subscribed(operation),
        *request.send_errors(operation, [{"message": "Internal error"}], Failure.INTERNAL),
    ]
    assert parts(body_of(actions)) == (
        [{"payload": None, "errors": [{"message": "Internal error"}]}],
        True,
    )
    assert request.complete(operation) == []


def test_a_server_failure_before_streaming_is_a_transport_level_error_too() -> None:
    request = machine()
    operation = started(request, SUBSCRIPTION)
    request.refusal(operation, OperationType.SUBSCRIPTION)
    actions = request.send_errors(operation, [{"message": "Internal error"}], Failure.INTERNAL)
    assert isinstance(actions[0], StartStream)
    assert parts(body_of(actions)) == (
        [{"payload": None, "errors": [{"message": "Internal error"}]}],
        True,
    )


def test_a_refused_subscription_is_a_json_response() -> None:
    request = machine()
    operation = started(request, SUBSCRIPTION)
    (response,) = request.send_errors(operation, [{"message": "No"}], Failure.REFUSED)
    assert isinstance(response, Respond)
    assert response.status == 403


@pytest.mark.parametrize("streaming", [False, True])
def test_disconnect_stops_the_operation(streaming: bool) -> None:
    request = machine()
    operation = started(request, SUBSCRIPTION)
    request.refusal(operation, OperationType.SUBSCRIPTION)
    if streaming:
        request.subscribed(operation)
    assert request.disconnect() == [StopOperation(operation)]
    assert request.send_result(operation, {"data": None}) == []
    assert request.heartbeat() == []
    assert request.disconnect() == []


ACCEPT_ENTRIES = st.sampled_from(
    [
        "multipart/mixed;subscriptionSpec=1.0",
        'multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"',
        "multipart/mixed;subscriptionSpec=1.0;q=0.3",
        "multipart/mixed;subscriptionSpec=1.0;q=nope",
        "multipart/mixed;deferSpec=20220824",
        "application/json",
        "application/json;q=0.5",
        "application/graphql-response+json",
        "text/event-stream",
        "*/*;q=0.1",
        "text/html",
        ";;;",
        "multipart/mixed;subscriptionSpec",
    ]
)
BODIES = st.one_of(
    st.sampled_from([SUBSCRIPTION, QUERY, b'{"query": "mutation { a }"}', b"", b"[]", b"{"]),
    st.binary(max_size=40),
)
EVENTS = st.lists(
    st.sampled_from(
        [
            "refuse-query",
            "refuse-mutation",
            "refuse-subscription",
            "subscribed",
            "result",
            "request-error",
            "serialized",
            "invalid",
            "refused",
            "internal",
            "complete",
            "heartbeat",
            "disconnect",
        ]
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(ACCEPT_ENTRIES, min_size=1, max_size=4),
    st.sampled_from(["GET", "POST", "PUT"]),
    st.sampled_from(["application/json", "text/plain"]),
    BODIES,
    EVENTS,
)
def test_any_request_and_any_sequence_gives_one_well_formed_response(
    accept: list[str], method: str, content_type: str, body: bytes, events: list[str]
) -> None:
    """Whatever the request and whatever the runner reports, in any order: no exception,
    one response head, nothing after the response's end, and a streamed body that a
    client splits into JSON parts ending with the closing delimiter."""
    request = machine(",".join(accept), method, content_type=content_type)
    actions: list[Any] = list(request.receive_body(body, False))
    operation = next((a.operation for a in actions if isinstance(a, StartOperation)), None)
    if operation is not None:
        for event in events:
            match event:
                case "refuse-query" | "refuse-mutation" | "refuse-subscription":
                    kind = OperationType(event.removeprefix("refuse-"))
                    actions += request.refusal(operation, kind) or []
                case "subscribed":
                    actions += request.subscribed(operation)
                case "result" | "request-error":
                    result: ExecutionResultPayload = {"data": {"a": "\r\n--graphql"}}
                    error = event == "request-error"
                    actions += request.send_result(operation, result, request_error=error)
                case "serialized":
                    actions += request.send_serialized_result(operation, '{"data":null}')
                case "invalid" | "refused" | "internal":
                    failure = Failure(event)
                    actions += request.send_errors(operation, [{"message": "x"}], failure)
                case "complete":
                    actions += request.complete(operation)
                case "heartbeat":
                    actions += request.heartbeat()
                case _:
                    actions += request.disconnect()
    heads = [a for a in actions if isinstance(a, Respond | StartStream)]
    assert len(heads) <= 1
    ends = [i for i, a in enumerate(actions) if isinstance(a, Respond | EndStream)]
    if ends:
        assert len(ends) == 1
        assert all(isinstance(a, StopOperation) for a in actions[ends[0] + 1 :])
    if heads and isinstance(heads[0], StartStream):
        assert dict(heads[0].headers)["content-type"] == CONTENT_TYPE
        found, closed = parts(body_of(actions))
        assert closed is bool(ends)
        assert all(isinstance(value, dict) for value in found)
    elif heads:
        assert isinstance(heads[0], Respond)
        json.loads(heads[0].body)


INCREMENTAL_ACCEPT = "multipart/mixed;incrementalSpec=v0.2,application/graphql-response+json"


def test_an_incremental_result_streams_unwrapped_parts_without_heartbeats() -> None:
    request = machine(INCREMENTAL_ACCEPT)
    operation = started(request, QUERY)
    assert request.refusal(operation, OperationType.QUERY) is None
    assert request.incremental_delivery(operation) is True
    actions = request.send_incremental_result(operation, '{"data":{},"pending":[],"hasNext":true}')
    start = actions[0]
    assert isinstance(start, StartStream)
    assert dict(start.headers)["content-type"] == (
        "multipart/mixed;boundary=graphql;incrementalSpec=v0.2"
    )
    assert request.heartbeat() == []  # the incremental format has none
    actions += request.send_incremental_result(operation, '{"hasNext":false}')
    actions += request.complete(operation)
    assert isinstance(actions[-1], EndStream)
    assert parts(body_of(actions)) == (
        [{"data": {}, "pending": [], "hasNext": True}, {"hasNext": False}],
        True,
    )


@pytest.mark.parametrize(
    "accept",
    [
        APOLLO_ACCEPT,  # subscriptions only
        "multipart/mixed;incrementalSpec=v0.2;q=0.5,application/json",  # JSON preferred
        "multipart/mixed;subscriptionSpec=1.0",  # queries as {"payload": ...} parts
    ],
)
def test_no_incremental_parts_unless_asked_for_first(accept: str) -> None:
    request = machine(accept)
    operation = started(request, QUERY)
    assert request.refusal(operation, OperationType.QUERY) is None
    assert request.incremental_delivery(operation) is False
