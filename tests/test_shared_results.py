"""Results shared between subscribers: executed and serialized once when that is safe."""

from __future__ import annotations

import asyncio

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, GraphqlHttpConsumer
from tests.helpers import WsSession
from tests.subscriptions import (
    ROOT_RESOLUTIONS,
    CountingConsumer,
    Measurement,
    OnMeasurement,
    OnPersonal,
)

app = CountingConsumer.as_asgi()
MEASUREMENT = "subscription($s: [String!]) { onMeasurement(sensors: $s) { sensor value } }"


async def subscribed(query: str, variables: dict[str, object] | None, protocol: str) -> WsSession:
    session = await WsSession.open(app, protocol)
    await session.start("s", query, variables)
    assert await session.result("s") == {"data": None}
    return session


async def test_identical_subscriptions_execute_once_per_broadcast() -> None:
    sessions = [
        await subscribed(MEASUREMENT, {"s": ["t"]}, (GRAPHQL_TRANSPORT_WS, GRAPHQL_WS)[i % 2])
        for i in range(10)
    ]
    ROOT_RESOLUTIONS.clear()
    for value in range(2000, 2003):
        await OnMeasurement.broadcast(payload=Measurement(sensor="t", value=value), group="t")
    for session in sessions:
        for value in range(2000, 2003):
            assert await session.result("s") == {
                "data": {"onMeasurement": {"sensor": "t", "value": value}}
            }
        await session.close()
    assert ROOT_RESOLUTIONS == ["onMeasurement"] * 3


async def test_different_variables_are_executed_separately() -> None:
    first = await subscribed(MEASUREMENT, {"s": ["t"]}, GRAPHQL_TRANSPORT_WS)
    second = await subscribed(MEASUREMENT, {"s": ["t", "u"]}, GRAPHQL_TRANSPORT_WS)
    third = await subscribed(MEASUREMENT.replace("sensor value", "value"), None, GRAPHQL_WS)
    ROOT_RESOLUTIONS.clear()
    # A value no other test broadcasts: results are cached per executor.
    await OnMeasurement.broadcast(payload=Measurement(sensor="t", value=1001))
    expected = {"data": {"onMeasurement": {"sensor": "t", "value": 1001}}}
    assert await first.result("s") == expected
    assert await second.result("s") == expected
    assert await third.result("s") == {"data": {"onMeasurement": {"value": 1001}}}
    assert len(ROOT_RESOLUTIONS) == 3
    for session in (first, second, third):
        await session.close()


async def test_context_dependent_fields_are_executed_per_subscriber() -> None:
    query = "subscription { onPersonal { value viewer } }"
    sessions = [await subscribed(query, None, GRAPHQL_TRANSPORT_WS) for _ in range(3)]
    channels = []
    for session in sessions:
        name = (await session.query("c", "{ channelName }"))["data"]["channelName"]
        channels.append(name)
    ROOT_RESOLUTIONS.clear()
    await OnPersonal.broadcast(payload=7)
    for session, channel in zip(sessions, channels, strict=True):
        assert await session.result("s") == {
            "data": {"onPersonal": {"value": 7, "viewer": channel}}
        }
        await session.close()
    assert ROOT_RESOLUTIONS == ["onPersonal"] * 3


def test_only_plain_values_make_events_comparable() -> None:
    import dataclasses
    import datetime

    from channels_graphql_typed._result_sharing import event_key
    from tests.app.models import Note

    @dataclasses.dataclass
    class Event:
        value: object

    plain = Event(value=(1, "a", datetime.date(2026, 1, 1), None))
    assert event_key(plain) == event_key(Event(value=(1, "a", datetime.date(2026, 1, 1), None)))
    # Two instances of one row are equal to Django whatever their field values: such an
    # event must never share a result.
    assert event_key(Event(value=Note(pk=1, text="old"))) is None
    assert event_key(Event(value=[1, 2])) is None


async def test_middleware_turns_sharing_off_unless_declared_context_free() -> None:
    from channels_graphql_typed import GraphqlWsConsumer
    from tests.subscriptions import count_root_resolutions
    from tests.subscriptions import schema as typed_schema

    class MaskingConsumer(GraphqlWsConsumer):
        schema = typed_schema
        confirm_subscriptions = True
        middleware = (count_root_resolutions,)

    sessions = [
        await WsSession.open(MaskingConsumer.as_asgi(), GRAPHQL_TRANSPORT_WS) for _ in range(3)
    ]
    for session in sessions:
        await session.start("s", MEASUREMENT, {"s": ["m"]})
        assert await session.result("s") == {"data": None}
    ROOT_RESOLUTIONS.clear()
    await OnMeasurement.broadcast(payload=Measurement(sensor="m", value=5), group="m")
    for session in sessions:
        assert (await session.result("s"))["data"] == {"onMeasurement": {"sensor": "m", "value": 5}}
        await session.close()
    assert ROOT_RESOLUTIONS == ["onMeasurement"] * 3  # once per subscriber


def test_events_that_render_differently_never_share_a_key() -> None:
    import dataclasses
    import datetime
    import decimal

    from channels_graphql_typed._result_sharing import event_key

    @dataclasses.dataclass
    class Event:  # a TypedSubscriptionResult, as every typed subscription's result is
        value: object

        def _cgt_event_key(self) -> tuple[object, ...]:
            return (self.value,)

    @dataclasses.dataclass
    class Untyped:
        value: object

    assert event_key(Untyped(1)) is None  # not a typed subscription's result: not shared
    pairs = [
        (1, True),
        (decimal.Decimal("1.5"), decimal.Decimal("1.50")),
        (0.0, -0.0),
        (
            datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.UTC),
            datetime.datetime(
                2026, 1, 1, 13, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
            ),
        ),
        ((1, 1), (1, True)),
    ]
    for first, second in pairs:
        assert first == second
        assert event_key(Event(first)) != event_key(Event(second)), (first, second)


def test_the_shared_key_holds_digests_not_the_clients_texts() -> None:
    executor = CountingConsumer.executor()

    def key(variables: dict[str, list[str]]) -> tuple[object, ...]:
        prepared = asyncio.run(executor.prepare({"query": MEASUREMENT, "variables": variables}))
        assert not isinstance(prepared, list)
        shared = executor.sharing.operation_key(prepared)
        assert shared is not None
        return shared

    huge = {"s": ["x" * 100_000]}
    # The cache holds up to a thousand keys: none may keep a client's (huge) variables.
    assert all(len(repr(part)) < 200 for part in key(huge))
    assert key(huge) == key({"s": ["x" * 100_000]})
    assert key(huge) != key({"s": ["x" * 99_999]})
    assert key({"s": ["a"]}) != key({"s": ["b"]})


async def test_a_custom_scalar_renders_for_each_subscriber(subprotocol: str) -> None:
    import datetime

    from tests.subscriptions import Appointment, OnAppointment, ZonedConsumer

    # Its serializer may read the connection (here: the viewer's time zone): a result
    # that reaches it is executed for each subscriber, never shared.
    sessions = []
    for offset in (1, 9, 1):
        session = await WsSession.open(
            ZonedConsumer.as_asgi(), subprotocol, payload={"utcOffset": offset}
        )
        await session.start("s", "subscription { onAppointment { at } }")
        assert await session.result("s") == {"data": None}
        sessions.append(session)
    ROOT_RESOLUTIONS.clear()
    at = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
    await OnAppointment.broadcast(payload=Appointment(at=at, temperature=20.5))
    for session, rendered in zip(
        sessions,
        ("2026-03-01T13:00:00+01:00", "2026-03-01T21:00:00+09:00", "2026-03-01T13:00:00+01:00"),
        strict=True,
    ):
        assert await session.result("s") == {"data": {"onAppointment": {"at": rendered}}}
        await session.close()
    assert ROOT_RESOLUTIONS == ["onAppointment"] * 3


async def test_a_declared_context_free_scalar_is_shared(subprotocol: str) -> None:
    import datetime

    from tests.subscriptions import (
        Appointment,
        CelsiusDeclaredConsumer,
        OnTemperature,
        ZonedConsumer,
    )

    at = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
    # Values no other run broadcasts: results are cached per executor.
    shift = 0.25 if subprotocol == GRAPHQL_WS else 0.0
    for consumer, executions, temperature in (
        (ZonedConsumer, 3, 21.5 + shift),
        (CelsiusDeclaredConsumer, 1, 22.5 + shift),
    ):
        sessions = []
        for _ in range(3):
            session = await WsSession.open(consumer.as_asgi(), subprotocol)
            await session.start("s", "subscription { onTemperature { temperature } }")
            assert await session.result("s") == {"data": None}
            sessions.append(session)
        ROOT_RESOLUTIONS.clear()
        await OnTemperature.broadcast(payload=Appointment(at=at, temperature=temperature))
        for session in sessions:
            assert await session.result("s") == {
                "data": {"onTemperature": {"temperature": f"{temperature} C"}}
            }
            await session.close()
        assert len(ROOT_RESOLUTIONS) == executions, (consumer, ROOT_RESOLUTIONS)


def test_context_free_scalars_must_name_scalars_of_the_schema() -> None:
    import pytest

    from channels_graphql_typed._execution import GraphqlExecutor
    from tests.subscriptions import zoned_schema

    GraphqlExecutor(zoned_schema, context_free_scalars=["Celsius", "LocalDateTime"])
    with pytest.raises(ValueError, match="no scalar named 'Celcius'"):
        GraphqlExecutor(zoned_schema, context_free_scalars=["Celcius"])
    with pytest.raises(ValueError, match="no scalar named 'OnAppointment'"):
        GraphqlExecutor(zoned_schema, context_free_scalars=["OnAppointment"])


class CountingHttpConsumer(GraphqlHttpConsumer):
    """CountingConsumer's settings, over HTTP."""

    schema = CountingConsumer.schema
    confirm_subscriptions = True
    middleware = CountingConsumer.middleware
    share_results_under_middleware = True


class DeeperCountingHttpConsumer(CountingHttpConsumer):
    max_query_depth = 30


def test_server_classes_with_the_same_settings_share_one_executor() -> None:
    assert CountingHttpConsumer.executor() is CountingConsumer.executor()
    # Another setting, another executor (its document cache and shared results apart).
    assert DeeperCountingHttpConsumer.executor() is not CountingConsumer.executor()


async def test_subscribers_of_every_transport_share_results() -> None:
    from tests.http.test_consumer import Stream

    websocket = await subscribed(MEASUREMENT, {"s": ["w"]}, GRAPHQL_TRANSPORT_WS)
    stream = Stream(
        CountingHttpConsumer.as_asgi(), {"query": MEASUREMENT, "variables": {"s": ["w"]}}
    )
    assert (await stream.open())["status"] == 200
    assert await stream.event() == ("next", {"data": None})  # confirmed: in its groups
    ROOT_RESOLUTIONS.clear()
    await OnMeasurement.broadcast(payload=Measurement(sensor="w", value=4242), group="w")
    expected = {"data": {"onMeasurement": {"sensor": "w", "value": 4242}}}
    assert await websocket.result("s") == expected
    assert await stream.event() == ("next", expected)
    assert ROOT_RESOLUTIONS == ["onMeasurement"]
    await stream.communicator.send_input({"type": "http.disconnect"})
    await stream.communicator.wait(3)
    await websocket.close()
