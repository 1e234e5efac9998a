"""The end of a WebSocket's login.

**The end of a login.** A WebSocket authenticates once: Channels' ``AuthMiddleware``
reads the session when the socket opens, and the example's ``login`` stores a session
for it. Over HTTP, Django checks the session on every request. So that a socket does
not outlive its login, :func:`end_login_if_session_ended` runs before each of its
operations (``ChatConsumer.on_operation``) and does what Django does per request:
it loads the connection's session from the session store again (it may have been
deleted: a logout elsewhere; or have expired) and checks that its user still exists,
is active and has the password hash that the session was made with. If not, the
connection logs out, as the ``logout`` of Channels does: its session is flushed, its
user is anonymous for this operation and the next ones (a new ``login`` may follow).
It costs one thread hop and two small queries (the session, the user) per operation
of a logged-in connection, and nothing for an anonymous one; nothing is cached.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING, Any, Final, cast

from channels.auth import logout as channels_logout
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django.contrib.sessions.backends.base import SessionBase

    import channels_graphql_typed as cgt

logger = logging.getLogger(__name__)

SessionStore: Final[type[SessionBase]] = import_module(settings.SESSION_ENGINE).SessionStore


def _user_of_stored_session(session_key: str | None) -> User | AnonymousUser:
    # Django's own check, on a fresh copy of the session read from the store: the
    # connection's copy was read when the socket opened (or at its login).
    request = HttpRequest()
    request.session = SessionStore(session_key)
    return get_user(request)


async def end_login_if_session_ended(context: cgt.Context) -> None:
    """Log the connection out if its user's session has ended (see the module)."""
    user = context.user
    if user is None or not user.is_authenticated:
        return  # nothing to end, and no query
    current = await database_sync_to_async(_user_of_stored_session)(context.session.session_key)
    if context.user is not user:
        return  # a login on this connection meanwhile: its session is a new one
    if current.is_authenticated and current.pk == user.pk:
        return
    logger.info(
        "%s's session has ended: the connection %s is anonymous now",
        user.get_username(),
        context.channel_name,
    )
    await channels_logout(cast("Any", context.scope))
