"""DjangoChannelsGraphqlWs's README example, ported to this library (the migration guide)."""

from __future__ import annotations

import dataclasses
from typing import Any, Self

import strawberry

import channels_graphql_typed as cgt


# --8<-- [start:subscription]
@dataclasses.dataclass
class Event:  # what broadcast() carries: a declared type instead of a free dict
    text: str
    sender_channel: str = ""


class MySubscription(cgt.Subscription[Event]):
    """Simple GraphQL subscription."""

    notification_queue_limit = 64  # keep only the latest 64 pending notifications

    event: str  # the result's field, annotated instead of graphene.String()

    @classmethod
    async def subscribe(cls, info: cgt.Info, arg1: str = "", arg2: str = "") -> list[str]:
        return ["group42"]  # the arguments come from this signature, not from class Arguments

    @classmethod
    async def publish(
        cls, payload: Event, info: cgt.Info, arg1: str = "", arg2: str = ""
    ) -> Self | cgt.Skip:
        if payload.sender_channel == info.context.channel_name:
            return cgt.SKIP  # no notification for this subscriber
        return cls(event=payload.text)


# --8<-- [end:subscription]


@strawberry.type
class Query:
    @strawberry.field
    async def value(self) -> str:
        return "test"


@strawberry.type
class Subscription:
    my_subscription = MySubscription.field()


schema = strawberry.Schema(query=Query, subscription=Subscription)


# --8<-- [start:consumer]
def my_middleware(next_middleware: Any, root: Any, info: Any, **arguments: Any) -> Any:
    return next_middleware(root, info, **arguments)  # graphql-core middleware, as before


class MyGraphqlWsConsumer(cgt.GraphqlWsConsumer):
    schema = schema
    send_ping_every = 42  # send_keepalive_every in 0.x
    strict_ordering = True
    confirm_subscriptions = True
    subscription_confirmation_message = {"data": None}
    middleware = (my_middleware,)
    max_worker_threads = 4

    async def on_connect(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return None  # raise cgt.ConnectionRejected(...) to refuse the connection


# --8<-- [end:consumer]
