"""ASGI entry point: ``uvicorn examples.minimal.asgi:application``."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.minimal.settings")

import django

django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from examples.minimal.schema import MinimalConsumer  # noqa: E402

# types-channels types django.urls.path() for Django views only, hence the ignore.
websocket_routes = [path("graphql/", MinimalConsumer.as_asgi())]  # type: ignore[arg-type]

application = ProtocolTypeRouter({"websocket": URLRouter(websocket_routes)})  # type: ignore[arg-type]
