"""Consumer classes and the ASGI application used by the tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.urls import re_path

from channels_graphql_typed import (
    ConnectionRejected,
    GraphqlHttpConsumer,
    GraphqlWsConsumer,
    OperationRejected,
)
from tests.incremental_schema import schema as incremental_schema
from tests.schema import CounterContext, schema
from tests.subscriptions import schema as subscription_schema

if TYPE_CHECKING:
    from channels_graphql_typed._protocol.messages import OperationPayload

HEARTBEAT_INTERVAL = 0.2
"""Seconds between SchemaHttpConsumer's multipart heartbeats."""


class SchemaConsumer(GraphqlWsConsumer):
    """The test schema with default settings."""

    schema = schema


class HookConsumer(GraphqlWsConsumer):
    """Exercises every hook: token check, ack payload, operation veto, disconnect."""

    schema = schema
    context_class = CounterContext
    disconnects: list[int] = []

    async def on_connect(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        if payload.get("token") != "secret":
            raise ConnectionRejected({"message": "Bad token"})
        return {"welcome": True}

    async def on_operation(self, id: str, payload: OperationPayload) -> None:
        if "forbidden" in payload["query"]:
            raise OperationRejected("This operation is not allowed")
        assert isinstance(self.context, CounterContext)
        self.context.counter += 1

    async def on_disconnect(self, code: int) -> None:
        self.disconnects.append(code)


class PingConsumer(GraphqlWsConsumer):
    schema = schema
    send_ping_every = 0.05


class OrderedConsumer(GraphqlWsConsumer):
    schema = schema
    strict_ordering = True


class LimitedConsumer(GraphqlWsConsumer):
    schema = schema
    max_operations_per_connection = 2
    connection_init_wait_timeout = 0.2


class LegacyOnlyConsumer(GraphqlWsConsumer):
    schema = schema
    subprotocols = ("graphql-ws",)


class SingleThreadConsumer(GraphqlWsConsumer):
    schema = schema
    max_worker_threads = 1


websocket_routes = [SchemaConsumer.as_route("graphql/"), HookConsumer.as_route("hooks/")]


class SchemaHttpConsumer(GraphqlHttpConsumer):
    """The subscription test schema over HTTP and SSE, with default settings but for
    multipart heartbeats, frequent enough that the clients' subscriptions get some."""

    schema = subscription_schema
    multipart_heartbeat_interval = HEARTBEAT_INTERVAL


class IncrementalHttpConsumer(GraphqlHttpConsumer):
    """A schema with ``@defer`` and ``@stream`` over HTTP, SSE and multipart."""

    schema = incremental_schema


def application() -> ProtocolTypeRouter:
    """GraphQL over HTTP and SSE at /graphql/ through SchemaHttpConsumer (at
    /incremental/ through IncrementalHttpConsumer), other HTTP through Django, WebSocket
    at /graphql/ through SchemaConsumer."""
    # Django's stubs type re_path() for views only (as_route's docstring says more).
    django: Any = get_asgi_application()
    everything_else: Any = re_path(r"", django)
    return ProtocolTypeRouter(
        {
            "http": URLRouter(
                [
                    SchemaHttpConsumer.as_route("graphql/"),
                    IncrementalHttpConsumer.as_route("incremental/"),
                    everything_else,
                ]
            ),
            "websocket": URLRouter(websocket_routes),
        }
    )


def shout(next_: Any, root: Any, info: Any, **args: Any) -> Any:
    """A graphql-core middleware: upper-cases the string results of the `hello` field."""
    result = next_(root, info, **args)
    if info.field_name != "hello":
        return result

    async def upper() -> Any:
        value = await result
        return value.upper()

    return upper()


class MiddlewareConsumer(GraphqlWsConsumer):
    schema = schema
    middleware = (shout,)


class TinyCacheConsumer(GraphqlWsConsumer):
    schema = schema
    document_cache_size = 2
