"""What the client needs from a WebSocket: the :class:`GraphqlWsTransport` protocol.

Two implementations ship with the library: :class:`GraphqlWsTransportAiohttp` (a real
socket, through aiohttp) and ``channels_graphql_typed.testing.GraphqlWsTransport`` (an
ASGI application in the same process, through Channels' ``WebsocketCommunicator``).
"""

from __future__ import annotations

from typing import Protocol

from .._protocol.common import CloseCode


class GraphqlWsTransport(Protocol):
    """A WebSocket that carries text frames for :class:`GraphqlWsClient`.

    The client calls :meth:`connect`, then :meth:`receive` from one task only (its
    reader) while any task may :meth:`send`, and :meth:`close` at the end of the
    connection (possibly after a failed :meth:`connect`). To reconnect, it calls
    :meth:`connect` again after :meth:`close`: the transport opens a new socket (a
    transport that cannot raises ``RuntimeError`` from that call). The client bounds
    every call with its own timeout, so a transport may wait as long as the socket needs.
    """

    @property
    def subprotocol(self) -> str | None:
        """Before :meth:`connect`: the subprotocol this transport was told to request
        (None: no preference, the client chooses). After: the one the server accepted."""
        ...

    async def connect(self, subprotocol: str) -> None:
        """Open the WebSocket, offering exactly ``subprotocol``.

        Raises :class:`GraphqlWsConnectionClosed` if the socket cannot open (code 1006
        when there was no close frame) and :class:`GraphqlWsProtocolError` if the server
        accepted another subprotocol or none.
        """
        ...

    async def send(self, text: str) -> None:
        """Send one text frame; raises :class:`GraphqlWsConnectionClosed` once closed."""
        ...

    async def receive(self) -> str:
        """The next text frame from the server.

        Once the socket is closed, by either side, raises
        :class:`GraphqlWsConnectionClosed` with the close code and reason, on this call
        and every later one. A binary frame raises :class:`GraphqlWsProtocolError`.
        Cancelling a call must lose no frame.
        """
        ...

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the socket (if open) and release what the transport holds; idempotent."""
        ...
