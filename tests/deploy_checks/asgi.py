"""The ASGI application of the deployment-check settings: it routes the consumers."""

from __future__ import annotations

from channels.routing import ProtocolTypeRouter, URLRouter

from tests.deploy_checks.consumers import ServedConsumer
from tests.deploy_checks.misconfigured_consumers import (
    OpenToEveryOriginConsumer,
    UnboundedConsumer,
)

application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                ServedConsumer.as_route("graphql/"),
                OpenToEveryOriginConsumer.as_route("open/"),
                UnboundedConsumer.as_route("unbounded/"),
            ]
        )
    }
)
