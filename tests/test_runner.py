"""The operation runner on its own: a real protocol machine, a fake sink, no socket."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
from graphql import GraphQLError

from channels_graphql_typed import (
    CONFIRM_SUBSCRIPTION_EXTENSION,
    GRAPHQL_TRANSPORT_WS,
    GRAPHQL_WS,
    Context,
    OperationRejected,
)
from channels_graphql_typed._contract import (
    INTERNAL_ERROR_MESSAGE,
    OperationSettings,
    current_operation,
)
from channels_graphql_typed._execution import GraphqlExecutor
from channels_graphql_typed._protocol import (
    PROTOCOL_MACHINES,
    Close,
    ConnectionInitRequested,
    Send,
    SendText,
)
from channels_graphql_typed._protocol.common import count_json_values
from channels_graphql_typed._runner import ConnectionOperations, ServerSettings
from tests.schema import schema

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from channels_graphql_typed._execution import OperationRun
    from channels_graphql_typed._protocol import Action
    from channels_graphql_typed._protocol.messages import OperationPayload

Message = dict[str, Any]

EXECUTOR = GraphqlExecutor(schema)
FOREVER = "subscription { forever }"
COUNT = "subscription { count(to: 2) }"


class FakeSink:
    """Records what the runner hands to its transport."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.batches: list[list[Action]] = []
        self.others: list[Action] = []
        self.hooked: list[str] = []
        self.hook: Callable[[str, OperationPayload], Awaitable[None]] | None = None

    async def perform(self, actions: list[Action]) -> None:
        self.batches.append(list(actions))
        for action in actions:
            match action:
                case Send(message):
                    self.messages.put_nowait(dict(message))
                case SendText(text):
                    self.messages.put_nowait(json.loads(text))
                case _:
                    self.others.append(action)

    async def on_operation(self, id: str, payload: OperationPayload) -> None:
        self.hooked.append(id)
        if self.hook is not None:
            await self.hook(id, payload)


class Connection:
    """One connection as a transport drives it: frames to the machine, actions to the
    runner."""

    def __init__(self, subprotocol: str, settings: ServerSettings) -> None:
        self.subprotocol = subprotocol
        # No frame size limit: some tests send more than the default allows.
        self.machine = PROTOCOL_MACHINES[subprotocol](max_message_size=None)
        self.sink = FakeSink()
        self.settings = settings
        context = Context(scope={"type": "websocket"}, channel_name="test!runner")
        self.operations = ConnectionOperations(self.machine, self.sink, settings, context)
        transport = subprotocol == GRAPHQL_TRANSPORT_WS
        self.start_type = "subscribe" if transport else "start"
        self.stop_type = "complete" if transport else "stop"
        self.result_type = "next" if transport else "data"

    @classmethod
    async def open(cls, subprotocol: str, **settings: Any) -> Connection:
        settings.setdefault("executor", EXECUTOR)
        connection = cls(subprotocol, ServerSettings(**settings))
        await connection.frame({"type": "connection_init"})
        assert connection.sink.others == [ConnectionInitRequested({})]
        await connection.operations.handle(connection.machine.accept_connection(None))
        assert await connection.receive() == {"type": "connection_ack"}
        return connection

    async def frame(self, message: Message) -> None:
        await self.operations.handle(self.machine.receive_text(json.dumps(message)))

    async def start(
        self,
        id: str,
        query: str,
        variables: Message | None = None,
        extensions: Message | None = None,
    ) -> None:
        payload: Message = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        if extensions is not None:
            payload["extensions"] = extensions
        await self.frame({"type": self.start_type, "id": id, "payload": payload})

    async def stop(self, id: str) -> None:
        await self.frame({"type": self.stop_type, "id": id})
        if self.subprotocol == GRAPHQL_WS:
            await self.completed(id)  # the legacy machine confirms a stop

    async def receive(self, timeout: float = 3) -> Message:
        return await asyncio.wait_for(self.sink.messages.get(), timeout)

    async def nothing(self, wait: float = 0.1) -> bool:
        await asyncio.sleep(wait)
        return self.sink.messages.empty()

    async def result(self, id: str) -> Message:
        message = await self.receive()
        assert message["type"] == self.result_type, message
        assert message["id"] == id, message
        payload: Message = message["payload"]
        return payload

    async def completed(self, id: str) -> None:
        assert await self.receive() == {"type": "complete", "id": id}

    async def query(self, id: str, text: str) -> Message:
        """Run a query to its end; its only result."""
        await self.start(id, text)
        payload = await self.result(id)
        await self.completed(id)
        return payload

    async def errors(self, id: str) -> list[str]:
        """The messages of the error message that ended operation ``id``."""
        message = await self.receive()
        assert message["type"] == "error", message
        assert message["id"] == id, message
        errors = message["payload"] if self.subprotocol == GRAPHQL_TRANSPORT_WS else None
        if errors is None:
            errors = message["payload"]["errors"]
        return [error["message"] for error in errors]


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("still not so after 3 s")


def tasks_back_to(baseline: int) -> Callable[[], bool]:
    return lambda: len(asyncio.all_tasks()) == baseline


# --- starting and stopping -----------------------------------------------------------------


async def test_a_query_runs_to_its_result_then_completes(subprotocol: str) -> None:
    connection = await Connection.open(subprotocol)
    seen: list[OperationPayload] = []

    async def hook(id: str, payload: OperationPayload) -> None:
        seen.append(payload)

    connection.sink.hook = hook
    await connection.start("q", '{ hello(name: "runner") }')
    assert await connection.result("q") == {"data": {"hello": "Hello, runner!"}}
    await connection.completed("q")
    assert connection.sink.hooked == ["q"]
    assert seen[0]["query"] == '{ hello(name: "runner") }'
    await connection.operations.close()


async def test_a_subscription_sends_each_result_then_completes(subprotocol: str) -> None:
    connection = await Connection.open(subprotocol)
    await connection.start("s", COUNT)
    assert await connection.result("s") == {"data": {"count": 1}}
    assert await connection.result("s") == {"data": {"count": 2}}
    await connection.completed("s")
    await connection.operations.close()


async def test_an_invalid_operation_ends_with_its_errors(subprotocol: str) -> None:
    connection = await Connection.open(subprotocol)
    await connection.start("bad", "{ zzz }")
    assert await connection.errors("bad") == ["Cannot query field 'zzz' on type 'Query'."]
    await connection.operations.close()


async def test_stopping_a_subscription_cancels_its_task(subprotocol: str) -> None:
    baseline = len(asyncio.all_tasks())
    connection = await Connection.open(subprotocol, confirm_subscriptions=True)
    await connection.start("s", FOREVER)
    assert await connection.result("s") == {"data": None}
    assert len(asyncio.all_tasks()) > baseline
    await connection.stop("s")
    await until(tasks_back_to(baseline))
    assert await connection.nothing()
    # The connection goes on.
    assert await connection.query("q", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await connection.operations.close()


async def test_machine_actions_other_than_operations_go_to_the_sink_in_order() -> None:
    # The legacy machine holds the starts that come before the ack, and hands them out
    # behind it: the ack must reach the sink before the operation can send anything.
    connection = Connection(GRAPHQL_WS, ServerSettings(executor=EXECUTOR))
    await connection.frame({"type": "connection_init"})
    await connection.start("q", "{ hello }")
    actions = connection.machine.accept_connection({"server": "runner"})
    assert [type(action).__name__ for action in actions] == ["Send", "StartOperation"]
    await connection.operations.handle(actions)
    assert connection.sink.batches[-1] == [actions[0]]
    assert await connection.receive() == {"type": "connection_ack", "payload": {"server": "runner"}}
    assert await connection.result("q") == {"data": {"hello": "Hello, world!"}}
    await connection.completed("q")
    # A close is the sink's: the runner stops the operations first.
    await connection.start("s", FOREVER)
    await until(lambda: "s" in connection.sink.hooked)
    closing = connection.machine.close(1000, "bye")
    await connection.operations.handle(closing)
    assert connection.sink.batches[-1] == [Close(1000, "bye")]
    await connection.operations.close()


# --- strict ordering -----------------------------------------------------------------------


def gate(connection: Connection, held: str) -> asyncio.Event:
    """Holds operation ``held`` in ``on_operation`` until the returned event is set."""
    release = asyncio.Event()

    async def hook(id: str, payload: OperationPayload) -> None:
        if id == held:
            await release.wait()

    connection.sink.hook = hook
    return release


async def test_without_strict_ordering_operations_run_concurrently(subprotocol: str) -> None:
    connection = await Connection.open(subprotocol)
    release = gate(connection, "first")
    await connection.start("first", '{ hello(name: "first") }')
    await connection.start("second", '{ hello(name: "second") }')
    assert await connection.result("second") == {"data": {"hello": "Hello, second!"}}
    await connection.completed("second")
    release.set()
    assert await connection.result("first") == {"data": {"hello": "Hello, first!"}}
    await connection.completed("first")
    await connection.operations.close()


async def test_strict_ordering_runs_operations_one_at_a_time_in_arrival_order(
    subprotocol: str,
) -> None:
    connection = await Connection.open(subprotocol, strict_ordering=True)
    release = gate(connection, "first")
    for id in ("first", "second", "third"):
        await connection.start(id, f'{{ hello(name: "{id}") }}')
    assert await connection.nothing()
    assert connection.sink.hooked == ["first"]
    release.set()
    for id in ("first", "second", "third"):
        assert await connection.result(id) == {"data": {"hello": f"Hello, {id}!"}}
        await connection.completed(id)
    assert connection.sink.hooked == ["first", "second", "third"]
    await connection.operations.close()


async def test_strict_ordering_goes_on_once_a_subscription_is_registered(
    subprotocol: str,
) -> None:
    connection = await Connection.open(subprotocol, strict_ordering=True)
    await connection.start("s", FOREVER)
    await connection.start("q", "{ hello }")
    # The subscription lives on; the query behind it runs.
    assert await connection.result("q") == {"data": {"hello": "Hello, world!"}}
    await connection.completed("q")
    await connection.operations.close()


async def test_strict_ordering_drops_an_operation_stopped_before_its_turn(
    subprotocol: str,
) -> None:
    connection = await Connection.open(subprotocol, strict_ordering=True)
    release = gate(connection, "first")
    await connection.start("first", "{ hello }")
    await connection.start("second", "{ hello }")
    await connection.stop("second")
    release.set()
    assert await connection.result("first") == {"data": {"hello": "Hello, world!"}}
    await connection.completed("first")
    assert await connection.nothing()
    assert connection.sink.hooked == ["first"]
    await connection.operations.close()


# --- on_operation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected", "logged"),
    [
        (OperationRejected("Not on Sundays"), "Not on Sundays", False),
        (OperationRejected(), "Operation rejected", False),
        (GraphQLError("Bad token"), "Bad token", False),
        (RuntimeError("password=hunter2"), INTERNAL_ERROR_MESSAGE, True),
    ],
    ids=["rejected", "rejected-without-text", "graphql-error", "bug"],
)
async def test_on_operation_refuses_one_operation(
    subprotocol: str,
    caplog: pytest.LogCaptureFixture,
    raised: Exception,
    expected: str,
    logged: bool,
) -> None:
    connection = await Connection.open(subprotocol)

    async def hook(id: str, payload: OperationPayload) -> None:
        if id == "refused":
            raise raised

    connection.sink.hook = hook
    with caplog.at_level(logging.ERROR, logger="channels_graphql_typed"):
        await connection.start("refused", "{ hello }")
        assert await connection.errors("refused") == [expected]
    assert ("on_operation raised; operation 'refused' refused" in caplog.text) is logged
    assert "hunter2" not in repr(connection.sink.batches)
    # The connection goes on.
    assert await connection.query("next", "{ hello }") == {"data": {"hello": "Hello, world!"}}
    await connection.operations.close()


async def test_on_operation_runs_with_the_servers_operation_settings() -> None:
    operation = OperationSettings(notification_queue_limit=7, max_groups_per_subscription=3)
    connection = await Connection.open(GRAPHQL_TRANSPORT_WS, operation=operation)
    seen: list[OperationSettings | None] = []

    async def hook(id: str, payload: OperationPayload) -> None:
        seen.append(current_operation.get())

    connection.sink.hook = hook
    await connection.query("q", "{ hello }")
    assert seen == [operation]
    assert current_operation.get() is None  # set in the operation's task only
    await connection.operations.close()


class BrokenExecutor(GraphqlExecutor):
    def start(
        self, payload: OperationPayload, context: Any, root_value: Any = None
    ) -> OperationRun:
        raise ConnectionError("broker at 10.0.0.7 unreachable")


async def test_a_failure_of_the_server_is_logged_and_not_shown(
    subprotocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    connection = await Connection.open(subprotocol, executor=BrokenExecutor(schema))
    with caplog.at_level(logging.ERROR, logger="channels_graphql_typed"):
        await connection.start("q", "{ hello }")
        assert await connection.errors("q") == [INTERNAL_ERROR_MESSAGE]
    assert "Operation 'q' failed" in caplog.text
    assert "10.0.0.7" in caplog.text
    await connection.operations.close()


# --- subscription confirmation ----------------------------------------------------------------


async def test_a_subscription_is_confirmed_when_its_extensions_ask(subprotocol: str) -> None:
    confirmation: Any = {"data": {"confirmed": True}}
    connection = await Connection.open(subprotocol, subscription_confirmation_message=confirmation)
    await connection.start("asks", COUNT, extensions={CONFIRM_SUBSCRIPTION_EXTENSION: True})
    assert await connection.result("asks") == confirmation
    assert await connection.result("asks") == {"data": {"count": 1}}
    assert await connection.result("asks") == {"data": {"count": 2}}
    await connection.completed("asks")
    await connection.start("plain", COUNT)
    assert await connection.result("plain") == {"data": {"count": 1}}
    await connection.operations.close()


# --- the connection's budget -----------------------------------------------------------------


async def size_of(payload: OperationPayload) -> int:
    prepared = await EXECUTOR.prepare(payload)
    assert not isinstance(prepared, list)
    values = count_json_values(prepared.variables, 10**6) if prepared.variables else 0
    return prepared.tokens + values


async def test_the_operations_of_a_connection_share_a_bounded_size(subprotocol: str) -> None:
    size = await size_of({"query": FOREVER})
    connection = await Connection.open(
        subprotocol, max_operations_size_per_connection=2 * size, confirm_subscriptions=True
    )
    for id in ("1", "2"):
        await connection.start(id, FOREVER)
        assert await connection.result(id) == {"data": None}
    await connection.start("3", FOREVER)
    (message,) = await connection.errors("3")
    assert message == (
        "Too much in this connection's operations: their documents' tokens and their "
        f"variables' values may total at most {2 * size} (max_operations_size_per_connection)"
    )
    # A stopped operation gives its share back once its task has ended.
    baseline = len(asyncio.all_tasks())
    await connection.stop("1")
    await until(tasks_back_to(baseline - 1))
    await connection.start("3", FOREVER)
    assert await connection.result("3") == {"data": None}
    await connection.operations.close()


async def test_variables_count_against_the_budget_and_a_query_gives_its_share_back(
    subprotocol: str,
) -> None:
    text = "query Q($names: [String!]!) { length(items: $names) }"
    size = await size_of({"query": text, "variables": {"names": ["x"] * 100}})
    connection = await Connection.open(subprotocol, max_operations_size_per_connection=size)
    for id in ("1", "2"):
        await connection.start(id, text, {"names": ["x"] * 100})
        assert await connection.result(id) == {"data": {"length": 100}}
        await connection.completed(id)
    await connection.start("3", text, {"names": ["x"] * 101})
    (message,) = await connection.errors("3")
    assert "max_operations_size_per_connection" in message
    await connection.operations.close()


async def test_no_budget_means_no_limit(subprotocol: str) -> None:
    # Past the default budget (200,000).
    connection = await Connection.open(subprotocol, max_operations_size_per_connection=None)
    text = "query Q($names: [String!]!) { length(items: $names) }"
    await connection.start("q", text, {"names": ["x"] * 210_000})
    assert await connection.result("q") == {"data": {"length": 210_000}}
    await connection.operations.close()


# --- closing ---------------------------------------------------------------------------------


async def test_close_cancels_every_task_and_waits_for_them(subprotocol: str) -> None:
    baseline = len(asyncio.all_tasks())
    connection = await Connection.open(subprotocol, confirm_subscriptions=True)
    cancelled: list[str] = []

    async def hook(id: str, payload: OperationPayload) -> None:
        if id == "held":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(id)
                raise

    connection.sink.hook = hook
    for id in ("a", "b"):
        await connection.start(id, FOREVER)
        assert await connection.result(id) == {"data": None}
    await connection.start("held", "{ hello }")
    await until(lambda: "held" in connection.sink.hooked)

    async def timer() -> None:
        await asyncio.sleep(3600)

    connection.operations.spawn(timer())
    assert len(asyncio.all_tasks()) == baseline + 4
    await connection.operations.close()
    assert len(asyncio.all_tasks()) == baseline
    assert cancelled == ["held"]
    # Closed, it starts nothing more.
    await connection.start("late", "{ hello }")
    assert await connection.nothing()
    assert len(asyncio.all_tasks()) == baseline
    assert "late" not in connection.sink.hooked


async def test_close_cancels_the_strict_ordering_queue(subprotocol: str) -> None:
    baseline = len(asyncio.all_tasks())
    connection = await Connection.open(subprotocol, strict_ordering=True)
    release = gate(connection, "first")
    await connection.start("first", "{ hello }")
    await connection.start("second", "{ hello }")
    await until(lambda: connection.sink.hooked == ["first"])
    await connection.operations.close()
    release.set()
    assert await connection.nothing()
    assert len(asyncio.all_tasks()) == baseline
    assert connection.sink.hooked == ["first"]


async def test_a_failing_task_of_the_connection_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection = await Connection.open(GRAPHQL_TRANSPORT_WS)

    async def failing() -> None:
        raise ValueError("timer broke")

    coroutine: Coroutine[Any, Any, None] = failing()
    with caplog.at_level(logging.ERROR, logger="channels_graphql_typed"):
        task = connection.operations.spawn(coroutine)
        await asyncio.wait({task})
        await asyncio.sleep(0)
    assert "A task of the connection failed" in caplog.text
    assert "timer broke" in caplog.text
    await connection.operations.close()
