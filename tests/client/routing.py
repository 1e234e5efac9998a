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
* ``/misbehaving/<kind>/`` -- :func:`misbehaving_application`: breaks the protocol.

:data:`strawberry_application` serves the test schema at ``/graphql/`` with
Strawberry's own Channels consumer: a server that is not ours.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

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
        WebSocketScope,
    )


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
]
application = URLRouter(websocket_routes)  # type: ignore[arg-type]

strawberry_routes = [
    path("graphql/", GraphQLWSConsumer.as_asgi(schema=test_schema)),  # type: ignore[arg-type]
]
strawberry_application = URLRouter(strawberry_routes)  # type: ignore[arg-type]
