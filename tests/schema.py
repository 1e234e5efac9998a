"""A small schema exercising every kind of resolver the consumer must handle."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator  # noqa: TC003 (Strawberry reads it at runtime)

import strawberry

from channels_graphql_typed import Context

Info = strawberry.Info[Context, None]


class CounterContext(Context):
    """A context subclass with a typed attribute, as users declare them."""

    counter: int = 0


@strawberry.type
class TreeNode:
    """A node whose children are made on demand: nested lists that grow a result
    geometrically from a tiny query."""

    label: str

    @strawberry.field
    async def children(self, count: int) -> list[TreeNode]:
        return [TreeNode(label=f"{self.label}.{index}") for index in range(count)]


@strawberry.type
class Query:
    @strawberry.field
    async def rows(self, count: int, width: int = 10) -> list[str]:
        return ["x" * width] * count

    @strawberry.field
    async def length(self, items: list[str]) -> int:
        return len(items)

    @strawberry.field
    async def tree(self) -> TreeNode:
        return TreeNode(label="root")

    @strawberry.field
    async def hello(self, name: str = "world") -> str:
        return f"Hello, {name}!"

    @strawberry.field
    def sync_sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return threading.current_thread().name

    @strawberry.field
    async def async_sleep(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @strawberry.field
    def thread_name(self) -> str:
        return threading.current_thread().name

    @strawberry.field
    async def loop_thread_name(self) -> str:
        return threading.current_thread().name

    @strawberry.field
    def fail(self) -> str | None:
        raise ValueError("resolver failed on purpose")

    @strawberry.field
    def context_visits(self, info: Info) -> int:
        info.context["visits"] = info.context.get("visits", 0) + 1
        visits: int = info.context["visits"]
        return visits

    @strawberry.field
    def connection_param(self, info: Info, key: str) -> str | None:
        value = info.context.connection_params.get(key)
        return None if value is None else str(value)

    @strawberry.field
    def channel_name(self, info: Info) -> str:
        return info.context.channel_name

    @strawberry.field
    def notes(self) -> list[str]:
        from tests.app.models import Note

        return [note.text for note in Note.objects.order_by("id")]


@strawberry.type
class Mutation:
    @strawberry.mutation
    def add_note(self, text: str) -> int:
        from tests.app.models import Note

        return Note.objects.create(text=text).pk

    @strawberry.mutation
    async def echo(self, text: str) -> str:
        return text


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def count(self, to: int, delay: float = 0.0) -> AsyncGenerator[int, None]:
        for number in range(1, to + 1):
            if delay:
                await asyncio.sleep(delay)
            yield number

    @strawberry.subscription
    async def forever(self) -> AsyncGenerator[int, None]:
        await asyncio.Event().wait()
        yield 0  # pragma: no cover


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
