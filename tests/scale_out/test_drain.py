"""The graceful drain with a real server: uvicorn serving
:mod:`tests.scale_out.drain_asgi` on Redis gets SIGTERM in the middle of a broadcast
burst from the test process.

Every subscriber gets every notification broadcast before the signal, in order, then a
1012 close within the drain's bound; a query under way finishes; a request during the
drain gets 503; the process exits within the drain's bound (generous upper bounds only:
they prove that nothing hangs). The library's client, with retries, takes the 1012 as a
reason to reconnect and goes on with its subscription on the server that replaces the
drained one (same port).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import pytest

import channels_graphql_typed as cgt
from tests.processes import HOST, free_port, stop_process, wait_until_listening
from tests.redis_support import REDIS_URL, require_redis
from tests.scale_out.conftest import (
    CHAT,
    CLIENT_TIMEOUT,
    CONNECT_TIMEOUT,
    RECOMMENDED_SOCKET_TIMEOUT,
    ROOT,
    STARTUP_TIMEOUT,
    channel_layers_for,
    new_prefix,
    new_room,
    process_environment,
)
from tests.subscriptions import ChatEvent, OnNewChatMessage

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow

WINDOW: Final = 2.0
IN_FLIGHT: Final = 2.0
BOUND: Final = WINDOW + IN_FLIGHT + 5.0
"""A generous upper bound of the drain, from the signal: it proves that nothing hangs."""
SOCKETS: Final = 10
BEFORE_SIGNAL: Final = 150
"""Broadcasts awaited before the signal is sent: each subscriber must get them all."""
AFTER_SIGNAL: Final = 150
LAYER: Final = "channels_redis.core.RedisChannelLayer"


APPLICATION: Final = "tests.scale_out.drain_asgi:application"


def server_command(name: str, port: int) -> list[str]:
    """The command of a server as "Deploying" says to run it for the drain."""
    if name == "daphne":
        return [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), APPLICATION]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        APPLICATION,
        "--host",
        HOST,
        "--port",
        str(port),
        "--lifespan",
        "on",
        "--timeout-graceful-shutdown",
        "5",
    ]


class DrainServer:
    """One server process (uvicorn or Daphne) serving the drain application on ``port``."""

    def __init__(
        self, port: int, environment: dict[str, str], log_path: Path, name: str = "uvicorn"
    ) -> None:
        self.port = port
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                server_command(name, port),
                cwd=ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not wait_until_listening(
            self.process, port, timeout=STARTUP_TIMEOUT, connect_timeout=CONNECT_TIMEOUT
        ):
            stop_process(self.process)
            pytest.fail(f"uvicorn did not start:\n{self.output()}")

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/graphql/"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}/graphql/"

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def drain_setup(tmp_path: Path, settings: Any) -> Iterator[tuple[dict[str, str], Path]]:
    """The servers' environment (Redis, core layer, the drain's settings), with this
    test process on the same channel layers."""
    require_redis()
    from channels.layers import channel_layers

    layers = channel_layers_for(
        LAYER, REDIS_URL, new_prefix(LAYER), {"socket_timeout": RECOMMENDED_SOCKET_TIMEOUT}
    )
    environment = process_environment(layers)
    environment["CGT_TEST_DRAIN_WINDOW"] = str(WINDOW)
    environment["CGT_TEST_DRAIN_IN_FLIGHT"] = str(IN_FLIGHT)
    settings.CHANNEL_LAYERS = layers
    channel_layers.backends.clear()
    try:
        yield environment, tmp_path
    finally:
        channel_layers.backends.clear()


@contextlib.contextmanager
def drain_server(
    environment: dict[str, str], log_path: Path, port: int, name: str = "uvicorn"
) -> Iterator[DrainServer]:
    server = DrainServer(port, environment, log_path, name)
    try:
        yield server
    finally:
        stop_process(server.process, timeout=BOUND)


def event(room: str, text: str) -> ChatEvent:
    return ChatEvent(chatroom=room, text=text, sender="test", sender_channel="test")


async def collect_until_closed(
    stream: cgt.GraphqlWsSubscriptionStream,
) -> tuple[list[str], cgt.GraphqlWsConnectionClosed, float]:
    """Every notification until the connection closes: the texts, the close, when."""
    texts = []
    try:
        async for result in stream:
            assert result.errors is None, result.errors
            assert result.data is not None
            texts.append(result.data["onNewChatMessage"]["text"])
    except cgt.GraphqlWsConnectionClosed as closed:
        return texts, closed, time.monotonic()
    raise AssertionError(f"the subscription completed instead of closing, after {texts}")


async def event_stream(url: str, room: str, subscribed: asyncio.Event) -> list[str]:
    """A chat subscription over Server-Sent Events: its texts until the body ends (an
    error if the connection breaks instead)."""
    texts = []
    body = {"query": CHAT, "variables": {"chatroom": room}}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers={"accept": "text/event-stream"}) as response,
    ):
        assert response.status == 200
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            data = json.loads(line[5:]) if line[5:].strip() else None
            if data == {"data": None}:
                subscribed.set()  # the confirmation: in all its groups
            elif data is not None:
                texts.append(data["data"]["onNewChatMessage"]["text"])
    return texts


async def refused_during_drain(url: str) -> tuple[int, str | None]:
    """POST a query until the server answers 503 (the drain began) or is gone."""
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            try:
                async with http.post(url, json={"query": "{ hello }"}) as response:
                    if response.status == 503:
                        return response.status, response.headers.get("Retry-After")
            except aiohttp.ClientError:
                break
            await asyncio.sleep(0.02)
    raise AssertionError("no request got 503 during the drain")


@pytest.mark.parametrize("name", ["uvicorn", "daphne"])
async def test_sigterm_during_a_burst_drains_every_subscriber(
    drain_setup: tuple[dict[str, str], Path], name: str
) -> None:
    environment, log_dir = drain_setup
    room = new_room()
    texts = [f"message {number}" for number in range(BEFORE_SIGNAL + AFTER_SIGNAL)]
    with drain_server(environment, log_dir / f"{name}.log", free_port(), name) as server:
        async with contextlib.AsyncExitStack() as stack:
            streams = []
            for _ in range(SOCKETS):
                transport = cgt.GraphqlWsTransportAiohttp(server.ws_url)
                client = await stack.enter_async_context(
                    cgt.GraphqlWsClient(transport, timeout=CLIENT_TIMEOUT)
                )
                stream = await stack.enter_async_context(client.subscribe(CHAT, {"chatroom": room}))
                confirmation = await anext(stream)
                assert confirmation.data is None, confirmation
                stream.timeout = BOUND
                streams.append(stream)
            collectors = [asyncio.ensure_future(collect_until_closed(s)) for s in streams]
            sse_subscribed = asyncio.Event()
            sse = asyncio.ensure_future(event_stream(server.http_url, room, sse_subscribed))
            async with asyncio.timeout(CLIENT_TIMEOUT):
                await sse_subscribed.wait()
            # A query under way when the signal comes: it finishes before its socket closes.
            querying = await stack.enter_async_context(
                cgt.GraphqlWsClient(cgt.GraphqlWsTransportAiohttp(server.ws_url), timeout=BOUND)
            )
            query = asyncio.ensure_future(querying.execute("{ asyncSleep(seconds: 1.0) }"))
            for text in texts[:BEFORE_SIGNAL]:
                await OnNewChatMessage.broadcast(payload=event(room, text), group=room)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            refused = asyncio.ensure_future(refused_during_drain(server.http_url))
            for text in texts[BEFORE_SIGNAL:]:
                await OnNewChatMessage.broadcast(payload=event(room, text), group=room)
            async with asyncio.timeout(BOUND):
                results = await asyncio.gather(*collectors)
                answer = await query
                sse_texts = await sse
                status, retry_after = await refused
            await asyncio.to_thread(server.process.wait, BOUND)
            exited = time.monotonic()
    output = server.output()
    assert "Drain complete" in output, output
    assert answer.errors is None, answer
    assert answer.data == {"asyncSleep": 1.0}, answer
    assert (status, retry_after) == (503, "1")
    # The event stream ended cleanly, after all that was broadcast before the signal.
    assert sse_texts[:BEFORE_SIGNAL] == texts[:BEFORE_SIGNAL]
    assert sse_texts == texts[: len(sse_texts)]
    for received, closed, when in results:
        assert received[:BEFORE_SIGNAL] == texts[:BEFORE_SIGNAL], output
        assert received == texts[: len(received)]  # in order, none missing
        if name == "daphne":
            # autobahn sends no 1012 (only 1000 and 3000-4999), and no close reason.
            assert closed.code == cgt.CloseCode.NORMAL, closed
        else:
            assert closed.code == cgt.CloseCode.SERVICE_RESTART, closed
            assert closed.reason == "Service Restart"
        assert when - signalled < BOUND
    closes = sorted(when for _, _, when in results)
    assert closes[-1] > closes[0]  # spread, not all at one instant
    assert exited - signalled < BOUND


async def test_the_client_reconnects_after_a_drain(
    drain_setup: tuple[dict[str, str], Path],
) -> None:
    environment, log_dir = drain_setup
    room = new_room()
    port = free_port()
    states: list[cgt.GraphqlWsStateChange] = []

    async def retry_soon(retry: int) -> None:
        await asyncio.sleep(0.2)

    with drain_server(environment, log_dir / "first.log", port) as first:
        transport = cgt.GraphqlWsTransportAiohttp(first.ws_url)
        client = cgt.GraphqlWsClient(
            transport,
            timeout=CLIENT_TIMEOUT,
            retry_attempts=100,
            retry_wait=retry_soon,
            on_state=states.append,
        )
        async with client, client.subscribe(CHAT, {"chatroom": room}) as stream:
            stream.timeout = BOUND
            assert (await anext(stream)).data is None  # confirmed
            await OnNewChatMessage.broadcast(payload=event(room, "before"), group=room)
            assert (await anext(stream)).data == {"onNewChatMessage": {"text": "before"}}
            first.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(first.process.wait, BOUND)
            with drain_server(environment, log_dir / "second.log", port):
                # Subscribed again on the new server: its confirmation, then the news.
                assert (await anext(stream)).data is None
                await OnNewChatMessage.broadcast(payload=event(room, "after"), group=room)
                assert (await anext(stream)).data == {"onNewChatMessage": {"text": "after"}}
    reconnecting = [change for change in states if change.state.value == "reconnecting"]
    assert reconnecting, states
    error = reconnecting[0].error
    assert isinstance(error, cgt.GraphqlWsConnectionClosed), error
    assert error.code == cgt.CloseCode.SERVICE_RESTART
