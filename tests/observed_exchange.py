"""A scripted exchange against an in-memory consumer, for the observability tests.

One socket subscribes (confirmed), runs a named query, a mutation and an invalid
document, gets two broadcasts, of which the subscription skips the odd one, then closes.
:func:`main` runs it in a process of its own and prints the modules it imported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from typing import Final, Self

import strawberry

import channels_graphql_typed as cgt
from channels_graphql_typed._result_sharing import SharedResultCache
from tests.helpers import WsSession
from tests.schema import Mutation, Query

SUBSCRIPTION: Final = "subscription Readings { onReading(skipOdd: true) { value } }"
QUERY: Final = "query Greeting { hello }"
MUTATION: Final = 'mutation { echo(text: "x") }'


@dataclasses.dataclass
class Reading:
    value: int


class OnReading(cgt.Subscription[Reading]):
    value: int

    @classmethod
    async def subscribe(cls, info: cgt.Info, skip_odd: bool = False) -> list[str]:
        return []

    @classmethod
    async def publish(
        cls, payload: Reading, info: cgt.Info, skip_odd: bool = False
    ) -> Self | cgt.Skip:
        if skip_odd and payload.value % 2:
            return cgt.SKIP
        return cls(value=payload.value)


@strawberry.type
class Subscription:
    on_reading = OnReading.field()


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)


class ObservedConsumer(cgt.GraphqlWsConsumer):
    schema = schema
    confirm_subscriptions = True


class ObservedHttpConsumer(cgt.GraphqlHttpConsumer):
    schema = schema


async def scripted_exchange(subprotocol: str = cgt.GRAPHQL_TRANSPORT_WS) -> None:
    """The scripted exchange (see the module docstring)."""
    # Each exchange's one event is executed: no result shared from an earlier exchange.
    ObservedConsumer.executor().sharing.cache = SharedResultCache()
    socket = await WsSession.open(ObservedConsumer.as_asgi(), subprotocol)
    await socket.start("s", SUBSCRIPTION)
    assert await socket.result("s") == {"data": None}
    assert await socket.query("q", QUERY) == {"data": {"hello": "Hello, world!"}}
    assert await socket.query("m", MUTATION) == {"data": {"echo": "x"}}
    await socket.start("bad", "query { nothing }")
    assert (await socket.receive())["type"] == "error"
    await OnReading.broadcast(payload=Reading(1))
    await OnReading.broadcast(payload=Reading(2))
    assert await socket.result("s") == {"data": {"onReading": {"value": 2}}}
    await socket.stop("s")
    if subprotocol == cgt.GRAPHQL_WS:
        await socket.completed("s")  # the legacy protocol confirms a stop
    await socket.close()


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    asyncio.run(scripted_exchange())
    print(json.dumps(sorted(sys.modules)))


if __name__ == "__main__":
    main()
