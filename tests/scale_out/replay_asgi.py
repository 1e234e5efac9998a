"""The ASGI application of the replay end-to-end test's server:
``uvicorn tests.scale_out.replay_asgi:application`` with ``tests.scale_out.settings``.

``/graphql/`` serves the resumable subscriptions of :mod:`tests.replay_subscriptions`,
each confirmed by a first ``{"data": null}`` result once it is in its groups.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.scale_out.settings")

import django

django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from tests.replay_subscriptions import ReplayConsumer  # noqa: E402

# types-channels types django.urls.path() for Django views only, hence the ignores.
websocket_routes = [path("graphql/", ReplayConsumer.as_asgi())]  # type: ignore[arg-type]
router = URLRouter(websocket_routes)  # type: ignore[arg-type]
application = ProtocolTypeRouter({"websocket": router})
