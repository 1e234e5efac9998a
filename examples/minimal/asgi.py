"""ASGI entry point: ``uvicorn examples.minimal.asgi:application``."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.minimal.settings")

import django

django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from examples.minimal.schema import MinimalConsumer, MinimalHttpConsumer  # noqa: E402

# One path for every transport: GraphQL over HTTP and SSE on "http", over WebSocket
# on "websocket".
# --8<-- [start:router]
application = ProtocolTypeRouter(
    {
        "http": URLRouter([MinimalHttpConsumer.as_route("graphql/")]),
        "websocket": URLRouter([MinimalConsumer.as_route("graphql/")]),
    },
)
# --8<-- [end:router]
