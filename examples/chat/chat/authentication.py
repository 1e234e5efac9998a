"""Logins over both transports, and the end of a WebSocket's login.

**Checking a password.** :func:`authenticate_limited` asks :data:`login_attempts` first,
so a username or a client that failed too often is refused before any hashing, and
then runs Django's ``authenticate`` in a thread of :data:`PASSWORD_CHECK_THREADS`.
Hashing a password is deliberately slow (PBKDF2, a million iterations: a large
fraction of a second of CPU). Django 5.2's ``aauthenticate`` hashes on the event loop,
which stalls every connection of the process; ``sync_to_async``'s default thread is
the one that runs every async ORM query of the process, which would stall them all.
A thread pool of its own keeps both free, and its size bounds the CPU that logins
take.

**The end of a login.** A WebSocket authenticates once: Channels' ``AuthMiddleware``
reads the session when the socket opens, and the example's ``login`` stores a session
for it. Over HTTP, the same middleware reads the session for every request. So that a
socket does not outlive its login, :func:`end_login_if_session_ended` runs before each of its
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

import concurrent.futures
import hashlib
import logging
from importlib import import_module
from typing import TYPE_CHECKING, Any, Final, cast

from asgiref.sync import sync_to_async
from channels.auth import logout as channels_logout
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import authenticate, get_user
from django.db import connections
from django.http import HttpRequest

from .login_attempts import LoginAttemptLimiter

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django.contrib.sessions.backends.base import SessionBase

    import channels_graphql_typed as cgt

logger = logging.getLogger(__name__)

FAILED_LOGINS_ALLOWED: Final = 5
FAILED_LOGINS_WINDOW: Final = 60.0
"""At most :data:`FAILED_LOGINS_ALLOWED` failed logins per username, and per client, in
any :data:`FAILED_LOGINS_WINDOW` seconds."""

login_attempts: Final = LoginAttemptLimiter(
    max_failures=FAILED_LOGINS_ALLOWED, window=FAILED_LOGINS_WINDOW, max_keys=10_000
)
"""The failed logins of this process (kept in its memory: see :mod:`chat.login_attempts`)."""

PASSWORD_CHECK_THREADS: Final = concurrent.futures.ThreadPoolExecutor(
    max_workers=4, thread_name_prefix="password-check"
)
"""Where passwords are checked: neither the event loop nor the ORM's thread."""

SessionStore: Final[type[SessionBase]] = import_module(settings.SESSION_ENGINE).SessionStore


def username_key(username: str) -> str:
    """The limiter's key of a username: a digest, so that what a client typed (a
    password in the wrong field, a megabyte of text) is not kept; case-insensitive."""
    data = username.casefold().encode("utf-8", "surrogatepass")
    return "username:" + hashlib.sha256(data).hexdigest()


def _authenticate_in_this_thread(username: str, password: str) -> User | None:
    try:
        return authenticate(None, username=username, password=password)
    finally:
        # Django closes a thread's database connection at the end of a request, and
        # Channels in its own threads; nothing does in this one.
        connections.close_all()


async def authenticate_limited(username: str, password: str, *, client: str) -> User | None:
    """Django's ``authenticate``, unless the username or ``client`` failed too often
    (:class:`chat.login_attempts.TooManyLoginAttempts`), off the event loop."""
    attempt = login_attempts.begin([username_key(username), client])
    check = sync_to_async(
        _authenticate_in_this_thread, thread_sensitive=False, executor=PASSWORD_CHECK_THREADS
    )
    user = await check(username, password)
    if user is not None:
        login_attempts.succeeded(attempt)
    return user


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
