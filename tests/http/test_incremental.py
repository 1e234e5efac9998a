"""Incremental delivery (``@defer``, ``@stream``) through GraphqlHttpConsumer in memory:
each payload a ``next`` event over SSE (both modes) and a part over multipart
(``incrementalSpec=v0.2``, Apollo Client's ``GraphQL17Alpha9Handler``), the whole
result in one response over plain JSON and in one message over WebSocket; the
result-size limit across payloads, error masking in deferred parts, and a client that
leaves stopping the deferred work."""

from __future__ import annotations

import json
from typing import Any, Final

import pytest
from channels.testing import ApplicationCommunicator

from channels_graphql_typed import (
    GRAPHQL_TRANSPORT_WS,
    GRAPHQL_WS,
    GraphqlHttpConsumer,
    GraphqlWsConsumer,
)
from tests.helpers import WsSession
from tests.incremental_schema import HELD, HELD_CANCELLED, masked_schema, schema

APOLLO_ACCEPT: Final = (
    "multipart/mixed;incrementalSpec=v0.2,application/graphql-response+json,application/json;q=0.9"
)
INCREMENTAL_TYPE: Final = "multipart/mixed;boundary=graphql;incrementalSpec=v0.2"
DEFERRED: Final = (
    '{ shelf ... @defer(label: "books") { books { id ... @defer(label: "title") { title } } } }'
)
WHOLE: Final = {
    "shelf": "fiction",
    "books": [{"id": index, "title": f"Book {index}"} for index in range(3)],
}
STREAMED: Final = "{ words(count: 4) @stream(initialCount: 1) }"


class IncrementalConsumer(GraphqlHttpConsumer):
    schema = schema


class LimitedConsumer(GraphqlHttpConsumer):
    schema = schema
    max_result_size = 400


class MaskingConsumer(GraphqlHttpConsumer):
    schema = masked_schema


class IncrementalWsConsumer(GraphqlWsConsumer):
    schema = schema


class Response:
    """One HTTP request's response, read to its end (or as far as asked)."""

    def __init__(self, app: Any, payload: object, accept: str) -> None:
        # asgiref leaves ApplicationCommunicator.__init__ unannotated.
        self.communicator = ApplicationCommunicator(  # type: ignore[no-untyped-call]
            app,
            {
                "type": "http",
                "http_version": "1.1",
                "method": "POST",
                "path": "/graphql/",
                "query_string": b"",
                "headers": [(b"content-type", b"application/json"), (b"accept", accept.encode())],
            },
        )
        self.payload = payload
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.ended = False

    async def start(self) -> None:
        body = json.dumps(self.payload).encode()
        await self.communicator.send_input({"type": "http.request", "body": body})
        start = await self.communicator.receive_output(3)
        assert start["type"] == "http.response.start", start
        self.status = start["status"]
        self.headers = {k.decode(): v.decode() for k, v in start["headers"]}

    async def read_chunk(self) -> bytes:
        message = await self.communicator.receive_output(3)
        assert message["type"] == "http.response.body", message
        self.body += message.get("body", b"")
        self.ended = not message.get("more_body", False)
        return bytes(message.get("body", b""))

    async def read_all(self) -> Response:
        await self.start()
        while not self.ended:
            await self.read_chunk()
        await self.communicator.wait(3)
        return self

    def events(self) -> list[tuple[str, Any]]:
        """An event stream's events: (event, data decoded)."""
        events = []
        for block in self.body.decode().split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if line and not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
            if "event" in fields:
                data = fields.get("data", "")
                events.append((fields["event"], json.loads(data) if data else None))
        return events

    def parts(self) -> list[Any]:
        """A multipart response's parts, decoded, as Apollo Client splits them."""
        text = self.body.decode()
        assert text.startswith("\r\n--graphql"), text
        assert text.endswith("\r\n--graphql--\r\n"), text
        chunks = text.split("\r\n--graphql")[1:-1]
        parts = []
        for chunk in chunks:
            head, _, body = chunk.partition("\r\n\r\n")
            assert "content-type: application/json" in head.lower(), head
            parts.append(json.loads(body))
        return parts


def merge(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole result that an incremental client builds from the payloads (graphql-js
    17.0.0-alpha.9's format: ``pending`` by id and path, ``incremental`` entries with
    ``data`` at the pending path plus ``subPath``, or stream ``items``)."""
    first, *rest = payloads
    assert first["hasNext"] is True, first
    data = first["data"]
    paths = {entry["id"]: entry["path"] for entry in first["pending"]}
    errors = list(first.get("errors", []))
    for payload in rest:
        for entry in payload.get("pending", []):
            paths[entry["id"]] = entry["path"]
        for entry in payload.get("incremental", []):
            target: Any = data
            for key in (*paths[entry["id"]], *entry.get("subPath", [])):
                target = target[key]
            if "items" in entry:
                target.extend(entry["items"])
            else:
                target.update(entry["data"])
            errors += entry.get("errors", [])
        for entry in payload.get("completed", []):
            errors += entry.get("errors", [])
    assert rest[-1]["hasNext"] is False, rest[-1]
    return {"data": data, **({"errors": errors} if errors else {})}


@pytest.fixture(autouse=True)
def _release_held() -> Any:
    HELD.clear()
    HELD_CANCELLED.clear()
    yield
    HELD.set()


async def test_each_payload_is_an_sse_next_event() -> None:
    response = await Response(
        IncrementalConsumer.as_asgi(), {"query": DEFERRED}, "text/event-stream"
    ).read_all()
    assert response.status == 200
    events = response.events()
    assert [event for event, _ in events][-1] == "complete"
    payloads = [data for event, data in events if event == "next"]
    assert len(payloads) >= 2
    assert payloads[0]["data"] == {"shelf": "fiction"}
    assert payloads[0]["pending"] == [{"id": "0", "path": [], "label": "books"}]
    assert merge(payloads) == {"data": WHOLE}


async def test_each_payload_is_a_part_for_apollo_clients() -> None:
    response = await Response(
        IncrementalConsumer.as_asgi(), {"query": DEFERRED}, APOLLO_ACCEPT
    ).read_all()
    assert response.status == 200
    assert response.headers["content-type"] == INCREMENTAL_TYPE
    parts = response.parts()
    # Unwrapped (no "payload"), and no heartbeat between them.
    assert all("hasNext" in part for part in parts), parts
    assert merge(parts) == {"data": WHOLE}


@pytest.mark.parametrize(
    "accept",
    [
        "application/graphql-response+json",
        "application/json",
        # Apollo's older handler: a format of its own, which is not served.
        "multipart/mixed;deferSpec=20220824,application/json",
        # Incremental parts weighed below JSON.
        "multipart/mixed;incrementalSpec=v0.2;q=0.5,application/json",
    ],
)
async def test_one_json_response_gets_the_whole_result(accept: str) -> None:
    response = await Response(IncrementalConsumer.as_asgi(), {"query": DEFERRED}, accept).read_all()
    assert response.status == 200
    assert response.headers["content-type"].startswith(
        ("application/graphql-response+json", "application/json")
    )
    assert json.loads(response.body) == {"data": WHOLE}


async def test_a_query_without_defer_is_plain_json_for_apollo_clients() -> None:
    response = await Response(
        IncrementalConsumer.as_asgi(), {"query": "{ shelf }"}, APOLLO_ACCEPT
    ).read_all()
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert json.loads(response.body) == {"data": {"shelf": "fiction"}}


async def test_streamed_items_arrive_in_later_payloads() -> None:
    response = await Response(
        IncrementalConsumer.as_asgi(), {"query": STREAMED}, "text/event-stream"
    ).read_all()
    payloads = [data for event, data in response.events() if event == "next"]
    assert payloads[0]["data"] == {"words": ["word0"]}
    assert any("items" in entry for p in payloads[1:] for entry in p.get("incremental", []))
    assert merge(payloads) == {"data": {"words": ["word0", "word1", "word2", "word3"]}}


async def test_a_deferred_error_is_in_its_part_and_masked_like_strawberry() -> None:
    query = "{ shelf ... @defer { broken } }"
    plain = await Response(
        IncrementalConsumer.as_asgi(), {"query": query}, "text/event-stream"
    ).read_all()
    payloads = [data for event, data in plain.events() if event == "next"]
    result = merge(payloads)
    assert result["data"] == {"shelf": "fiction", "broken": None}
    assert [e["message"] for e in result["errors"]] == ["the database is on fire"]
    masked = await Response(
        MaskingConsumer.as_asgi(), {"query": query}, "text/event-stream"
    ).read_all()
    payloads = [data for event, data in masked.events() if event == "next"]
    assert [e["message"] for e in merge(payloads)["errors"]] == ["Unexpected error."]


async def test_the_result_size_limit_covers_every_payload() -> None:
    # The initial payload fits; the deferred books do not: the last payload ends the
    # pending part with the error, and nothing of the oversized part is sent.
    query = "{ shelf ... @defer { books(count: 50) { id title } } }"
    response = await Response(
        LimitedConsumer.as_asgi(), {"query": query}, "text/event-stream"
    ).read_all()
    payloads = [data for event, data in response.events() if event == "next"]
    assert payloads[0]["data"] == {"shelf": "fiction"}
    assert payloads[-1] == {
        "hasNext": False,
        "completed": [
            {
                "id": "0",
                "errors": [
                    {
                        "message": "The result is too large: it would exceed 400 bytes "
                        "(max_result_size)."
                    }
                ],
            }
        ],
    }
    assert "Book 0" not in response.body.decode()


async def test_a_client_that_leaves_stops_the_deferred_work() -> None:
    query = "{ shelf ... @defer { held } }"
    response = Response(IncrementalConsumer.as_asgi(), {"query": query}, "text/event-stream")
    await response.start()
    while b'"hasNext":true' not in response.body:
        await response.read_chunk()
    await response.communicator.send_input({"type": "http.disconnect"})
    await response.communicator.wait(3)
    assert HELD_CANCELLED == ["held"]


@pytest.mark.parametrize("subprotocol", [GRAPHQL_TRANSPORT_WS, GRAPHQL_WS])
async def test_websocket_gets_the_whole_result_in_one_message(subprotocol: str) -> None:
    session = await WsSession.open(IncrementalWsConsumer.as_asgi(), subprotocol)
    try:
        await session.start("1", DEFERRED)
        result = await session.receive()
        assert result == {"type": session.result_type, "id": "1", "payload": {"data": WHOLE}}
        assert (await session.receive()) == {"type": "complete", "id": "1"}
    finally:
        await session.communicator.disconnect()


async def test_defer_in_a_subscription_is_refused() -> None:
    query = "subscription { ticks { id ... @defer { title } } }"
    response = await Response(
        IncrementalConsumer.as_asgi(), {"query": query}, "text/event-stream"
    ).read_all()
    payloads = [data for event, data in response.events() if event == "next"]
    assert len(payloads) == 1
    assert payloads[0]["errors"][0]["message"].startswith(
        "Defer directive not supported on subscription"
    )
