"""Resumable subscriptions used by the tests (and served by the scale-out replay server)."""

from __future__ import annotations

from typing import Self

import strawberry

import channels_graphql_typed as cgt
from tests.schema import Query


# --8<-- [start:replay]
class OnTick(cgt.Subscription[int]):
    """Ticks of one room, resumable."""

    replay = cgt.Replay(events=50)
    number: int

    @classmethod
    async def subscribe(cls, info: cgt.Info, room: str) -> list[str]:
        return [room]

    @classmethod
    async def publish(cls, payload: int, info: cgt.Info, room: str) -> Self | cgt.Skip:
        if payload < 0:
            return cgt.SKIP
        return cls(number=payload)


# --8<-- [end:replay]


class OnPlainTick(cgt.Subscription[int]):
    """Ticks, not resumable."""

    number: int

    @classmethod
    async def publish(cls, payload: int, info: cgt.Info) -> Self:
        return cls(number=payload)


class OnCounter(cgt.Subscription[int]):
    """A counter of one room, resumable with a long window."""

    replay = cgt.Replay(events=10_000)
    number: int

    @classmethod
    async def subscribe(cls, info: cgt.Info, room: str) -> list[str]:
        return [room]

    @classmethod
    async def publish(cls, payload: int, info: cgt.Info, room: str) -> Self:
        return cls(number=payload)


@strawberry.type
class Subscription:
    on_tick = OnTick.field()
    on_plain_tick = OnPlainTick.field()
    on_counter = OnCounter.field()


class ReplayConsumer(cgt.GraphqlWsConsumer):
    schema = strawberry.Schema(query=Query, subscription=Subscription)
    confirm_subscriptions = True
