"""The client's transport over a real WebSocket, on aiohttp."""

from __future__ import annotations

import http.cookies
from typing import TYPE_CHECKING

from .._exceptions import GraphqlWsConnectionClosed, GraphqlWsProtocolError
from .._protocol.common import CloseCode

if TYPE_CHECKING:
    from collections.abc import Mapping

    import aiohttp


def cookie_header(cookies: Mapping[str, str]) -> str:
    """A ``Cookie`` header value (values quoted as RFC 6265 requires)."""
    jar = http.cookies.SimpleCookie()
    for name, value in cookies.items():
        jar[name] = value
    return "; ".join(morsel.OutputString() for morsel in jar.values())


class GraphqlWsTransportAiohttp:
    """A :class:`GraphqlWsTransport` on an aiohttp WebSocket::

        transport = GraphqlWsTransportAiohttp(
            "ws://127.0.0.1:8000/graphql/", cookies={"sessionid": sid}
        )
        async with GraphqlWsClient(transport) as client:
            ...

    ``headers`` and ``cookies`` go with the handshake request (cookies as one
    ``Cookie`` header, whatever the host: aiohttp's cookie jar would drop them for
    an IP address). Without a ``session``, the transport opens its own
    ``aiohttp.ClientSession`` and closes it with the socket; a given session stays
    open. ``max_message_size`` bounds incoming frames (0: no limit);
    ``close_timeout`` bounds the wait for the server's close frame on :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        *,
        subprotocol: str | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        max_message_size: int = 4 * 1024 * 1024,
        close_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        if cookies:
            given = self.headers.pop("Cookie", None) or self.headers.pop("cookie", None)
            self.headers["Cookie"] = "; ".join(filter(None, [given, cookie_header(cookies)]))
        self.max_message_size = max_message_size
        self.close_timeout = close_timeout
        self._requested = subprotocol
        self._session = session
        self._owns_session = session is None
        self._websocket: aiohttp.ClientWebSocketResponse | None = None
        self._closed: GraphqlWsConnectionClosed | None = None

    @property
    def subprotocol(self) -> str | None:
        """Before :meth:`connect`: the requested subprotocol; after: the accepted one."""
        if self._websocket is not None:
            return self._websocket.protocol
        return self._requested

    async def connect(self, subprotocol: str) -> None:
        """Open the WebSocket, offering exactly ``subprotocol`` (again after :meth:`close`:
        a new socket)."""
        # Imported here: a server process that never uses the client does not pay
        # aiohttp's import time.
        import aiohttp

        if self._websocket is not None and self._closed is None:
            raise RuntimeError("The transport is connected: close it before connecting again")
        # A new socket after a closed one: how the client reconnects.
        self._websocket = None
        self._closed = None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            websocket = await self._session.ws_connect(
                self.url,
                protocols=(subprotocol,),
                headers=self.headers,
                max_msg_size=self.max_message_size,
                timeout=aiohttp.ClientWSTimeout(ws_close=self.close_timeout),
            )
        except aiohttp.WSServerHandshakeError as exc:
            reason = f"WebSocket handshake refused: HTTP {exc.status} {exc.message}"
            raise await self._connect_failed(reason) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise await self._connect_failed(f"Cannot connect to {self.url}: {exc}") from exc
        except BaseException:
            await self.close()
            raise
        self._websocket = websocket
        if websocket.protocol != subprotocol:
            await self.close()
            raise GraphqlWsProtocolError(
                f"The server accepted subprotocol {websocket.protocol!r} instead of {subprotocol!r}"
            )

    async def send(self, text: str) -> None:
        """Send one text frame."""
        websocket = self._connected()
        try:
            await websocket.send_str(text)
        except ConnectionError as exc:  # aiohttp: the socket is closing or gone
            raise self._closed_now(websocket.close_code, "") from exc

    async def receive(self) -> str:
        """The next text frame; raises :class:`GraphqlWsConnectionClosed` once closed."""
        import aiohttp

        websocket = self._connected()
        message = await websocket.receive()
        if message.type is aiohttp.WSMsgType.TEXT:
            text: str = message.data
            return text
        if message.type is aiohttp.WSMsgType.BINARY:
            raise GraphqlWsProtocolError(
                "The server sent a binary frame; GraphQL over WebSocket uses text frames"
            )
        if message.type is aiohttp.WSMsgType.CLOSE:
            # autoclose: aiohttp has answered the close frame already.
            raise self._closed_now(message.data, message.extra or "")
        if message.type is aiohttp.WSMsgType.ERROR:
            raise self._closed_now(CloseCode.ABNORMAL_CLOSURE, str(message.data))
        raise self._closed_now(websocket.close_code, "")

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the socket and, if the transport opened it, the aiohttp session."""
        websocket = self._websocket
        try:
            if websocket is not None and not websocket.closed:
                await websocket.close(code=code, message=reason.encode())
        finally:
            if self._closed is None:
                self._closed = GraphqlWsConnectionClosed(code, reason)
            if self._owns_session and self._session is not None:
                session, self._session = self._session, None
                await session.close()

    def _connected(self) -> aiohttp.ClientWebSocketResponse:
        if self._closed is not None:
            raise GraphqlWsConnectionClosed(*self._closed.args)
        if self._websocket is None:
            raise RuntimeError("The transport is not connected")
        return self._websocket

    def _closed_now(self, code: int | None, reason: str) -> GraphqlWsConnectionClosed:
        if self._closed is None:
            if not code or code == CloseCode.ABNORMAL_CLOSURE:
                code = CloseCode.ABNORMAL_CLOSURE
                reason = reason or "The connection was lost without a close frame"
            self._closed = GraphqlWsConnectionClosed(int(code), reason)  # not aiohttp's enum
        return GraphqlWsConnectionClosed(*self._closed.args)

    async def _connect_failed(self, reason: str) -> GraphqlWsConnectionClosed:
        self._closed = GraphqlWsConnectionClosed(CloseCode.ABNORMAL_CLOSURE, reason)
        await self.close()
        return GraphqlWsConnectionClosed(CloseCode.ABNORMAL_CLOSURE, reason)
