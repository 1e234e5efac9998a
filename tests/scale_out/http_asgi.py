"""The ASGI application of the scale-out tests' HTTP servers:
``uvicorn tests.scale_out.http_asgi:application`` with ``tests.scale_out.settings``.

``/graphql/`` serves the typed subscriptions of :mod:`tests.subscriptions` over HTTP and
SSE (both graphql-sse modes) through ``SchemaHttpConsumer``, and over WebSocket through
``ConfirmingConsumer``.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.scale_out.settings")

import django

django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from tests.consumers import SchemaHttpConsumer  # noqa: E402
from tests.subscriptions import ConfirmingConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter([SchemaHttpConsumer.as_route("graphql/")]),
        "websocket": URLRouter([ConfirmingConsumer.as_route("graphql/")]),
    }
)
