"""Whole sessions: a tiny hand-written client wired back to back with each machine.

A :class:`Session` plays the I/O shell (what the consumer does with the actions) and
delivers every server message, through a JSON round trip, to a fake client that reacts
like a real one: it subscribes once acknowledged, answers pings, stops a subscription
after a few events and leaves when nothing is running. Every test asserts the exact
transcript of the conversation.
"""

from __future__ import annotations

import collections
import json
from typing import TYPE_CHECKING, Any

import pytest

from channels_graphql_typed._protocol import (
    Close,
    ConnectionInitRequested,
    ConnectionState,
    GraphqlTransportWsProtocol,
    LegacyGraphqlWsProtocol,
    Send,
    StartOperation,
    StopOperation,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from channels_graphql_typed._protocol import Action, Operation, ProtocolMachine
    from channels_graphql_typed._protocol.messages import ExecutionResultPayload

SUBSCRIPTION = "subscription { ticks }"
QUERY = "{ hello }"
TOKEN = {"token": "s3cr3t"}

Message = dict[str, Any]
Entry = tuple[str, Any]
"""One transcript line: who did what (``client``/``server`` message, ``on_connect``,
``start``/``stop`` of an operation id, ``close`` with code and reason)."""


class Rejected(Exception):
    """Raised by an on_connect hook to refuse the connection."""

    def __init__(self, payload: dict[str, Any] | None) -> None:
        super().__init__("rejected")
        self.payload = payload


def accept_alice(payload: dict[str, Any]) -> dict[str, Any] | None:
    if payload != TOKEN:
        raise Rejected({"message": "Bad token"})
    return {"user": "alice"}


class FakeClient:
    """A client of either protocol: reacts to server messages with client messages."""

    def __init__(self, *, legacy: bool, events_before_stop: int = 2) -> None:
        self.legacy = legacy
        self.events_before_stop = events_before_stop
        self.events: collections.Counter[str] = collections.Counter()
        self.running: set[str] = set()
        self.closed = False

    @property
    def start_type(self) -> str:
        return "start" if self.legacy else "subscribe"

    @property
    def stop_type(self) -> str:
        return "stop" if self.legacy else "complete"

    @property
    def result_type(self) -> str:
        return "data" if self.legacy else "next"

    def hello(self) -> list[Message]:
        return [{"type": "connection_init", "payload": TOKEN}]

    def operate(self, operation_id: str, query: str) -> Message:
        self.running.add(operation_id)
        self.events[operation_id] = 0
        return {"type": self.start_type, "id": operation_id, "payload": {"query": query}}

    def on_message(self, message: Message) -> list[Message]:
        kind = message["type"]
        if kind == "connection_ack":
            return [self.operate("sub", SUBSCRIPTION), self.operate("query", QUERY)]
        if kind == "ping":
            pong: Message = {"type": "pong"}
            if "payload" in message:
                pong["payload"] = message["payload"]
            return [pong]
        if kind == self.result_type:
            operation_id = message["id"]
            assert operation_id in self.running, f"result for finished operation {message}"
            self.events[operation_id] += 1
            if operation_id == "sub" and self.events[operation_id] == self.events_before_stop:
                self.running.discard(operation_id)
                stop = [{"type": self.stop_type, "id": operation_id}]
                return stop + self._leave_if_idle()
            return []
        if kind in {"complete", "error"}:
            self.running.discard(message["id"])
            return self._leave_if_idle()
        # connection_error, ka, pong: nothing to answer.
        return []

    def _leave_if_idle(self) -> list[Message]:
        if self.running or not self.legacy:
            return []
        return [{"type": "connection_terminate"}]


class Session:
    """The I/O shell, in memory: feeds client frames to the machine, carries out actions."""

    def __init__(
        self,
        machine: ProtocolMachine,
        client: FakeClient,
        on_connect: Callable[[dict[str, Any]], dict[str, Any] | None] = accept_alice,
    ) -> None:
        self.machine = machine
        self.client = client
        self.on_connect = on_connect
        self.transcript: list[Entry] = []
        self.operations: dict[str, Operation] = {}
        self.stopped: list[Operation] = []
        self.close_frame: Close | None = None
        self._inbox: collections.deque[Message] = collections.deque()

    # --- driving --------------------------------------------------------------------------

    def open(self) -> None:
        self.client_sends(*self.client.hello())

    def client_sends(self, *messages: Message) -> None:
        self._inbox.extend(messages)
        self._pump()

    def emit(self, operation_id: str, result: ExecutionResultPayload) -> None:
        self.carry_out(self.machine.send_result(self.operations[operation_id], result))
        self._pump()

    def emit_to(self, operation: Operation, result: ExecutionResultPayload) -> None:
        """A result of a specific operation object (possibly a stale one)."""
        self.carry_out(self.machine.send_result(operation, result))
        self._pump()

    def finish(self, operation_id: str) -> None:
        """The execution ran to its end: it is no longer ours to stop."""
        self.carry_out(self.machine.complete(self.operations.pop(operation_id)))
        self._pump()

    def fail(self, operation_id: str, message: str) -> None:
        operation = self.operations.pop(operation_id)
        self.carry_out(self.machine.send_errors(operation, [{"message": message}]))
        self._pump()

    def keepalive(self) -> None:
        self.carry_out(self.machine.keepalive())
        self._pump()

    def client_disconnects(self) -> None:
        self.client.closed = True
        self.carry_out(self.machine.close(1000, "Client disconnected"))

    # --- the shell ------------------------------------------------------------------------

    def _pump(self) -> None:
        while self._inbox and self.close_frame is None:
            message = self._inbox.popleft()
            self.transcript.append(("client", message))
            self.carry_out(self.machine.receive_text(json.dumps(message)))

    def carry_out(self, actions: list[Action]) -> None:
        for action in actions:
            assert self.close_frame is None, f"action after close: {action}"
            match action:
                case Send(message=message):
                    delivered: Message = json.loads(json.dumps(message))
                    self.transcript.append(("server", delivered))
                    self._inbox.extend(self.client.on_message(delivered))
                case Close(code=code, reason=reason):
                    self.transcript.append(("close", (code, reason)))
                    self.close_frame = action
                case ConnectionInitRequested(payload=payload):
                    self.transcript.append(("on_connect", payload))
                    try:
                        ack_payload = self.on_connect(payload)
                    except Rejected as rejection:
                        self.carry_out(self.machine.reject_connection(rejection.payload))
                    else:
                        self.carry_out(self.machine.accept_connection(ack_payload))
                        if self.machine.keepalive_on_ack:
                            self.carry_out(self.machine.keepalive())
                case StartOperation(operation=operation):
                    assert operation.id not in self.operations
                    self.transcript.append(("start", operation.id))
                    self.operations[operation.id] = operation
                case StopOperation(operation=operation):
                    assert self.operations[operation.id] is operation
                    self.transcript.append(("stop", operation.id))
                    self.stopped.append(operation)
                    del self.operations[operation.id]

    def take(self) -> list[Entry]:
        """The transcript so far, cleared."""
        entries, self.transcript = self.transcript, []
        return entries


def state_of(session: Session) -> ConnectionState:
    return session.machine.state


def transport_session(**client_options: Any) -> Session:
    return Session(GraphqlTransportWsProtocol(), FakeClient(legacy=False, **client_options))


def legacy_session(**client_options: Any) -> Session:
    return Session(LegacyGraphqlWsProtocol(), FakeClient(legacy=True, **client_options))


def subscribe(operation_id: str, query: str) -> Message:
    return {"type": "subscribe", "id": operation_id, "payload": {"query": query}}


def start(operation_id: str, query: str) -> Message:
    return {"type": "start", "id": operation_id, "payload": {"query": query}}


def tick(number: int) -> ExecutionResultPayload:
    return {"data": {"ticks": number}}


HELLO: ExecutionResultPayload = {"data": {"hello": "world"}}


# --- graphql-transport-ws -----------------------------------------------------------------


def test_transport_ws_whole_session() -> None:
    session = transport_session()
    session.open()
    assert session.take() == [
        ("client", {"type": "connection_init", "payload": TOKEN}),
        ("on_connect", TOKEN),
        ("server", {"type": "connection_ack", "payload": {"user": "alice"}}),
        ("client", subscribe("sub", SUBSCRIPTION)),
        ("start", "sub"),
        ("client", subscribe("query", QUERY)),
        ("start", "query"),
    ]
    assert state_of(session) is ConnectionState.READY

    # The query: one result, then complete from the server.
    session.emit("query", HELLO)
    session.finish("query")
    assert session.take() == [
        ("server", {"type": "next", "id": "query", "payload": HELLO}),
        ("server", {"type": "complete", "id": "query"}),
    ]

    # Server keep-alive ping, and a client ping in the other direction.
    session.keepalive()
    session.client_sends({"type": "ping", "payload": {"at": 1}})
    assert session.take() == [
        ("server", {"type": "ping"}),
        ("client", {"type": "pong"}),
        ("client", {"type": "ping", "payload": {"at": 1}}),
        ("server", {"type": "pong", "payload": {"at": 1}}),
    ]

    # Two subscription events; the client has seen enough and completes it.
    session.emit("sub", tick(1))
    subscription = session.operations["sub"]
    session.emit("sub", tick(2))
    assert session.take() == [
        ("server", {"type": "next", "id": "sub", "payload": tick(1)}),
        ("server", {"type": "next", "id": "sub", "payload": tick(2)}),
        ("client", {"type": "complete", "id": "sub"}),
        ("stop", "sub"),
    ]
    assert session.stopped == [subscription]

    # An event that was already in flight when the client completed is dropped.
    session.emit_to(subscription, tick(3))
    session.carry_out(session.machine.complete(subscription))
    assert session.take() == []

    session.client_disconnects()
    assert session.take() == [("close", (1000, "Client disconnected"))]
    assert state_of(session) is ConnectionState.CLOSED
    assert session.operations == {}


def test_transport_ws_client_disconnect_stops_running_operations() -> None:
    session = transport_session()
    session.open()
    session.take()
    session.client_disconnects()
    assert session.take() == [
        ("stop", "sub"),
        ("stop", "query"),
        ("close", (1000, "Client disconnected")),
    ]


def test_transport_ws_rejected_connection() -> None:
    session = transport_session()
    session.client_sends({"type": "connection_init", "payload": {"token": "wrong"}})
    assert session.take() == [
        ("client", {"type": "connection_init", "payload": {"token": "wrong"}}),
        ("on_connect", {"token": "wrong"}),
        ("close", (4403, "Bad token")),
    ]


def test_transport_ws_validation_error_ends_operation_without_complete() -> None:
    session = transport_session()
    session.open()
    session.take()
    session.fail("query", "Cannot query field 'hello'.")
    session.emit("sub", tick(1))
    assert session.take() == [
        (
            "server",
            {
                "type": "error",
                "id": "query",
                "payload": [{"message": "Cannot query field 'hello'."}],
            },
        ),
        ("server", {"type": "next", "id": "sub", "payload": tick(1)}),
    ]
    assert list(session.machine.operations) == ["sub"]


def test_transport_ws_id_reused_after_complete() -> None:
    session = transport_session(events_before_stop=1)
    session.open()
    session.take()
    session.emit("sub", tick(1))
    old = session.stopped[-1]
    # The client immediately reuses the id; the old execution still has an event queued.
    session.client_sends(session.client.operate("sub", SUBSCRIPTION))
    session.emit_to(old, tick(99))
    session.emit("sub", tick(1))
    assert session.take() == [
        ("server", {"type": "next", "id": "sub", "payload": tick(1)}),
        ("client", {"type": "complete", "id": "sub"}),
        ("stop", "sub"),
        ("client", subscribe("sub", SUBSCRIPTION)),
        ("start", "sub"),
        ("server", {"type": "next", "id": "sub", "payload": tick(1)}),
        ("client", {"type": "complete", "id": "sub"}),
        ("stop", "sub"),
    ]
    assert session.operations["query"] is session.machine.operations["query"]


def test_transport_ws_protocol_error_mid_session() -> None:
    session = transport_session()
    session.open()
    session.take()
    session.client_sends(subscribe("sub", SUBSCRIPTION))
    assert session.take() == [
        ("client", subscribe("sub", SUBSCRIPTION)),
        ("stop", "sub"),
        ("stop", "query"),
        ("close", (4409, "Subscriber for sub already exists")),
    ]
    # Nothing gets through once closed.
    session.client_sends({"type": "ping"})
    session.keepalive()
    assert session.take() == []


# --- graphql-ws (legacy) ------------------------------------------------------------------


def test_legacy_ws_whole_session() -> None:
    session = legacy_session()
    session.open()
    assert session.take() == [
        ("client", {"type": "connection_init", "payload": TOKEN}),
        ("on_connect", TOKEN),
        ("server", {"type": "connection_ack", "payload": {"user": "alice"}}),
        ("server", {"type": "ka"}),
        ("client", start("sub", SUBSCRIPTION)),
        ("start", "sub"),
        ("client", start("query", QUERY)),
        ("start", "query"),
    ]
    assert state_of(session) is ConnectionState.READY

    session.emit("query", HELLO)
    session.finish("query")
    session.keepalive()
    assert session.take() == [
        ("server", {"type": "data", "id": "query", "payload": HELLO}),
        ("server", {"type": "complete", "id": "query"}),
        ("server", {"type": "ka"}),
    ]

    session.emit("sub", tick(1))
    subscription = session.operations["sub"]
    session.emit("sub", tick(2))
    # The client stops the subscription, gets complete, and, idle, terminates.
    assert session.take() == [
        ("server", {"type": "data", "id": "sub", "payload": tick(1)}),
        ("server", {"type": "data", "id": "sub", "payload": tick(2)}),
        ("client", {"type": "stop", "id": "sub"}),
        ("stop", "sub"),
        ("server", {"type": "complete", "id": "sub"}),
        ("client", {"type": "connection_terminate"}),
        ("close", (1000, "Connection terminated by the client")),
    ]
    assert session.stopped == [subscription]
    assert state_of(session) is ConnectionState.CLOSED

    session.emit_to(subscription, tick(3))
    session.keepalive()
    assert session.take() == []


def test_legacy_ws_rejected_connection() -> None:
    session = legacy_session()
    session.client_sends({"type": "connection_init"})
    assert session.take() == [
        ("client", {"type": "connection_init"}),
        ("on_connect", {}),
        ("server", {"type": "connection_error", "payload": {"message": "Bad token"}}),
        ("close", (4403, "Forbidden")),
    ]


def test_legacy_ws_validation_error_then_terminate() -> None:
    session = legacy_session()
    session.open()
    session.take()
    session.fail("query", "Syntax Error: Unexpected Name.")
    session.client_sends({"type": "stop", "id": "sub"})
    assert session.take() == [
        (
            "server",
            {
                "type": "error",
                "id": "query",
                "payload": {
                    "message": "Syntax Error: Unexpected Name.",
                    "errors": [{"message": "Syntax Error: Unexpected Name."}],
                },
            },
        ),
        ("client", {"type": "stop", "id": "sub"}),
        ("stop", "sub"),
        ("server", {"type": "complete", "id": "sub"}),
        ("client", {"type": "connection_terminate"}),
        ("close", (1000, "Connection terminated by the client")),
    ]


def test_legacy_ws_restart_replaces_the_operation() -> None:
    session = legacy_session()
    session.open()
    session.take()
    old = session.operations["sub"]
    session.client_sends(session.client.operate("sub", SUBSCRIPTION))
    session.emit_to(old, tick(99))
    session.emit("sub", tick(1))
    assert session.take() == [
        ("client", start("sub", SUBSCRIPTION)),
        ("stop", "sub"),
        ("start", "sub"),
        ("server", {"type": "data", "id": "sub", "payload": tick(1)}),
    ]
    assert session.operations["sub"] is not old


def test_legacy_ws_bad_messages_do_not_end_the_session() -> None:
    session = legacy_session()
    session.open()
    session.take()
    session.client_sends({"type": "subscribe", "id": "x"})
    session.carry_out(session.machine.receive_text("not json"))
    session.emit("sub", tick(1))
    assert session.take() == [
        ("client", {"type": "subscribe", "id": "x"}),
        (
            "server",
            {
                "type": "error",
                "id": "x",
                "payload": {
                    "message": "Unexpected message of type 'subscribe' received",
                    "errors": [{"message": "Unexpected message of type 'subscribe' received"}],
                },
            },
        ),
        (
            "server",
            {"type": "connection_error", "payload": {"message": "Invalid message: not valid JSON"}},
        ),
        ("server", {"type": "data", "id": "sub", "payload": tick(1)}),
    ]


# --- both ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make_session", [transport_session, legacy_session])
def test_init_timeout_before_the_client_says_hello(make_session: Callable[[], Session]) -> None:
    session = make_session()
    session.carry_out(session.machine.init_timeout())
    session.open()
    assert session.take() == [("close", (4408, "Connection initialisation timeout"))]


@pytest.mark.parametrize("make_session", [transport_session, legacy_session])
def test_operation_before_ack_is_unauthorized(make_session: Callable[[], Session]) -> None:
    session = make_session()
    message = session.client.operate("early", QUERY)
    session.client_sends(message)
    assert session.take() == [("client", message), ("close", (4401, "Unauthorized"))]
