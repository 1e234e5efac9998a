"""The consumer behind real ASGI servers (uvicorn, Daphne), driven by a real WebSocket client.

These tests cross what the in-memory tests cannot: the HTTP upgrade and subprotocol
negotiation of a real server, real frames, and close codes and reasons as a client
receives them (Daphne drops close reasons, so only codes are checked there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import pytest
from websockets import ConnectionClosed, Subprotocol
from websockets.asyncio.client import connect

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS, CloseCode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from websockets.asyncio.client import ClientConnection

    from tests.e2e.conftest import RunningServer

pytestmark = pytest.mark.slow

Message = dict[str, Any]
TIMEOUT = 5.0


class RealWsSession:
    """One real WebSocket connection speaking either subprotocol by its message names."""

    def __init__(self, connection: ClientConnection, subprotocol: str | None) -> None:
        self.connection = connection
        self.subprotocol = subprotocol
        transport = subprotocol == GRAPHQL_TRANSPORT_WS
        self.start_type = "subscribe" if transport else "start"
        self.result_type = "next" if transport else "data"

    async def send(self, message: Message) -> None:
        await self.connection.send(json.dumps(message))

    async def send_text(self, text: str) -> None:
        await self.connection.send(text)

    async def receive(self) -> Message:
        async with asyncio.timeout(TIMEOUT):
            frame = await self.connection.recv()
        assert isinstance(frame, str), f"expected a text frame, got {frame!r}"
        message: Message = json.loads(frame)
        return message

    async def receive_close(self) -> tuple[int, str]:
        """Wait for the server's close frame; fail on any message before it."""
        try:
            message = await self.receive()
        except ConnectionClosed as closed:
            close_frame = closed.rcvd
        except TimeoutError:
            raise AssertionError(f"the server did not close within {TIMEOUT} s") from None
        else:
            pytest.fail(f"expected a close, got {message}")
        assert close_frame is not None, "the connection ended without a close frame"
        return close_frame.code, close_frame.reason

    async def init(self, payload: Message | None = None) -> Message:
        message: Message = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        await self.send(message)
        return await self.receive()

    async def start(self, id: str, query: str) -> None:
        await self.send({"type": self.start_type, "id": id, "payload": {"query": query}})

    async def result(self, id: str) -> Message:
        message = await self.receive()
        assert message == {"type": self.result_type, "id": id, "payload": message.get("payload")}, (
            message
        )
        payload: Message = message["payload"]
        return payload

    async def completed(self, id: str) -> None:
        message = await self.receive()
        assert message == {"type": "complete", "id": id}, message

    async def query(self, id: str, query: str) -> Message:
        """Run a query or mutation to its end; return its only result."""
        await self.start(id, query)
        payload = await self.result(id)
        await self.completed(id)
        return payload


@contextlib.asynccontextmanager
async def open_session(
    server: RunningServer,
    subprotocols: Sequence[str],
    *,
    path: str = "/graphql/",
) -> AsyncIterator[RealWsSession]:
    """Connect (no ``connection_init`` yet); close the socket on the way out."""
    server.check_alive()
    async with connect(
        server.url(path),
        # An empty list would send an empty Sec-WebSocket-Protocol header, which
        # servers refuse (HTTP 400); None sends no header: "no subprotocol offered".
        subprotocols=[Subprotocol(name) for name in subprotocols] or None,
        proxy=None,  # never route 127.0.0.1 through a proxy from the environment
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    ) as connection:
        yield RealWsSession(connection, connection.subprotocol)


@contextlib.asynccontextmanager
async def ready_session(server: RunningServer, subprotocol: str) -> AsyncIterator[RealWsSession]:
    """Connect with ``subprotocol`` and get the ``connection_ack``."""
    async with open_session(server, [subprotocol]) as session:
        assert session.subprotocol == subprotocol
        assert await session.init() == {"type": "connection_ack"}
        yield session


@pytest.fixture
def closing_server(server: RunningServer) -> RunningServer:
    """``server``, for tests that expect the server to close the socket."""
    return server


def assert_close(server: RunningServer, received: tuple[int, str], code: int, reason: str) -> None:
    """Compare the close frame, its reason only where the server passes reasons on."""
    if server.passes_close_reasons:
        assert received == (code, reason)
    else:
        assert received[0] == code


# --- operations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ([GRAPHQL_TRANSPORT_WS, GRAPHQL_WS], GRAPHQL_TRANSPORT_WS),
        ([GRAPHQL_WS, GRAPHQL_TRANSPORT_WS], GRAPHQL_WS),
        (["unknown", GRAPHQL_WS], GRAPHQL_WS),
    ],
)
async def test_first_offered_supported_subprotocol_is_negotiated(
    server: RunningServer, offered: list[str], chosen: str
) -> None:
    async with open_session(server, offered) as session:
        assert session.subprotocol == chosen
        assert await session.init() == {"type": "connection_ack"}


async def test_query(server: RunningServer, subprotocol: str) -> None:
    async with ready_session(server, subprotocol) as session:
        assert await session.query("q", "{ hello }") == {"data": {"hello": "Hello, world!"}}


async def test_mutation(server: RunningServer, subprotocol: str) -> None:
    async with ready_session(server, subprotocol) as session:
        assert await session.query("m", 'mutation { echo(text: "hi") }') == {"data": {"echo": "hi"}}


async def test_subscription_streams_then_completes(server: RunningServer, subprotocol: str) -> None:
    async with ready_session(server, subprotocol) as session:
        await session.start("s", "subscription { count(to: 3) }")
        for number in (1, 2, 3):
            assert await session.result("s") == {"data": {"count": number}}
        await session.completed("s")
        # The connection outlives its operations.
        assert await session.query("q", "{ hello }") == {"data": {"hello": "Hello, world!"}}


# --- closes and errors ------------------------------------------------------------------


async def test_invalid_json_closes_4400(closing_server: RunningServer) -> None:
    async with ready_session(closing_server, GRAPHQL_TRANSPORT_WS) as session:
        await session.send_text("{not json")
        received = await session.receive_close()
    assert_close(closing_server, received, CloseCode.BAD_REQUEST, "Invalid message: not valid JSON")


async def test_invalid_json_on_legacy_answers_connection_error(server: RunningServer) -> None:
    async with ready_session(server, GRAPHQL_WS) as session:
        await session.send_text("{not json")
        assert await session.receive() == {
            "type": "connection_error",
            "payload": {"message": "Invalid message: not valid JSON"},
        }
        # The legacy protocol keeps the connection open on bad messages.
        assert await session.query("q", "{ hello }") == {"data": {"hello": "Hello, world!"}}


@pytest.mark.parametrize("offered", [[], ["unknown"]], ids=["none", "unknown"])
async def test_no_acceptable_subprotocol_closes_4406(
    closing_server: RunningServer, offered: list[str]
) -> None:
    async with open_session(closing_server, offered) as session:
        assert session.subprotocol is None
        received = await session.receive_close()
    assert_close(
        closing_server, received, CloseCode.SUBPROTOCOL_NOT_ACCEPTABLE, "Subprotocol not acceptable"
    )


async def test_operation_before_ack_closes_4401(
    closing_server: RunningServer, subprotocol: str
) -> None:
    async with open_session(closing_server, [subprotocol]) as session:
        await session.start("q", "{ hello }")
        received = await session.receive_close()
    assert_close(closing_server, received, CloseCode.UNAUTHORIZED, "Unauthorized")


async def test_legacy_connection_terminate_closes_1000(closing_server: RunningServer) -> None:
    async with ready_session(closing_server, GRAPHQL_WS) as session:
        await session.send({"type": "connection_terminate"})
        received = await session.receive_close()
    assert_close(closing_server, received, CloseCode.NORMAL, "Connection terminated by the client")


# --- hooks ------------------------------------------------------------------------------


async def test_accepted_on_connect_acks_with_its_payload(
    server: RunningServer, subprotocol: str
) -> None:
    async with open_session(server, [subprotocol], path="/hooks/") as session:
        assert await session.init({"token": "secret"}) == {
            "type": "connection_ack",
            "payload": {"welcome": True},
        }
        assert await session.query("q", "{ hello }") == {"data": {"hello": "Hello, world!"}}


async def test_rejected_on_connect_closes_4403(closing_server: RunningServer) -> None:
    async with open_session(closing_server, [GRAPHQL_TRANSPORT_WS], path="/hooks/") as session:
        await session.send({"type": "connection_init", "payload": {"token": "wrong"}})
        received = await session.receive_close()
    assert_close(closing_server, received, CloseCode.FORBIDDEN, "Bad token")


async def test_rejected_on_connect_on_legacy_sends_connection_error_then_closes_4403(
    closing_server: RunningServer,
) -> None:
    async with open_session(closing_server, [GRAPHQL_WS], path="/hooks/") as session:
        assert await session.init({"token": "wrong"}) == {
            "type": "connection_error",
            "payload": {"message": "Bad token"},
        }
        received = await session.receive_close()
    assert_close(closing_server, received, CloseCode.FORBIDDEN, "Forbidden")


async def test_costly_queries_are_bounded_over_a_real_socket(
    server: RunningServer, subprotocol: str
) -> None:
    # Three attacks that once cost hundreds of MiB or seconds of every client's latency:
    # 900 aliases of a list field (a 181 MB response), 90 aliases under the alias
    # limit (18 MB), and a tiny query over nested lists.
    async with ready_session(server, subprotocol) as attacker:
        rows = " ".join(f"a{index}: rows(count: 1000, width: 200)" for index in range(900))
        await attacker.start("aliases", "{ " + rows + " }")
        message = await attacker.receive()
        assert message["type"] == "error", message
        assert "more than 100 aliases" in json.dumps(message["payload"])
        rows = " ".join(f"a{index}: rows(count: 1000, width: 200)" for index in range(90))
        payload = await attacker.query("size", "{ " + rows + " }")
        assert payload["data"] is None
        assert "max_result_size" in payload["errors"][0]["message"]
        level = "children(count: 60) { label "
        payload = await attacker.query("nested", "{ tree { " + level * 5 + "}" * 5 + " } }")
        assert payload["data"] is None
        assert "max_result_size" in payload["errors"][0]["message"]
        assert await attacker.query("after", "{ hello }") == {"data": {"hello": "Hello, world!"}}
