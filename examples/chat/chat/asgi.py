"""The ASGI application: HTTP to Django, WebSocket ``/graphql/`` to :class:`ChatConsumer`.

``.venv/bin/python -m uvicorn --app-dir examples/chat chat.asgi:application`` or
``.venv/bin/python examples/chat/manage.py runserver`` (Daphne's) serve it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat.settings")

from django.core.asgi import get_asgi_application

# Sets Django up before anything imports models.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from .schema import ChatConsumer  # noqa: E402

if TYPE_CHECKING:
    from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, LifespanScope


async def lifespan(
    scope: LifespanScope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    """Answers the ASGI lifespan protocol (uvicorn asks): nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# --8<-- [start:asgi-1]
websocket_routes = [ChatConsumer.as_route("graphql/")]

application = ProtocolTypeRouter(
    {
        "http": django_application,
        # The session cookie identifies the user. ChatConsumer refuses the pages of
        # other sites (an Origin not in ALLOWED_HOSTS) and accepts clients that send no
        # Origin: they are not browsers, so they carry no victim's cookies.
        "websocket": AuthMiddlewareStack(URLRouter(websocket_routes)),
        "lifespan": lifespan,
    }
)
# --8<-- [end:asgi-1]
