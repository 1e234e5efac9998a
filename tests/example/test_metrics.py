"""The chat example's ``/metrics``, scraped under uvicorn and read with prometheus_client's
own parser, after a scripted exchange: two sockets (one per subprotocol) subscribe to a
chatroom, one sends a message (its own subscription skips it, the other gets it), an
invalid operation fails, a burst of broadcasts overflows both subscribers' queues, and
both sockets close. Every series the library exposes is asserted, value by value.

The burst is made deterministic by the server's channel layer
(:mod:`tests.example.held_layer`): held while the broadcasts are sent, then received
back to back, so each queue gets them all before its subscriber can take one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import urllib.request
from typing import TYPE_CHECKING, Any, Final

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

import channels_graphql_typed as cgt
from tests.example.conftest import (
    EXAMPLE_DIR,
    ROOT,
    ChatServer,
    example_environment,
    new_room,
    serving_chat_example,
)
from tests.example.held_layer import HOLD_VARIABLE

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow

TIMEOUT: Final = 20.0
QUEUE_LIMIT: Final = 100
"""The example's ``notification_queue_limit``."""
BURST: Final = QUEUE_LIMIT + 3
"""Broadcasts sent while the layer is held: each subscriber's queue drops 3."""
PREFIX: Final = "channels_graphql_"

Series = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture(scope="module")
def held_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChatServer, Path]]:
    """The chat example on uvicorn, with a channel layer the test can hold."""
    directory = tmp_path_factory.mktemp("chat-metrics")
    hold = directory / "hold"
    environment = example_environment(directory / "chat.sqlite3")
    environment["DJANGO_SETTINGS_MODULE"] = "tests.example.held_layer_settings"
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EXAMPLE_DIR)])
    environment[HOLD_VARIABLE] = str(hold)
    with serving_chat_example(directory, environment) as server:
        yield server, hold


def scrape(server: ChatServer) -> dict[Series, float]:
    """The library's samples at ``/metrics`` (without the ``_created`` timestamps)."""
    with urllib.request.urlopen(server.url("/metrics"), timeout=TIMEOUT) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(PREFIX) and not sample.name.endswith("_created")
    }


async def scraped_when(server: ChatServer, wanted: dict[Series, float]) -> dict[Series, float]:
    """The samples, once they hold ``wanted`` (the server counts a moment after the
    client sees what it counts)."""
    values: dict[Series, float] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(TIMEOUT):
            while True:
                values = await asyncio.to_thread(scrape, server)
                if all(values.get(series) == value for series, value in wanted.items()):
                    return values
                await asyncio.sleep(0.05)
    assert {series: values.get(series) for series in wanted} == wanted
    return values


def post_message(server: ChatServer, chatroom: str, text: str) -> None:
    """A message sent over HTTP (a connection of its own): every subscriber gets it."""
    body = json.dumps(
        {
            "query": "mutation Send($chatroom: String!, $text: String!) "
            "{ sendChatMessage(chatroom: $chatroom, text: $text) { ok } }",
            "variables": {"chatroom": chatroom, "text": text},
        }
    ).encode()
    request = urllib.request.Request(
        server.url("/graphql/"), body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert json.load(response) == {"data": {"sendChatMessage": {"ok": True}}}


class Socket:
    """One chat client speaking ``subprotocol``."""

    def __init__(self, connection: ClientConnection, subprotocol: str) -> None:
        self.connection = connection
        self.modern = subprotocol == cgt.GRAPHQL_TRANSPORT_WS
        self.start = "subscribe" if self.modern else "start"
        self.result = "next" if self.modern else "data"

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        while True:
            async with asyncio.timeout(TIMEOUT):
                message: dict[str, Any] = json.loads(await self.connection.recv())
            if message.get("type") not in ("ka", "ping", "pong"):
                return message

    async def initialise(self) -> None:
        await self.send({"type": "connection_init"})
        assert (await self.receive())["type"] == "connection_ack"

    async def subscribe(self, chatroom: str) -> None:
        query = f'subscription {{ onNewChatMessage(chatroom: "{chatroom}") {{ text }} }}'
        extensions = {cgt.CONFIRM_SUBSCRIPTION_EXTENSION: True}
        await self.send(
            {
                "type": self.start,
                "id": "chat",
                "payload": {"query": query, "extensions": extensions},
            }
        )
        assert await self.receive() == {
            "type": self.result,
            "id": "chat",
            "payload": {"data": None},
        }

    async def texts(self, count: int) -> list[str]:
        """The next ``count`` messages of the chatroom."""
        texts: list[str] = []
        while len(texts) < count:
            message = await self.receive()
            assert message["type"] == self.result, message
            assert message["id"] == "chat", message
            texts.append(message["payload"]["data"]["onNewChatMessage"]["text"])
        return texts


@contextlib.asynccontextmanager
async def socket(server: ChatServer, subprotocol: str) -> Any:
    async with connect(server.ws_url, subprotocols=[subprotocol]) as connection:  # type: ignore[list-item]
        client = Socket(connection, subprotocol)
        await client.initialise()
        yield client


def websocket(subprotocol: str) -> tuple[tuple[str, str], ...]:
    return (("protocol", subprotocol), ("transport", "websocket"))


SUBSCRIPTION: Final = (("subscription", "OnNewChatMessage"),)


HTTP: Final = (("protocol", "http"), ("transport", "http"))


async def test_the_metrics_of_a_scripted_exchange(held_server: tuple[ChatServer, Path]) -> None:
    server, hold = held_server
    chatroom = new_room()
    async with (
        socket(server, cgt.GRAPHQL_TRANSPORT_WS) as sender,
        socket(server, cgt.GRAPHQL_WS) as reader,
    ):
        await sender.subscribe(chatroom)
        await reader.subscribe(chatroom)
        await scraped_when(
            server,
            {
                ("channels_graphql_connections_open", websocket(cgt.GRAPHQL_TRANSPORT_WS)): 1,
                ("channels_graphql_connections_open", websocket(cgt.GRAPHQL_WS)): 1,
                ("channels_graphql_subscriptions_active", SUBSCRIPTION): 2,
            },
        )
        # The sender's own subscription skips its message; the reader gets it.
        mutation = f'mutation {{ sendChatMessage(chatroom: "{chatroom}", text: "hello") {{ ok }} }}'
        await sender.send({"type": "subscribe", "id": "send", "payload": {"query": mutation}})
        assert await sender.receive() == {
            "type": "next",
            "id": "send",
            "payload": {"data": {"sendChatMessage": {"ok": True}}},
        }
        assert await sender.receive() == {"type": "complete", "id": "send"}
        assert await reader.texts(1) == ["hello"]
        await reader.send({"type": "start", "id": "bad", "payload": {"query": "{ nothing }"}})
        assert (await reader.receive())["type"] == "error"
        await scraped_when(
            server, {("channels_graphql_notifications_skipped_total", SUBSCRIPTION): 1}
        )
        # The burst: both queues get all of it at once and keep the newest QUEUE_LIMIT.
        texts = [f"burst {index}" for index in range(BURST)]
        hold.touch()
        try:
            for text in texts:
                await asyncio.to_thread(post_message, server, chatroom, text)
        finally:
            hold.unlink()
        assert await sender.texts(QUEUE_LIMIT) == texts[-QUEUE_LIMIT:]
        assert await reader.texts(QUEUE_LIMIT) == texts[-QUEUE_LIMIT:]
        await reader.connection.close(code=1001)  # going away
    delivered = 1 + 2 * QUEUE_LIMIT
    expected: dict[Series, float] = {
        ("channels_graphql_connections_opened_total", websocket(cgt.GRAPHQL_TRANSPORT_WS)): 1,
        ("channels_graphql_connections_opened_total", websocket(cgt.GRAPHQL_WS)): 1,
        ("channels_graphql_connections_open", websocket(cgt.GRAPHQL_TRANSPORT_WS)): 0,
        ("channels_graphql_connections_open", websocket(cgt.GRAPHQL_WS)): 0,
        (
            "channels_graphql_connections_closed_total",
            (("code", "1000"), ("transport", "websocket")),
        ): 1,
        (
            "channels_graphql_connections_closed_total",
            (("code", "1001"), ("transport", "websocket")),
        ): 1,
        ("channels_graphql_operations_started_total", (("type", "subscription"),)): 2,
        # Each burst message is an HTTP request: a connection of its own, answered 200.
        ("channels_graphql_connections_opened_total", HTTP): BURST,
        ("channels_graphql_connections_open", HTTP): 0,
        ("channels_graphql_connections_closed_total", (("code", "200"), ("transport", "http"))): (
            BURST
        ),
        ("channels_graphql_operations_started_total", (("type", "mutation"),)): 1 + BURST,
        ("channels_graphql_operations_completed_total", (("type", "subscription"),)): 2,
        ("channels_graphql_operations_completed_total", (("type", "mutation"),)): 1 + BURST,
        (
            "channels_graphql_operations_failed_total",
            (("reason", "invalid"), ("type", "unknown")),
        ): 1,
        ("channels_graphql_operation_duration_seconds_count", (("type", "mutation"),)): 1 + BURST,
        ("channels_graphql_subscriptions_active", SUBSCRIPTION): 0,
        ("channels_graphql_notifications_delivered_total", SUBSCRIPTION): delivered,
        ("channels_graphql_notifications_skipped_total", SUBSCRIPTION): 1,
        ("channels_graphql_notifications_dropped_total", SUBSCRIPTION): 2 * (BURST - QUEUE_LIMIT),
        ("channels_graphql_notification_queue_high_water", SUBSCRIPTION): QUEUE_LIMIT,
        ("channels_graphql_notification_latency_seconds_count", SUBSCRIPTION): delivered,
        # The first subscriber of each event executes it, the second shares its result.
        ("channels_graphql_subscription_results_total", (("source", "executed"),)): 1 + QUEUE_LIMIT,
        ("channels_graphql_subscription_results_total", (("source", "shared"),)): QUEUE_LIMIT,
        ("channels_graphql_channel_layer_failure_episodes_total", (("layer", "default"),)): 0,
        ("channels_graphql_channel_layer_retries_total", (("layer", "default"),)): 0,
        ("channels_graphql_channel_layer_malformed_messages_total", (("layer", "default"),)): 0,
    }
    values = await scraped_when(server, expected)
    # Nothing else was counted (the histograms' buckets and sums aside).
    others = {
        series: value
        for series, value in values.items()
        if series not in expected and not series[0].endswith(("_bucket", "_sum"))
    }
    assert others == {}
    latency_sum = values[("channels_graphql_notification_latency_seconds_sum", SUBSCRIPTION)]
    assert 0 < latency_sum < delivered * TIMEOUT
