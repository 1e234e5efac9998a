from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "typed_app.settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from .schema import ChatConsumer  # noqa: E402

websocket_routes = [ChatConsumer.as_route("graphql/"), ChatConsumer.as_route("api/ws/")]

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_routes)),
    }
)
