"""The predecessor's README example, ported (examples/migrating/ported.py), runs."""

from __future__ import annotations

from channels_graphql_typed.testing import graphql_ws_client
from examples.migrating.ported import Event, MyGraphqlWsConsumer, MySubscription


async def test_the_ported_example() -> None:
    # --8<-- [start:client]
    async with graphql_ws_client(MyGraphqlWsConsumer.as_asgi()) as client:
        result = await client.execute("query { value }")
        assert result.data == {"value": "test"}  # a GraphqlWsResult, not a dict
        listen = client.subscribe('subscription { mySubscription(arg1: "a") { event } }')
        async with listen as stream:
            # confirm_subscriptions: the first result is the confirmation message.
            assert (await anext(aiter(stream))).data is None
            await MySubscription.broadcast(
                payload=Event("Something has happened!"), group="group42"
            )
            item = await anext(aiter(stream))
            assert item.data == {"mySubscription": {"event": "Something has happened!"}}
    # --8<-- [end:client]
