"""The ASGI application of the well-configured settings: only a well-configured consumer."""

from __future__ import annotations

from channels.routing import ProtocolTypeRouter, URLRouter

from tests.deploy_checks.consumers import ServedConsumer

application = ProtocolTypeRouter({"websocket": URLRouter([ServedConsumer.as_route("graphql/")])})
