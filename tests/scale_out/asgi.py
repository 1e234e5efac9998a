"""The ASGI application of the scale-out tests' servers:
``uvicorn tests.scale_out.asgi:application`` with ``tests.scale_out.settings``.

``/graphql/`` serves the typed subscriptions of :mod:`tests.subscriptions` through
``ConfirmingConsumer``: a subscription's first result, ``{"data": null}``, says it is
in all its groups, so no broadcast sent afterwards can be missed.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.scale_out.settings")

import django

django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from tests.subscriptions import ConfirmingConsumer  # noqa: E402

# types-channels types django.urls.path() for Django views only, hence the ignores.
websocket_routes = [path("graphql/", ConfirmingConsumer.as_asgi())]  # type: ignore[arg-type]
router = URLRouter(websocket_routes)  # type: ignore[arg-type]
application = ProtocolTypeRouter({"websocket": router})
