"""Execution details: middleware, the document cache, the context's scope-backed fields."""

from __future__ import annotations

from typing import Any

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, Context
from channels_graphql_typed._document_cache import DocumentCache
from tests.consumers import MiddlewareConsumer, SchemaConsumer, TinyCacheConsumer
from tests.helpers import WsSession
from tests.schema import schema


async def test_middleware_applies_to_every_operation(subprotocol: str) -> None:
    session = await WsSession.open(MiddlewareConsumer.as_asgi(), subprotocol)
    assert await session.query("1", '{ hello(name: "you") }') == {"data": {"hello": "HELLO, YOU!"}}
    # Sync resolvers still run in threads under middleware.
    payload = await session.query("2", "{ threadName }")
    assert payload["data"]["threadName"].startswith("graphql-resolver")
    await session.close()


def test_document_cache_parses_once_and_is_bounded() -> None:
    cache = DocumentCache(schema._schema, max_size=2)
    first = cache.get("{ hello }")
    assert cache.get("{ hello }") is first
    cache.get("{ threadName }")
    cache.get("{ loopThreadName }")
    assert len(cache) == 2
    assert cache.get("{ hello }") is not first  # evicted, parsed again
    invalid = cache.get("{ nope }")
    assert invalid.document is None
    assert invalid.errors
    assert cache.get("{ nope }") is invalid


async def test_document_cache_is_shared_by_connections_of_a_class() -> None:
    one = await WsSession.open(TinyCacheConsumer.as_asgi(), GRAPHQL_TRANSPORT_WS)
    two = await WsSession.open(TinyCacheConsumer.as_asgi(), GRAPHQL_TRANSPORT_WS)
    await one.query("1", "{ hello }")
    await two.query("1", "{ hello }")
    documents = TinyCacheConsumer.executor().documents
    assert len(documents) == 1
    assert SchemaConsumer.executor().documents is not documents
    await one.close()
    await two.close()


def test_context_reads_user_and_session_from_the_scope() -> None:
    scope: dict[str, Any] = {"type": "websocket", "user": "alice", "session": {"k": 1}}
    context = Context(scope=scope, channel_name="c", connection_params={"token": "t"})
    assert context.user == "alice"
    assert context.session == {"k": 1}
    assert context.connection_params == {"token": "t"}
    bare = Context(scope={"type": "websocket"}, channel_name="c")
    assert bare.user is None
    assert bare.session is None
    assert bare.connection_params == {}
    bare["key"] = "value"
    assert "key" in bare
    assert bare["key"] == "value"
    assert bare.get("missing", 5) == 5
    del bare["key"]
    assert list(bare) == []
