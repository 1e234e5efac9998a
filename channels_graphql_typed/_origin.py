"""Which browsers' pages may open a socket: the ``Origin`` check of the handshake.

Cross-site WebSocket hijacking needs a victim's browser: a page of another site opens a
socket to this server and the browser attaches the victim's cookies. A browser always
sends the page's ``Origin`` with a WebSocket handshake (RFC 6455, section 4.1), and a
page cannot remove or forge it. So the check refuses a handshake whose ``Origin`` is not
allowed and accepts one that has none: a client without ``Origin`` (a script, a mobile
app, another server) is not a browser acting for a victim, and holds only the
credentials it was given.

The allowed origins are a list of entries:

* ``"*"``: every origin;
* an entry with a scheme, such as ``"https://chat.example.com"`` or
  ``"http://localhost:8000"``: that exact origin (scheme, host and port);
* any other entry is a host pattern as in Django's ``ALLOWED_HOSTS``:
  ``"chat.example.com"``, ``".example.com"`` (the domain and its subdomains),
  ``"[::1]"``; it matches the origin's host whatever its scheme and port.

The default (``None``) is Django's ``ALLOWED_HOSTS``, with the local hosts that Django
itself allows when ``DEBUG`` is on and ``ALLOWED_HOSTS`` is empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.http import is_same_domain

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

ANY_ORIGIN: Final = "*"

_DEBUG_HOSTS: Final = (".localhost", "127.0.0.1", "[::1]")
"""What Django allows in debug mode when ``ALLOWED_HOSTS`` is empty."""


def request_origin(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The handshake's ``Origin`` header, or None when it has none."""
    for name, value in headers:
        if name.lower() == b"origin":
            return value.decode("latin-1")
    return None


def default_allowed_origins() -> Sequence[str]:
    """The host patterns of ``ALLOWED_HOSTS`` (Django's debug defaults when empty)."""
    hosts: Sequence[str] = settings.ALLOWED_HOSTS
    if not hosts and settings.DEBUG:
        return _DEBUG_HOSTS
    return hosts


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    """Whether a handshake with ``origin`` (None: no ``Origin`` header) may proceed."""
    if origin is None:
        return True
    if ANY_ORIGIN in allowed:
        return True
    try:
        parts = urlsplit(origin.strip())
        hostname = parts.hostname
        port = parts.port
    except ValueError:
        return False
    # "null" (a sandboxed page, a file:// page) and anything else without a host is
    # refused unless every origin is allowed.
    if not parts.scheme or not hostname:
        return False
    host = f"[{hostname}]" if ":" in hostname else hostname
    exact = f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")
    for entry in allowed:
        if "://" in entry:
            if entry.rstrip("/").lower() == exact:
                return True
        elif is_same_domain(host, entry.lower()):
            return True
    return False
