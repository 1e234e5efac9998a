"""Test helpers: the client driving an ASGI application in-process, for pytest suites.

:class:`GraphqlWsTransportCommunicator` implements the client's transport protocol on Channels'
``WebsocketCommunicator``, so that :class:`~channels_graphql_typed.GraphqlWsClient`
talks to a consumer (or a whole router) in the test's event loop, without a server::

    from channels_graphql_typed.testing import graphql_ws_client

    async def test_hello() -> None:
        async with graphql_ws_client(MyGraphqlConsumer.as_asgi()) as client:
            result = await client.execute("{ hello }")
            assert result.data == {"hello": "Hello, world!"}

This module imports ``channels.testing``; the package does not import it.

Why not ``WebsocketCommunicator.receive_output(timeout)``: when its timeout runs out,
it cancels the application. The transport waits for the application's next message,
or for its end, with no timeout of its own, and the client bounds the wait: a client
timeout leaves the application running, as a slow server would be on a real socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import TYPE_CHECKING, Any

try:
    from channels.testing import WebsocketCommunicator
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if (exc.name or "").partition(".")[0] != "daphne":
        raise
    raise ModuleNotFoundError(
        "channels_graphql_typed.testing needs daphne (Channels' testing module imports "
        "it): pip install 'channels-graphql-typed[testing]'",
        name="daphne",
    ) from exc

from ._client.aiohttp import cookie_header
from ._client.client import DEFAULT_TIMEOUT, GraphqlWsClient
from ._exceptions import GraphqlWsConnectionClosed, GraphqlWsProtocolError, GraphqlWsTimeoutError
from ._protocol.common import CloseCode
from ._protocol.messages import GRAPHQL_TRANSPORT_WS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from channels.utils import _ChannelApplication

    from ._client.transport import GraphqlWsTransport as GraphqlWsTransportProtocol

__all__ = ["GraphqlWsTransport", "GraphqlWsTransportCommunicator", "graphql_ws_client"]


class GraphqlWsTransportCommunicator:
    """A client transport to an ASGI application running in this process.

    ``application`` is anything Channels' ``WebsocketCommunicator`` runs: a consumer's
    ``as_asgi()``, a ``URLRouter``, a ``ProtocolTypeRouter``, with middleware. ``path``
    (with an optional query string) and ``headers`` make the connection's scope;
    ``cookies`` become a ``Cookie`` header (for Channels' session and auth middleware).
    ``subprotocol`` presets the subprotocol (the client's ``subprotocol=`` may say it
    instead). ``close_timeout`` bounds how long :meth:`close` waits for the application
    to finish after the disconnect.

    As with a real server, a connection the application refuses before accepting it
    raises :class:`GraphqlWsConnectionClosed` with code 1006, ``ABNORMAL_CLOSURE`` (the
    server's HTTP 403). Unlike one, an application that raises ends the connection with
    code 1011, ``UNEXPECTED_CONDITION``, and the
    exception as the ``__cause__``, for the test to see.
    """

    def __init__(
        self,
        application: _ChannelApplication,
        path: str = "/graphql/",
        *,
        subprotocol: str | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        close_timeout: float = 5.0,
    ) -> None:
        self.application = application
        self.path = path
        all_headers = dict(headers or {})
        if cookies:
            all_headers["cookie"] = cookie_header(cookies)
        self.scope_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in all_headers.items()
        ]
        self.close_timeout = close_timeout
        self._requested = subprotocol
        self._accepted: str | None = None
        self._communicator: WebsocketCommunicator | None = None
        self._buffer: collections.deque[dict[str, Any]] = collections.deque()
        self._closed: GraphqlWsConnectionClosed | None = None
        self._disconnected = False

    @property
    def communicator(self) -> WebsocketCommunicator:
        """The underlying communicator (once connected)."""
        if self._communicator is None:
            raise RuntimeError("The transport is not connected")
        return self._communicator

    @property
    def subprotocol(self) -> str | None:
        """Before :meth:`connect`: the preset subprotocol; after: the accepted one."""
        return self._accepted if self._communicator is not None else self._requested

    async def connect(self, subprotocol: str) -> None:
        """Start the application and run the WebSocket handshake, offering ``subprotocol``
        (again after :meth:`close`: a new instance of the application)."""
        if self._communicator is not None and not self._disconnected:
            raise RuntimeError("The transport is connected: close it before connecting again")
        # A new connection (and application instance) after a closed one: how the
        # client reconnects.
        self._accepted = None
        self._buffer.clear()
        self._closed = None
        self._disconnected = False
        self._communicator = WebsocketCommunicator(
            self.application, self.path, headers=self.scope_headers, subprotocols=[subprotocol]
        )
        try:
            await self._communicator.send_input({"type": "websocket.connect"})
            message = await self._next_output()
            if message["type"] == "websocket.close":
                # Closed before accepting: an ASGI server answers HTTP 403, which a
                # client sees as a connection that failed without a close frame.
                self._closed = GraphqlWsConnectionClosed(
                    CloseCode.ABNORMAL_CLOSURE, "WebSocket handshake refused: HTTP 403"
                )
                raise GraphqlWsConnectionClosed(*self._closed.args)
            if message["type"] != "websocket.accept":
                raise GraphqlWsProtocolError(f"Unexpected handshake answer {message['type']!r}")
            self._accepted = message.get("subprotocol")
            if self._accepted != subprotocol:
                raise GraphqlWsProtocolError(
                    f"The application accepted subprotocol {self._accepted!r}"
                    f" instead of {subprotocol!r}"
                )
        except BaseException:
            await self.close()
            raise

    async def send(self, text: str) -> None:
        """Give the application one text frame."""
        communicator = self.communicator
        if self._closed is not None:
            raise GraphqlWsConnectionClosed(*self._closed.args)
        if communicator.future.done():
            raise self._application_ended()
        await communicator.send_input({"type": "websocket.receive", "text": text})

    async def receive(self) -> str:
        """The application's next text frame; raises once the socket is closed."""
        while True:
            if self._closed is not None:
                raise GraphqlWsConnectionClosed(*self._closed.args)
            message = await self._next_output()
            if message["type"] == "websocket.send":
                text = message.get("text")
                if text is None:
                    raise GraphqlWsProtocolError(
                        "The application sent a binary frame; GraphQL over WebSocket uses text"
                    )
                return str(text)
            if message["type"] == "websocket.close":
                raise self._closed_now(message)
            # Anything else (an extension's message) is no frame: skip it.

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Disconnect: the application gets ``websocket.disconnect`` and is awaited."""
        communicator = self._communicator
        if communicator is None or self._disconnected:
            return
        self._disconnected = True
        if self._closed is None:
            self._closed = GraphqlWsConnectionClosed(code, reason)
        else:
            # The application closed first: a server reports that close code to it.
            code = self._closed.code
        if communicator.future.done():
            return  # it has ended (and its error, if any, was reported by receive)
        await communicator.send_input(
            {"type": "websocket.disconnect", "code": code, "reason": reason}
        )
        try:
            # Raises what the application raises while handling the disconnect.
            await communicator.wait(self.close_timeout)
        except TimeoutError:
            raise GraphqlWsTimeoutError(
                f"The application did not finish within {self.close_timeout} s"
                " of the disconnect (it has been cancelled)"
            ) from None

    async def _next_output(self) -> dict[str, Any]:
        """The application's next message, waiting as long as it takes, without ever
        cancelling the application (unlike ``receive_output``)."""
        if self._buffer:
            return self._buffer.popleft()
        communicator = self.communicator
        queue: asyncio.Queue[dict[str, Any]] = communicator.output_queue
        if not queue.empty():
            return queue.get_nowait()
        application: asyncio.Future[None] = communicator.future
        if application.done():
            raise self._application_ended()
        getter: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(queue.get())
        waited: list[asyncio.Future[Any]] = [getter, application]
        try:
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            if getter.done() and not getter.cancelled():
                self._buffer.append(getter.result())  # cancelled just after it arrived
            getter.cancel()
            raise
        if getter.done():
            return getter.result()
        getter.cancel()
        raise self._application_ended()

    def _closed_now(self, message: dict[str, Any]) -> GraphqlWsConnectionClosed:
        self._closed = GraphqlWsConnectionClosed(
            message.get("code") or CloseCode.NORMAL, message.get("reason") or ""
        )
        return GraphqlWsConnectionClosed(*self._closed.args)

    def _application_ended(self) -> GraphqlWsConnectionClosed:
        application = self.communicator.future
        error = None if application.cancelled() else application.exception()
        if error is not None:
            closed = GraphqlWsConnectionClosed(
                CloseCode.UNEXPECTED_CONDITION,
                f"The application raised {type(error).__name__}: {error}",
            )
            closed.__cause__ = error
        else:
            closed = GraphqlWsConnectionClosed(
                CloseCode.ABNORMAL_CLOSURE, "The application ended without closing the socket"
            )
        if self._closed is None:
            self._closed = closed
        return closed


if TYPE_CHECKING:
    _check: type[GraphqlWsTransportProtocol] = GraphqlWsTransportCommunicator

GraphqlWsTransport = GraphqlWsTransportCommunicator
"""The former name of :class:`GraphqlWsTransportCommunicator`, kept so that existing
imports work; it clashed with the transport protocol
``channels_graphql_typed.GraphqlWsTransport``."""


@contextlib.asynccontextmanager
async def graphql_ws_client(
    application: _ChannelApplication,
    path: str = "/graphql/",
    *,
    subprotocol: str = GRAPHQL_TRANSPORT_WS,
    connection_params: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    cookies: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> AsyncIterator[GraphqlWsClient]:
    """A connected, initialised client of ``application``, closed on exit::

        @pytest.fixture(params=["graphql-transport-ws", "graphql-ws"])
        async def client(request) -> AsyncIterator[GraphqlWsClient]:
            async with graphql_ws_client(application, subprotocol=request.param) as client:
                yield client

    The arguments are those of :class:`GraphqlWsTransportCommunicator` and
    :class:`~channels_graphql_typed.GraphqlWsClient`.
    """
    transport = GraphqlWsTransportCommunicator(application, path, headers=headers, cookies=cookies)
    async with GraphqlWsClient(
        transport, subprotocol=subprotocol, connection_params=connection_params, timeout=timeout
    ) as client:
        yield client
