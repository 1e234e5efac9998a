"""One query, one mutation and one subscription, served over WebSocket, HTTP and SSE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator  # noqa: TC003 (Strawberry reads it at runtime)

import strawberry

import channels_graphql_typed as cgt


@strawberry.type
class Query:
    @strawberry.field
    async def hello(self, name: str = "world") -> str:
        return f"Hello, {name}!"


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def echo(self, text: str) -> str:
        return text


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def count(self, to: int = 3, delay: float = 0.0) -> AsyncGenerator[int, None]:
        for number in range(1, to + 1):
            await asyncio.sleep(delay)
            yield number


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)


# --8<-- [start:servers]
class MinimalServer(cgt.GraphqlServer):
    """The schema and its settings, declared once for every transport."""

    schema = schema
    max_query_depth = 10


class MinimalConsumer(MinimalServer, cgt.GraphqlWsConsumer):
    """GraphQL over WebSocket."""


class MinimalHttpConsumer(MinimalServer, cgt.GraphqlHttpConsumer):
    """GraphQL over HTTP and Server-Sent Events."""

    sse_heartbeat_interval = 15


# --8<-- [end:servers]
