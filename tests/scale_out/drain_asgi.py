"""The ASGI application of the drain tests' servers:
``uvicorn tests.scale_out.drain_asgi:application --lifespan on``.

The scale-out tests' application (``ConfirmingConsumer`` at ``/graphql/``, plus the
same schema over HTTP and SSE, ``ConfirmingHttpConsumer``, at ``/graphql/``) wrapped
in :func:`~channels_graphql_typed.drain_on_shutdown`, with the drain's window and
in-flight limit from the environment (``CGT_TEST_DRAIN_WINDOW``,
``CGT_TEST_DRAIN_IN_FLIGHT``, in seconds).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.scale_out.settings")

import django

django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from channels_graphql_typed import GraphqlHttpConsumer, drain_on_shutdown  # noqa: E402
from tests.subscriptions import ConfirmingConsumer  # noqa: E402


class ConfirmingHttpConsumer(GraphqlHttpConsumer):
    schema = ConfirmingConsumer.schema
    confirm_subscriptions = True


WINDOW = float(os.environ.get("CGT_TEST_DRAIN_WINDOW", "10"))
IN_FLIGHT_TIMEOUT = float(os.environ.get("CGT_TEST_DRAIN_IN_FLIGHT", "10"))

# --8<-- [start:drain]
application = drain_on_shutdown(
    ProtocolTypeRouter(
        {
            "http": URLRouter([ConfirmingHttpConsumer.as_route("graphql/")]),
            "websocket": URLRouter([ConfirmingConsumer.as_route("graphql/")]),
        }
    ),
    window=WINDOW,  # seconds over which the process closes its connections
    in_flight_timeout=IN_FLIGHT_TIMEOUT,  # at most this much more for work under way
)
# --8<-- [end:drain]
