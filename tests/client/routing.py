"""The ASGI applications the client tests run, in-process and behind uvicorn alike.

WebSocket routes of :data:`application` (this library's consumer):

* ``/graphql/`` -- ``SchemaConsumer``, the test schema with default settings;
* ``/hooks/`` -- ``HookConsumer``: wants ``{"token": "secret"}``, acks ``{"welcome": true}``;
* ``/ping/`` -- ``PingConsumer``: a keep-alive every 0.05 s;
* ``/typed/`` -- ``ConfirmingConsumer``: the typed subscriptions, each confirmed by a
  first ``{"data": null}`` result once it is in its groups;
* ``/legacy-only/`` -- ``LegacyOnlyConsumer``: graphql-ws only;
* ``/scope/`` -- :class:`ScopeConsumer`: reports request headers and cookies;
* ``/silent/`` -- :class:`SilentConsumer`: never acknowledges;
* ``/refuse/`` -- :class:`RefusingConsumer`: refuses the handshake;
* ``/misbehaving/<kind>/`` -- :func:`misbehaving_application`: breaks the protocol;
* ``/dropping/`` -- :class:`DroppingConsumer`: the typed subscriptions, confirmed; the
  test closes its connections with the code it chooses;
* ``/deaf/`` -- :class:`DeafConsumer`: acknowledges, then never answers a ``ping``.

:data:`strawberry_application` serves the test schema at ``/graphql/`` with
Strawberry's own Channels consumer: a server that is not ours.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, ClassVar

import strawberry
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path
from strawberry.channels import GraphQLWSConsumer

import channels_graphql_typed as cgt
from tests.consumers import HookConsumer, LegacyOnlyConsumer, PingConsumer, SchemaConsumer
from tests.schema import schema as test_schema
from tests.subscriptions import ConfirmingConsumer

if TYPE_CHECKING:
    from asgiref.typing import (
        ASGIReceiveCallable,
        ASGISendCallable,
        WebSocketConnectEvent,
        WebSocketDisconnectEvent,
        WebSocketReceiveEvent,
        WebSocketScope,
    )

    from channels_graphql_typed._protocol.messages import OperationPayload


@strawberry.type
class ScopeQuery:
    @strawberry.field
    def header(self, info: strawberry.Info[cgt.Context, None], name: str) -> str | None:
        headers: list[tuple[bytes, bytes]] = info.context.scope["headers"]
        values = [value.decode("latin-1") for key, value in headers if key == name.encode()]
        return values[0] if values else None


class ScopeConsumer(cgt.GraphqlWsConsumer):
    schema = strawberry.Schema(query=ScopeQuery)


class SilentConsumer(cgt.GraphqlWsConsumer):
    """Its ``on_connect`` never returns: the client never gets an acknowledgement."""

    schema = test_schema
    connection_init_wait_timeout = None

    async def on_connect(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        await asyncio.Event().wait()
        return None  # pragma: no cover


class RefusingConsumer(AsyncWebsocketConsumer):
    """Closes before accepting: a server answers the handshake with HTTP 403."""

    async def websocket_connect(self, message: WebSocketConnectEvent) -> None:
        await self.close()


class DroppingConsumer(ConfirmingConsumer):
    """Confirms subscriptions; :meth:`drop_all` closes every open connection with the
    code the test chooses, as a failing or restarting server does."""

    live: ClassVar[list[DroppingConsumer]] = []
    operations: ClassVar[list[str]] = []
    """The queries of the operations started, in order, on every connection."""

    async def websocket_connect(self, message: WebSocketConnectEvent) -> None:
        self.live.append(self)
        await super().websocket_connect(message)

    async def websocket_disconnect(self, message: WebSocketDisconnectEvent) -> None:
        if self in self.live:
            self.live.remove(self)
        await super().websocket_disconnect(message)

    async def on_operation(self, id: str, payload: OperationPayload) -> None:
        self.operations.append(payload["query"])

    @classmethod
    async def drop_all(cls, code: int, reason: str = "") -> int:
        """Close every open connection with ``code``; how many there were."""
        dropping = list(cls.live)
        cls.live.clear()
        for consumer in dropping:
            await consumer._close(code, reason)
        return len(dropping)


class DeafConsumer(cgt.GraphqlWsConsumer):
    """Acknowledges, then ignores every client ``ping``; sends no keep-alive: a server
    that stopped answering, as far as the client can tell."""

    schema = test_schema

    async def websocket_receive(self, message: WebSocketReceiveEvent) -> None:
        text = message.get("text")
        if text is not None and json.loads(text).get("type") == "ping":
            return
        await super().websocket_receive(message)


DISCONNECT_CODES: list[int] = []
"""Close codes :func:`misbehaving_application` got from its clients."""


async def misbehaving_application(
    scope: WebSocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    """Accepts the offered subprotocol, then answers every frame badly, by the path's
    last segment: ``binary`` sends a binary frame, ``garbage`` text that is not JSON,
    ``crash`` raises."""
    kind = scope["path"].rstrip("/").rsplit("/", 1)[-1]
    await receive()  # websocket.connect
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": next(iter(scope["subprotocols"])),
            "headers": [],
        }
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            DISCONNECT_CODES.append(message["code"])
            return
        if kind == "binary":
            await send({"type": "websocket.send", "bytes": b"\x00", "text": None})
        elif kind == "garbage":
            await send({"type": "websocket.send", "bytes": None, "text": "not json"})
        else:
            raise ValueError("crashed on purpose")


# types-channels types django.urls.path() for Django views only, hence the ignores.
websocket_routes = [
    path("graphql/", SchemaConsumer.as_asgi()),  # type: ignore[arg-type]
    path("hooks/", HookConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ping/", PingConsumer.as_asgi()),  # type: ignore[arg-type]
    path("typed/", ConfirmingConsumer.as_asgi()),  # type: ignore[arg-type]
    path("legacy-only/", LegacyOnlyConsumer.as_asgi()),  # type: ignore[arg-type]
    path("scope/", ScopeConsumer.as_asgi()),  # type: ignore[arg-type]
    path("silent/", SilentConsumer.as_asgi()),  # type: ignore[arg-type]
    path("refuse/", RefusingConsumer.as_asgi()),  # type: ignore[arg-type]
    path("misbehaving/<str:kind>/", misbehaving_application),  # type: ignore[arg-type]
    path("dropping/", DroppingConsumer.as_asgi()),  # type: ignore[arg-type]
    path("deaf/", DeafConsumer.as_asgi()),  # type: ignore[arg-type]
]
application = URLRouter(websocket_routes)  # type: ignore[arg-type]

strawberry_routes = [
    path("graphql/", GraphQLWSConsumer.as_asgi(schema=test_schema)),  # type: ignore[arg-type]
]
strawberry_application = URLRouter(strawberry_routes)  # type: ignore[arg-type]
