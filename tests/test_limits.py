"""Resource limits: document size and depth, introspection, init payload size."""

from __future__ import annotations

import time

import pytest

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, GraphqlWsConsumer
from tests.consumers import SchemaConsumer
from tests.helpers import WsSession
from tests.schema import schema

INTROSPECTION = """
query IntrospectionQuery { __schema { queryType { name } types { ...FullType } } }
fragment FullType on __Type { kind name fields(includeDeprecated: true) {
  name args { ...InputValue } type { ...TypeRef } } }
fragment InputValue on __InputValue { name type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  } } } } } } } }
"""


class NoIntrospectionConsumer(GraphqlWsConsumer):
    schema = schema
    introspection = False


class SmallLimitsConsumer(GraphqlWsConsumer):
    schema = schema
    max_connection_init_payload_size = 100
    max_message_size = 1000


async def operation_error(session: WsSession, query: str) -> str:
    await session.start("x", query)
    message = await session.receive()
    assert message["type"] == "error", message
    payload = message["payload"]
    first = payload[0] if isinstance(payload, list) else payload
    text: str = first["message"]
    return text


async def test_deep_query_is_rejected_quickly(subprotocol: str) -> None:
    session = await WsSession.open(SchemaConsumer.as_asgi(), subprotocol)
    deep = "{ " + "a { " * 100 + "b" + " }" * 100 + " }"
    started = time.perf_counter()
    await session.start("x", deep)
    message = await session.receive()
    assert message["type"] == "error"
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else payload["errors"]
    # Unknown fields are validation errors too; the depth error must be among them.
    assert any("is nested more than 32 levels deep" in error["message"] for error in errors)
    assert time.perf_counter() - started < 2
    await session.close()


async def test_depth_limit_counts_through_fragments(subprotocol: str) -> None:
    class ShallowConsumer(GraphqlWsConsumer):
        schema = schema
        max_query_depth = 1

    session = await WsSession.open(ShallowConsumer.as_asgi(), subprotocol)
    assert await session.query("ok", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    message = await operation_error(
        session, "query Deep { ...F } fragment F on Query { __schema { queryType { name } } }"
    )
    assert message == "Operation 'Deep' is nested more than 1 levels deep."
    await session.close()


async def test_default_depth_admits_the_graphiql_introspection_query(subprotocol: str) -> None:
    session = await WsSession.open(SchemaConsumer.as_asgi(), subprotocol)
    payload = await session.query("i", INTROSPECTION)
    assert payload["data"]["__schema"]["queryType"] == {"name": "Query"}
    await session.close()


async def test_huge_alias_query_is_rejected_by_the_token_limit(subprotocol: str) -> None:
    class LargeFramesConsumer(GraphqlWsConsumer):
        schema = schema
        max_message_size = 10 * 1024 * 1024

    session = await WsSession.open(LargeFramesConsumer.as_asgi(), subprotocol)
    query = "{ " + " ".join(f"a{i}: hello" for i in range(100_000)) + " }"
    started = time.perf_counter()
    message = await operation_error(session, query)
    assert "tokens" in message
    assert time.perf_counter() - started < 2
    await session.close()


async def test_introspection_can_be_disabled(subprotocol: str) -> None:
    session = await WsSession.open(NoIntrospectionConsumer.as_asgi(), subprotocol)
    message = await operation_error(session, "{ __schema { queryType { name } } }")
    assert "introspection" in message.lower()
    assert await session.query("q", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await session.close()


@pytest.mark.parametrize("subprotocol", [GRAPHQL_TRANSPORT_WS, GRAPHQL_WS])
async def test_large_init_payload_is_refused(subprotocol: str) -> None:
    session = await WsSession.open(SmallLimitsConsumer.as_asgi(), subprotocol, init=False)
    await session.send({"type": "connection_init", "payload": {"token": "x" * 200}})
    if subprotocol == GRAPHQL_TRANSPORT_WS:
        assert await session.receive_close() == (4400, "connection_init payload too large")
    else:
        assert await session.receive() == {
            "type": "connection_error",
            "payload": {"message": "connection_init payload too large"},
        }
    await session.close()


async def test_large_frame_is_refused_without_parsing(subprotocol: str) -> None:
    session = await WsSession.open(SmallLimitsConsumer.as_asgi(), subprotocol)
    await session.send_text("x" * 2000)  # not even JSON: it is never parsed
    if subprotocol == GRAPHQL_TRANSPORT_WS:
        assert await session.receive_close() == (4400, "Message too large")
    else:
        message = await session.receive()
        assert message["type"] == "error"
        assert message["payload"]["message"] == "Message too large"
        assert await session.query("q", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await session.close()
