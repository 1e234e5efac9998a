"""A schema with ``@defer`` and ``@stream`` (Strawberry's
``enable_experimental_incremental_execution``), for the incremental delivery tests:
fields that are slow, that fail, that stream, and one that waits until told to go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator  # noqa: TC003 (Strawberry reads it at run time)
from typing import cast

import strawberry
from strawberry.extensions import MaskErrors
from strawberry.schema.config import StrawberryConfig

CONFIG = StrawberryConfig(enable_experimental_incremental_execution=True)

HELD = asyncio.Event()
"""Set by a test to let ``held`` resolve."""
HELD_CANCELLED: list[str] = []
"""What ``held`` recorded when it was cancelled (its client left)."""


async def _words(count: int) -> AsyncGenerator[str, None]:
    for index in range(count):
        await asyncio.sleep(0.01)
        yield f"word{index}"


@strawberry.type
class Book:
    id: int

    @strawberry.field
    async def title(self) -> str:
        await asyncio.sleep(0.01)
        return f"Book {self.id}"


@strawberry.type
class Query:
    @strawberry.field
    async def shelf(self) -> str:
        return "fiction"

    @strawberry.field
    async def books(self, count: int = 3) -> list[Book]:
        return [Book(id=index) for index in range(count)]

    @strawberry.field
    def words(self, count: int = 3) -> list[str]:
        # A list in the schema, an async iterator at run time: what @stream streams.
        return cast("list[str]", _words(count))

    @strawberry.field
    async def broken(self) -> str | None:
        raise ValueError("the database is on fire")

    @strawberry.field
    async def held(self) -> str:
        try:
            await HELD.wait()
        except asyncio.CancelledError:
            HELD_CANCELLED.append("held")
            raise
        return "released"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[Book, None]:
        yield Book(id=1)


schema = strawberry.Schema(query=Query, subscription=Subscription, config=CONFIG)
masked_schema = strawberry.Schema(query=Query, config=CONFIG, extensions=[MaskErrors])
