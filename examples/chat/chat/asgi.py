"""The ASGI application: ``/graphql/`` to :class:`ChatHttpConsumer` (HTTP) and
:class:`ChatConsumer` (WebSocket), the pages to Django.

``.venv/bin/python -m uvicorn --app-dir examples/chat chat.asgi:application`` or
``.venv/bin/python examples/chat/manage.py runserver`` (Daphne's) serve it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat.settings")

from django.core.asgi import get_asgi_application

# Sets Django up before anything imports models.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from .schema import ChatConsumer, ChatHttpConsumer  # noqa: E402

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
# Channels' middleware is typed for ASGI 2 (the stubs), Django's handler for plain dicts.
graphql_http: Any = AuthMiddlewareStack(URLRouter([ChatHttpConsumer.as_route("graphql/")]))


async def http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/graphql/`` to :class:`ChatHttpConsumer`, every other path to Django."""
    if scope["path"] == "/graphql/":
        await graphql_http(scope, receive, send)
    else:
        await django_application(scope, receive, send)


websocket_routes = [ChatConsumer.as_route("graphql/")]

application = ProtocolTypeRouter(
    {
        # The session cookie identifies the user, on both transports. Both consumers
        # refuse the pages of other sites (an Origin not in ALLOWED_HOSTS) and accept
        # clients that send no Origin: they are not browsers, so they carry no victim's
        # cookies. Over HTTP, a body that is not JSON is refused before anything runs,
        # so an HTML form of another site cannot post an operation either.
        "http": http,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_routes)),
        "lifespan": lifespan,
    }
)
# --8<-- [end:asgi-1]
