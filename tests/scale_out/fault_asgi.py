"""The ASGI application of the fault tests' servers:
``uvicorn tests.scale_out.fault_asgi:application --lifespan on``.

The resumable and plain subscriptions of :mod:`tests.replay_subscriptions` at
``/graphql/``, wrapped in :func:`~channels_graphql_typed.drain_on_shutdown` with a short
window, so that SIGTERM closes the sockets with 1012 within a second.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.scale_out.settings")

import django

django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from channels_graphql_typed import drain_on_shutdown  # noqa: E402
from tests.replay_subscriptions import ReplayConsumer  # noqa: E402

application = drain_on_shutdown(
    ProtocolTypeRouter({"websocket": URLRouter([ReplayConsumer.as_route("graphql/")])}),
    window=1.0,
    in_flight_timeout=1.0,
)
