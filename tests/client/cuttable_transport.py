"""A transport wrapper whose connection the test cuts, as a network failure does."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import channels_graphql_typed as cgt

if TYPE_CHECKING:
    from channels_graphql_typed import GraphqlWsTransport


class CuttableTransport:
    """Delegates to ``inner``; after :meth:`cut`, the current connection fails as a
    dropped one does (code 1006, no close frame read) and the client reconnects."""

    def __init__(self, inner: GraphqlWsTransport) -> None:
        self.inner = inner
        self._cut = asyncio.Event()
        self.connections = 0

    @property
    def subprotocol(self) -> str | None:
        return self.inner.subprotocol

    def cut(self) -> None:
        self._cut.set()

    async def connect(self, subprotocol: str) -> None:
        self._cut = asyncio.Event()
        await self.inner.connect(subprotocol)
        self.connections += 1

    async def send(self, text: str) -> None:
        if self._cut.is_set():
            raise cgt.GraphqlWsConnectionClosed(cgt.CloseCode.ABNORMAL_CLOSURE, "cut")
        await self.inner.send(text)

    async def receive(self) -> str:
        cut = self._cut
        receiving = asyncio.ensure_future(self.inner.receive())
        cutting = asyncio.ensure_future(cut.wait())
        try:
            await asyncio.wait({receiving, cutting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cutting.cancel()
            if not receiving.done():
                receiving.cancel()
        if cut.is_set():
            # What arrived after the cut is lost, as it is on a dropped connection.
            if receiving.done() and not receiving.cancelled():
                receiving.exception()
            raise cgt.GraphqlWsConnectionClosed(cgt.CloseCode.ABNORMAL_CLOSURE, "cut")
        return receiving.result()

    async def close(self, code: int = cgt.CloseCode.NORMAL, reason: str = "") -> None:
        await self.inner.close(code, reason)
