"""Fixtures of the client tests: a uvicorn server in the test's event loop, and
:func:`connector`, which runs a test once per transport.

uvicorn serves in the test's own event loop (not in a child process, unlike
``tests/e2e``), on a socket bound to 127.0.0.1 on a free ephemeral port: it shares the
in-memory channel layer and the module state of the test, so a test can broadcast,
unsubscribe and read what the server recorded, whichever transport it runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from typing import TYPE_CHECKING, Any, Final

import pytest
import uvicorn

from channels_graphql_typed import GraphqlWsClient, GraphqlWsTransportAiohttp
from channels_graphql_typed.testing import GraphqlWsTransportCommunicator as InProcessTransport
from tests.client.routing import application

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from channels.utils import _ChannelApplication

    from channels_graphql_typed import GraphqlWsTransport

HOST: Final = "127.0.0.1"
STARTUP_TIMEOUT: Final = 5.0
TIMEOUT: Final = 5.0
"""The clients' timeout in these tests: long enough never to fire by accident."""


@dataclasses.dataclass(frozen=True, slots=True)
class UvicornServer:
    """A uvicorn server listening on ``HOST:port``."""

    port: int

    def url(self, path: str) -> str:
        return f"ws://{HOST}:{self.port}{path}"


@contextlib.asynccontextmanager
async def serve(app: _ChannelApplication, port: int = 0) -> AsyncIterator[UvicornServer]:
    """Serve ``app`` with uvicorn in this event loop until the block ends, on ``port``
    (0: a free one; a given one to serve again where a stopped server was)."""
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind((HOST, port))  # 0: the kernel picks a free port, no race with others
    config = uvicorn.Config(
        app,
        lifespan="off",  # Channels' routers have no lifespan support
        ws="websockets-sansio",
        log_config=None,  # leave the logging configuration of the test run alone
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:  # bounded poll: uvicorn has no startup event
            if task.done():
                task.result()
                pytest.fail("uvicorn exited during startup")
            if time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not start within {STARTUP_TIMEOUT} s")
            await asyncio.sleep(0.005)
        yield UvicornServer(listening.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        listening.close()


@pytest.fixture
async def uvicorn_server() -> AsyncIterator[UvicornServer]:
    """The test application (:mod:`tests.client.routing`) behind uvicorn."""
    async with serve(application) as server:
        yield server


class Connector:
    """Makes transports and clients for one transport kind: ``"in-process"`` (Channels'
    communicator) or ``"aiohttp"`` (a real socket to :func:`uvicorn_server`)."""

    def __init__(self, kind: str, server: UvicornServer | None) -> None:
        self.kind = kind
        self.server = server

    def transport(
        self,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> GraphqlWsTransport:
        if self.server is None:
            return InProcessTransport(application, path, headers=headers, cookies=cookies)
        return GraphqlWsTransportAiohttp(self.server.url(path), headers=headers, cookies=cookies)

    def client(
        self,
        path: str,
        subprotocol: str,
        *,
        connection_params: dict[str, Any] | None = None,
        timeout: float = TIMEOUT,
        wrap: Callable[[GraphqlWsTransport], GraphqlWsTransport] | None = None,
    ) -> GraphqlWsClient:
        """A client, not connected yet: ``async with`` it."""
        transport = self.transport(path)
        return GraphqlWsClient(
            wrap(transport) if wrap else transport,
            subprotocol=subprotocol,
            connection_params=connection_params,
            timeout=timeout,
        )


@pytest.fixture(params=["in-process", "aiohttp"])
async def connector(request: pytest.FixtureRequest) -> AsyncIterator[Connector]:
    """Runs a test once per transport; the server runs only for aiohttp."""
    kind: str = request.param
    if kind == "in-process":
        yield Connector(kind, None)
        return
    async with serve(application) as server:
        yield Connector(kind, server)


async def eventually(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait until ``condition()`` holds: a bounded poll, for state without an event."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition still false after {timeout} s")
        await asyncio.sleep(0.005)
