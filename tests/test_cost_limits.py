"""What one client can make a server spend: aliases, result size, document cache,
validation of long documents, and what a connection's operations may hold."""

from __future__ import annotations

import gc
import json
import threading
import tracemalloc
from typing import Any

from graphql import ASTValidationRule, ValidationContext

from channels_graphql_typed import GRAPHQL_WS, GraphqlWsConsumer
from channels_graphql_typed._document_cache import DocumentCache
from tests.consumers import SchemaConsumer
from tests.helpers import WsSession
from tests.schema import schema
from tests.test_limits import operation_error


def aliases(count: int, field: str) -> str:
    return "{ " + " ".join(f"a{index}: {field}" for index in range(count)) + " }"


async def test_aliases_beyond_the_limit_are_refused(subprotocol: str) -> None:
    # 900 aliases of a list field made a 181 MB response.
    session = await WsSession.open(SchemaConsumer.as_asgi(), subprotocol)
    message = await operation_error(session, aliases(900, "rows(count: 1000, width: 200)"))
    assert message == "The document has more than 100 aliases."
    payload = await session.query("ok", aliases(100, "hello"))
    assert len(payload["data"]) == 100
    await session.close()


async def test_a_result_past_max_result_size_is_one_error(subprotocol: str) -> None:
    session = await WsSession.open(SchemaConsumer.as_asgi(), subprotocol)
    # 90 aliases of 1,000 rows of 200 characters: 18 MB, past the 2 MiB default.
    payload = await session.query("big", aliases(90, "rows(count: 1000, width: 200)"))
    assert payload == {
        "data": None,
        "errors": [
            {"message": "The result is too large: it would exceed 2097152 bytes (max_result_size)."}
        ],
    }
    # Under it, the result is whole.
    payload = await session.query("fits", aliases(8, "rows(count: 1000, width: 200)"))
    assert len(payload["data"]["a7"]) == 1000
    assert "errors" not in payload
    await session.close()


async def test_nested_lists_from_a_tiny_query_stop_at_the_limit(subprotocol: str) -> None:
    # An 83-byte nested-list query used to cost hundreds of MiB and seconds of the loop.
    level = "children(count: 60) { label "
    query = "{ tree { " + level * 5 + "}" * 5 + " } }"
    assert len(query) < 200
    session = await WsSession.open(SchemaConsumer.as_asgi(), subprotocol)
    await session.start("deep", query)
    payload = await session.result("deep", timeout=20)
    await session.completed("deep")
    assert payload["data"] is None
    assert "max_result_size" in payload["errors"][0]["message"]
    assert await session.query("after", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await session.close()


async def test_subscription_events_are_bounded_too(subprotocol: str) -> None:
    class SmallResults(GraphqlWsConsumer):
        schema = schema
        max_result_size = 12  # "count" and its punctuation: 13

    session = await WsSession.open(SmallResults.as_asgi(), subprotocol)
    await session.start("s", "subscription { count(to: 2) }")
    for _ in range(2):
        payload = await session.result("s")
        assert payload["data"] is None
        assert "max_result_size" in payload["errors"][0]["message"]
    await session.completed("s")
    await session.close()


def test_document_cache_is_bounded_by_tokens() -> None:
    cache = DocumentCache(schema._schema, max_cached_tokens=100)
    small = cache.get("{ hello }")
    assert small.tokens == 5  # with the start and end of the source
    for index in range(40):
        cache.get(aliases(5, f'hello(name: "{index}")'))  # 44 tokens each
    assert cache.cached_tokens <= 100
    assert len(cache) == 2
    too_big = cache.get(aliases(40, "hello"))  # 124 tokens
    assert too_big.document is not None
    assert cache.get(aliases(40, "hello")) is not too_big  # never cached
    assert cache.cached_tokens <= 100


async def test_distinct_documents_do_not_grow_the_cache_past_its_budget(
    subprotocol: str,
) -> None:
    class Budgeted(GraphqlWsConsumer):
        schema = schema
        document_cache_tokens = 2_000

    session = await WsSession.open(Budgeted.as_asgi(), subprotocol)
    for index in range(60):
        payload = await session.query(str(index), aliases(90, f'hello(name: "{index}")'))
        assert payload["data"]["a0"] == f"Hello, {index}!"
    documents = Budgeted.executor().documents
    assert 0 < documents.cached_tokens <= 2_000
    await session.close()


class RecordThread(ASTValidationRule):
    threads: set[str] = set()

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        RecordThread.threads.add(threading.current_thread().name)


async def test_long_documents_are_validated_off_the_event_loop(subprotocol: str) -> None:
    class Recording(GraphqlWsConsumer):
        schema = schema
        validation_rules = (RecordThread,)

    session = await WsSession.open(Recording.as_asgi(), subprotocol)
    # Texts of this run only: the executor, and its document cache, are shared by every
    # class with the same settings (the other subprotocol's run included).
    RecordThread.threads.clear()
    await session.query("short", f'{{ hello(name: "{subprotocol}") }}')
    assert RecordThread.threads == {threading.current_thread().name}
    RecordThread.threads.clear()
    long = aliases(90, 'hello(name: "' + subprotocol + "x" * 40 + '")')
    assert len(long) > 4096
    await session.query("long", long)
    (thread,) = RecordThread.threads
    assert thread.startswith("graphql-documents")
    await session.close()


class SmallBudget(GraphqlWsConsumer):
    schema = schema
    max_operations_size_per_connection = 1_000


async def test_a_connection_holds_a_bounded_size_of_operations(subprotocol: str) -> None:
    session = await WsSession.open(SmallBudget.as_asgi(), subprotocol)
    query = "subscription S($to: Int!) { count(to: $to, delay: 100) }"
    for index in range(10):
        await session.start(str(index), query, {"to": 5})
    await session.nothing(0.2)
    # The open subscriptions hold 10 x (tokens + 2 values); a variable of 1,000 values
    # does not fit beside them.
    await session.start(
        "big", "query Q($names: [String!]!) { length(items: $names) }", {"names": ["x"] * 1000}
    )
    message = await session.receive()
    assert message["type"] == "error"
    text = json.dumps(message["payload"])
    assert "max_operations_size_per_connection" in text
    for index in range(10):
        await session.stop(str(index))
        if subprotocol == GRAPHQL_WS:
            await session.completed(str(index))  # the legacy protocol confirms a stop
    await session.nothing(0.2)
    # Stopped operations give their share back.
    payload = await session.query(
        "small", "query Q($names: [String!]!) { length(items: $names) }", {"names": ["x"] * 900}
    )
    assert payload == {"data": {"length": 900}}
    await session.close()


async def test_undeclared_variables_and_extensions_are_not_kept(subprotocol: str) -> None:
    # A ~1 MiB frame of "junk": [[], [], ...] costs ~25 MiB of objects; 100 of them on
    # one connection used to pin ~2.5 GiB for as long as the subscriptions lived.
    class Junk(GraphqlWsConsumer):
        schema = schema

    session = await WsSession.open(Junk.as_asgi(), subprotocol)
    junk: list[Any] = [[] for _ in range(30_000)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(20):
            await session.send(
                {
                    "type": session.start_type,
                    "id": str(index),
                    "payload": {
                        "query": "subscription { forever }",
                        "variables": {"junk": junk},
                        "extensions": {"junk": junk},
                    },
                }
            )
        await session.nothing(0.3)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Kept, the junk would be 20 x 2 x 30,000 lists (over 100 MB); only the
    # subscriptions themselves are left.
    assert held < 10 * 1024 * 1024, held
    await session.close()
