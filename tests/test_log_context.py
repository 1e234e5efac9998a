"""Every log record of the library says which connection, operation and subscription
class it is about (logging ``extra``: ``connection_id``, ``operation_id``,
``subscription_class``)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import strawberry

import channels_graphql_typed as cgt
from tests.helpers import WsSession
from tests.schema import Query

if TYPE_CHECKING:
    import pytest


class OnAudited(cgt.Subscription[int]):
    value: int

    @classmethod
    async def unsubscribed(cls, info: cgt.Info) -> None:
        raise RuntimeError("the audit trail is unavailable")


@strawberry.type
class Subscription:
    on_audited = OnAudited.field()


@strawberry.type
class Mutation:
    @strawberry.mutation
    def connection_id(self, info: strawberry.Info) -> str:
        context: cgt.Context = info.context
        return context.connection_id


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)


class AuditedConsumer(cgt.GraphqlWsConsumer):
    schema = schema
    confirm_subscriptions = True

    async def on_operation(self, id: str, payload: cgt.OperationPayload) -> None:
        if "refuse" in payload["query"]:
            raise LookupError("the hook has a bug")


def where(record: logging.LogRecord) -> tuple[object, object, object]:
    # Attributes that logging's ``extra`` sets on the record: unknown to LogRecord's type.
    return (record.connection_id, record.operation_id, record.subscription_class)  # type: ignore[attr-defined]


async def test_records_name_the_connection_operation_and_subscription_class(
    subprotocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = [await WsSession.open(AuditedConsumer.as_asgi(), subprotocol) for _ in range(2)]
    ids = []
    for session in sessions:
        await session.start("who", "mutation { connectionId }")
        ids.append((await session.result("who"))["data"]["connectionId"])
        await session.completed("who")
    assert ids[0] != ids[1]
    assert all(len(connection) == 16 for connection in ids)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="channels_graphql_typed"):
        first, second = sessions
        await first.start("audit-1", "subscription { onAudited { value } }")
        assert await first.result("audit-1") == {"data": None}
        await first.stop("audit-1")
        await second.start("bad", "query refuse { __typename }")
        assert (await second.receive())["type"] == "error"
        if subprotocol == cgt.GRAPHQL_WS:
            await first.completed("audit-1")  # the legacy protocol confirms a stop
        for _ in range(100):  # until the stopped subscription's unsubscribed has run
            if any("unsubscribed raised" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
    records = {record.getMessage(): record for record in caplog.records}
    unsubscribed = records["OnAudited.unsubscribed raised"]
    assert where(unsubscribed) == (ids[0], "audit-1", "OnAudited")
    hook = records["on_operation raised; operation 'bad' refused"]
    assert where(hook) == (ids[1], "bad", None)
    for session in sessions:
        await session.close()


def test_records_outside_any_connection_have_the_attributes_as_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from channels_graphql_typed._log import logger

    with caplog.at_level(logging.INFO, logger="channels_graphql_typed"):
        logger.info("process-wide")
    (record,) = caplog.records
    assert where(record) == (None, None, None)


def test_the_readmes_json_logging_recipe_writes_the_attributes() -> None:
    import contextvars
    import io
    import json

    from channels_graphql_typed import _log
    from examples.json_logging import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    library = logging.getLogger("channels_graphql_typed")
    library.addHandler(handler)

    def in_an_operation() -> None:
        _log.connection_id.set("c0ffee")
        _log.operation_id.set("1")
        _log.logger.warning("slow subscriber")

    try:
        contextvars.copy_context().run(in_an_operation)
    finally:
        library.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "slow subscriber"
    assert (line["connection_id"], line["operation_id"]) == ("c0ffee", "1")
    assert "subscription_class" not in line  # None: not written
