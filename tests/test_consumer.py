"""The consumer end to end in memory, on both subprotocols where a behaviour applies to both."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, GraphqlWsConsumer
from tests.consumers import (
    HookConsumer,
    LegacyOnlyConsumer,
    LimitedConsumer,
    OrderedConsumer,
    PingConsumer,
    SchemaConsumer,
    SingleThreadConsumer,
)
from tests.helpers import WsSession

app = SchemaConsumer.as_asgi()


# --- subprotocol negotiation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ([GRAPHQL_TRANSPORT_WS, GRAPHQL_WS], GRAPHQL_TRANSPORT_WS),
        ([GRAPHQL_WS, GRAPHQL_TRANSPORT_WS], GRAPHQL_WS),
        (["unknown", GRAPHQL_WS], GRAPHQL_WS),
    ],
)
async def test_first_offered_supported_subprotocol_wins(offered: list[str], chosen: str) -> None:
    communicator = WebsocketCommunicator(app, "/graphql/", subprotocols=offered)
    connected, subprotocol = await communicator.connect()
    assert connected
    assert subprotocol == chosen
    await communicator.disconnect()


@pytest.mark.parametrize("offered", [[], ["unknown"], [GRAPHQL_TRANSPORT_WS]])
async def test_no_acceptable_subprotocol_closes_4406(offered: list[str]) -> None:
    consumer = app if offered != [GRAPHQL_TRANSPORT_WS] else LegacyOnlyConsumer.as_asgi()
    communicator = WebsocketCommunicator(consumer, "/graphql/", subprotocols=offered)
    connected, _ = await communicator.connect()
    assert connected
    output = await communicator.receive_output()
    assert output == {
        "type": "websocket.close",
        "code": 4406,
        "reason": "Subprotocol not acceptable",
    }
    await communicator.disconnect()


# --- operations ------------------------------------------------------------------------------


async def test_query_answers_result_then_complete(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    payload = await session.query("1", "query Q($n: String!) { hello(name: $n) }", {"n": "you"})
    assert payload == {"data": {"hello": "Hello, you!"}}
    assert await session.nothing()
    await session.close()


async def test_mutation_answers_result_then_complete(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    payload = await session.query("m", 'mutation { echo(text: "hi") }')
    assert payload == {"data": {"echo": "hi"}}
    await session.close()


async def test_operation_name_selects_the_operation(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    await session.start("1", 'query A { hello } query B { hello(name: "B") }', None, "B")
    assert await session.result("1") == {"data": {"hello": "Hello, B!"}}
    await session.completed("1")
    await session.close()


async def test_subscription_streams_then_completes(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    await session.start("s", "subscription { count(to: 3) }")
    for number in (1, 2, 3):
        assert await session.result("s") == {"data": {"count": number}}
    await session.completed("s")
    await session.close()


async def test_resolver_exception_becomes_errors_with_partial_data(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    payload = await session.query("1", "{ hello fail }")
    assert payload["data"] == {"hello": "Hello, world!", "fail": None}
    assert payload["errors"][0]["message"] == "resolver failed on purpose"
    assert payload["errors"][0]["path"] == ["fail"]
    await session.close()


async def test_validation_error_transport_ws_answers_error_without_complete() -> None:
    session = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
    await session.start("1", "{ noSuchField }")
    message = await session.receive()
    assert message["type"] == "error"
    assert message["id"] == "1"
    assert isinstance(message["payload"], list)
    assert "noSuchField" in message["payload"][0]["message"]
    assert await session.nothing()
    # The id is free again.
    assert await session.query("1", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await session.close()


async def test_parse_error_transport_ws_answers_error() -> None:
    session = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
    await session.start("1", "{ hello")
    message = await session.receive()
    assert message["type"] == "error"
    assert "Syntax Error" in message["payload"][0]["message"]
    assert await session.nothing()
    await session.close()


async def test_validation_error_legacy_answers_error_with_all_errors() -> None:
    session = await WsSession.open(app, GRAPHQL_WS)
    await session.start("1", "{ noSuchField otherMissing }")
    message = await session.receive()
    assert message["type"] == "error"
    assert message["id"] == "1"
    assert "noSuchField" in message["payload"]["message"]
    assert len(message["payload"]["errors"]) == 2
    assert await session.nothing()
    await session.close()


async def test_unknown_operation_name_is_an_operation_error(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    await session.start("1", "query A { hello }", None, "Missing")
    message = await session.receive()
    assert message["type"] == "error"
    await session.close()


async def test_variable_coercion_error_is_a_result(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    payload = await session.query("1", "query Q($n: String!) { hello(name: $n) }", {"n": 5})
    assert payload["data"] is None
    assert "$n" in payload["errors"][0]["message"]
    await session.close()


async def test_client_stop_cancels_in_flight_query_and_sends_nothing(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    await session.start("1", "{ asyncSleep(seconds: 0.3) }")
    await asyncio.sleep(0.05)
    await session.stop("1")
    if subprotocol == GRAPHQL_WS:
        await session.completed("1")  # the legacy protocol answers stop with complete
    assert await session.nothing(0.5)
    # The id can be reused.
    assert await session.query("1", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await session.close()


async def test_client_stop_ends_subscription(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    await session.start("s", "subscription { count(to: 1000, delay: 0.02) }")
    assert await session.result("s") == {"data": {"count": 1}}
    await session.stop("s")
    # Results already in flight may arrive; after the complete (legacy) nothing more.
    # (A timed-out receive would cancel the application: poll with receive_nothing.)
    while not await session.nothing(0.1):
        message = await session.receive()
        if message["type"] == "complete":
            assert subprotocol == GRAPHQL_WS
            break
        assert message["type"] == session.result_type
    assert await session.nothing(0.2)
    await session.close()


async def test_slow_query_does_not_delay_another_operation(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    await session.start("slow", "{ asyncSleep(seconds: 0.5) }")
    await session.start("fast", "{ hello }")
    assert await session.result("fast", timeout=0.4) == {"data": {"hello": "Hello, world!"}}
    await session.completed("fast")
    assert await session.result("slow") == {"data": {"asyncSleep": 0.5}}
    await session.completed("slow")
    await session.close()


async def test_strict_ordering_runs_operations_in_arrival_order(subprotocol: str) -> None:
    session = await WsSession.open(OrderedConsumer.as_asgi(), subprotocol)
    await session.start("slow", "{ asyncSleep(seconds: 0.2) }")
    await session.start("fast", "{ hello }")
    assert await session.result("slow") == {"data": {"asyncSleep": 0.2}}
    await session.completed("slow")
    assert await session.result("fast") == {"data": {"hello": "Hello, world!"}}
    await session.completed("fast")
    await session.close()


# --- resolvers and threads --------------------------------------------------------------------


async def test_sync_resolvers_run_in_threads_async_on_the_loop(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    payload = await session.query("1", "{ threadName loopThreadName }")
    assert payload["data"]["threadName"].startswith("graphql-resolver")
    assert payload["data"]["loopThreadName"] == "MainThread"
    await session.close()


async def test_sleeping_sync_resolver_does_not_block_other_connections(subprotocol: str) -> None:
    sleeper = await WsSession.open(app, subprotocol)
    other = await WsSession.open(app, subprotocol)
    await sleeper.start("1", "{ syncSleep(seconds: 1) }")
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    assert await other.query("2", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    assert asyncio.get_running_loop().time() - started < 0.5
    assert (await sleeper.result("1", timeout=3))["data"]["syncSleep"].startswith(
        "graphql-resolver"
    )
    await sleeper.completed("1")
    await sleeper.close()
    await other.close()


async def test_max_worker_threads_bounds_the_pool() -> None:
    session = await WsSession.open(SingleThreadConsumer.as_asgi(), GRAPHQL_TRANSPORT_WS)
    started = asyncio.get_running_loop().time()
    await session.start("1", "{ syncSleep(seconds: 0.2) }")
    await session.start("2", "{ syncSleep(seconds: 0.2) }")
    for _ in range(4):
        await session.receive()
    # One worker thread: the two sleeps ran one after the other.
    assert asyncio.get_running_loop().time() - started >= 0.4
    await session.close()


@pytest.mark.django_db(transaction=True)
async def test_orm_in_sync_resolvers_works(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol)
    first = await session.query("1", 'mutation { addNote(text: "one") }')
    assert isinstance(first["data"]["addNote"], int)
    await session.query("2", 'mutation { addNote(text: "two") }')
    assert await session.query("3", "{ notes }") == {"data": {"notes": ["one", "two"]}}
    await session.close()


# --- context ------------------------------------------------------------------------------------


async def test_context_lives_as_long_as_the_connection(subprotocol: str) -> None:
    session = await WsSession.open(app, subprotocol, payload={"token": "abc"})
    for visits in (1, 2, 3):
        assert await session.query(str(visits), "{ contextVisits }") == {
            "data": {"contextVisits": visits}
        }
    payload = await session.query("p", '{ connectionParam(key: "token") channelName }')
    assert payload["data"]["connectionParam"] == "abc"
    assert payload["data"]["channelName"]
    other = await WsSession.open(app, subprotocol)
    assert await other.query("1", "{ contextVisits }") == {"data": {"contextVisits": 1}}
    await session.close()
    await other.close()


# --- hooks ----------------------------------------------------------------------------------------


async def test_on_connect_ack_payload(subprotocol: str) -> None:
    session = await WsSession.open(HookConsumer.as_asgi(), subprotocol, init=False)
    ack = await session.init({"token": "secret"})
    assert ack == {"type": "connection_ack", "payload": {"welcome": True}}
    await session.close()


async def test_on_connect_rejection_transport_ws_closes_4403() -> None:
    session = await WsSession.open(HookConsumer.as_asgi(), GRAPHQL_TRANSPORT_WS, init=False)
    await session.send({"type": "connection_init", "payload": {"token": "wrong"}})
    assert await session.receive_close() == (4403, "Bad token")
    await session.close()


async def test_on_connect_rejection_legacy_sends_connection_error_then_closes() -> None:
    session = await WsSession.open(HookConsumer.as_asgi(), GRAPHQL_WS, init=False)
    await session.send({"type": "connection_init", "payload": {"token": "wrong"}})
    assert await session.receive() == {
        "type": "connection_error",
        "payload": {"message": "Bad token"},
    }
    code, _ = await session.receive_close()
    assert code == 4403
    await session.close()


async def test_on_operation_rejects_one_operation(subprotocol: str) -> None:
    session = await WsSession.open(HookConsumer.as_asgi(), subprotocol, payload={"token": "secret"})
    await session.start("1", "{ forbidden: hello }")
    message = await session.receive()
    assert message["type"] == "error"
    assert message["id"] == "1"
    assert await session.query("2", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await session.close()


async def test_on_disconnect_receives_the_code(subprotocol: str) -> None:
    HookConsumer.disconnects.clear()
    session = await WsSession.open(HookConsumer.as_asgi(), subprotocol, payload={"token": "secret"})
    await session.communicator.disconnect(code=4321)
    assert HookConsumer.disconnects == [4321]


# --- limits and timers ----------------------------------------------------------------------------


async def test_init_timeout_closes_4408(subprotocol: str) -> None:
    session = await WsSession.open(LimitedConsumer.as_asgi(), subprotocol, init=False)
    assert await session.receive_close(timeout=2) == (4408, "Connection initialisation timeout")
    await session.close()


async def test_init_in_time_is_not_closed(subprotocol: str) -> None:
    session = await WsSession.open(LimitedConsumer.as_asgi(), subprotocol)
    assert await session.nothing(0.4)
    await session.close()


async def test_operations_beyond_the_limit_get_an_error(subprotocol: str) -> None:
    session = await WsSession.open(LimitedConsumer.as_asgi(), subprotocol)
    await session.start("1", "subscription { forever }")
    await session.start("2", "subscription { forever }")
    await session.start("3", "subscription { forever }")
    message = await session.receive()
    assert message["type"] == "error"
    assert message["id"] == "3"
    await session.stop("1")
    if subprotocol == GRAPHQL_WS:
        await session.completed("1")
    assert await session.query("4", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await session.close()


async def test_server_keepalive_transport_ws_pings_and_ignores_pong() -> None:
    session = await WsSession.open(PingConsumer.as_asgi(), GRAPHQL_TRANSPORT_WS)
    assert await session.receive() == {"type": "ping"}
    await session.send({"type": "pong"})
    assert await session.receive() == {"type": "ping"}
    await session.close()


async def test_server_keepalive_legacy_sends_ka_right_after_ack() -> None:
    communicator = WebsocketCommunicator(PingConsumer.as_asgi(), "/", subprotocols=[GRAPHQL_WS])
    await communicator.connect()
    session = WsSession(communicator, GRAPHQL_WS)
    session.skip_keepalive = False
    assert await session.init() == {"type": "connection_ack"}
    assert await session.receive(timeout=0.02) == {"type": "ka"}
    assert await session.receive() == {"type": "ka"}
    await session.close()


async def test_client_ping_gets_pong_with_payload() -> None:
    session = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
    await session.send({"type": "ping", "payload": {"n": 1}})
    assert await session.receive() == {"type": "pong", "payload": {"n": 1}}
    await session.close()


# --- protocol errors through the consumer -----------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", 4400),
        ('{"type": "unknown"}', 4400),
        ('{"payload": {}}', 4400),
        ('{"type": "connection_init", "payload": 5}', 4400),
        ('{"type": "subscribe", "id": "1", "payload": {"query": "{ hello }"}}', 4401),
    ],
)
async def test_transport_ws_bad_frames_close(frame: str, code: int) -> None:
    session = await WsSession.open(app, GRAPHQL_TRANSPORT_WS, init=False)
    await session.send_text(frame)
    received_code, reason = await session.receive_close()
    assert received_code == code
    assert reason
    await session.close()


async def test_transport_ws_binary_frame_closes_4400() -> None:
    session = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
    await session.communicator.send_to(bytes_data=b"\x00\x01")
    assert (await session.receive_close())[0] == 4400
    await session.close()


async def test_transport_ws_duplicate_id_closes_4409_even_while_preparing() -> None:
    session = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
    await session.start("1", "{ asyncSleep(seconds: 0.5) }")
    await session.start("1", "{ hello }")
    assert await session.receive_close() == (4409, "Subscriber for 1 already exists")
    await session.close()


async def test_transport_ws_second_init_closes_4429() -> None:
    session = await WsSession.open(app, GRAPHQL_TRANSPORT_WS)
    await session.send({"type": "connection_init"})
    assert await session.receive_close() == (4429, "Too many initialisation requests")
    await session.close()


async def test_legacy_start_before_init_closes_4401() -> None:
    session = await WsSession.open(app, GRAPHQL_WS, init=False)
    await session.start("1", "{ hello }")
    assert (await session.receive_close())[0] == 4401
    await session.close()


async def test_legacy_start_with_active_id_replaces_the_operation() -> None:
    session = await WsSession.open(app, GRAPHQL_WS)
    await session.start("1", "subscription { forever }")
    await session.start("1", "{ hello }")
    assert await session.result("1") == {"data": {"hello": "Hello, world!"}}
    await session.completed("1")
    assert await session.nothing()
    await session.close()


async def test_legacy_unknown_type_answers_error_and_stays_open() -> None:
    session = await WsSession.open(app, GRAPHQL_WS)
    await session.send({"type": "bogus", "id": "7"})
    message = await session.receive()
    assert message["type"] == "error"
    assert message["id"] == "7"
    assert await session.query("1", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await session.close()


async def test_legacy_connection_terminate_closes_1000() -> None:
    session = await WsSession.open(app, GRAPHQL_WS)
    await session.send({"type": "connection_terminate"})
    assert (await session.receive_close())[0] == 1000
    await session.close()


# --- cleanup --------------------------------------------------------------------------------


async def test_disconnect_cancels_and_awaits_every_task(subprotocol: str) -> None:
    before = len(asyncio.all_tasks())
    sessions = [await WsSession.open(PingConsumer.as_asgi(), subprotocol) for _ in range(5)]
    for index, session in enumerate(sessions):
        await session.start("s", "subscription { forever }")
        await session.start("q", "{ asyncSleep(seconds: 10) }")
        await session.start("c", f"subscription {{ count(to: 100000, delay: 0.001) }} # {index}")
    await asyncio.sleep(0.1)
    assert len(asyncio.all_tasks()) > before
    for session in sessions:
        await session.close()
    await asyncio.sleep(0.05)
    assert len(asyncio.all_tasks()) == before


async def test_bad_input_on_one_connection_does_not_affect_another(subprotocol: str) -> None:
    good = await WsSession.open(app, subprotocol)
    bad = await WsSession.open(app, subprotocol)
    for frame in ["{", "[]", json.dumps({"type": 1}), "\x00" * 100]:
        await bad.send_text(frame)
    assert await good.query("1", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await good.close()
    await bad.close()


CONSUMERS: list[GraphqlWsConsumer] = []


class RecordingOrderedConsumer(OrderedConsumer):
    max_operations_per_connection = 10

    async def websocket_connect(self, message: Any) -> None:
        CONSUMERS.append(self)
        await super().websocket_connect(message)


async def test_strict_ordering_forgets_operations_completed_while_waiting() -> None:
    session = await WsSession.open(RecordingOrderedConsumer.as_asgi(), GRAPHQL_TRANSPORT_WS)
    consumer = CONSUMERS[-1]
    # Long enough for the frames below to be handled first, even on a loaded machine.
    await session.start("head", "{ asyncSleep(seconds: 3) }")
    for index in range(500):
        await session.start(str(index), "{ hello }")
        await session.stop(str(index))
    # Frames are handled in order: the pong says every stop above has been handled.
    await session.send({"type": "ping"})
    assert await session.receive() == {"type": "pong"}
    # Completed while waiting: gone at once, not kept until the head operation ends.
    assert len(consumer._operations._waiting_operations) == 0
    assert await session.result("head", timeout=10) == {"data": {"asyncSleep": 3.0}}
    await session.completed("head")
    assert await session.nothing()
    await session.close()
