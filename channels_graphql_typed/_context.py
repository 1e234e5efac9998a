"""The per-connection context that resolvers see as ``info.context``."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping


class Context:
    """Lives as long as the WebSocket; one per connection.

    Resolvers read the connection's Channels ``scope``, ``channel_name``, ``user`` and
    ``session`` (set by Channels' auth middleware) and ``connection_params`` (the
    ``connection_init`` payload), and keep their own state across the connection's
    operations either as attributes of a subclass (set ``context_class`` on the
    consumer) or dict-style::

        info.context["visits"] = info.context.get("visits", 0) + 1
    """

    def __init__(
        self,
        *,
        scope: Mapping[str, Any],
        channel_name: str,
        connection_params: dict[str, Any] | None = None,
        connection_id: str | None = None,
    ) -> None:
        self.scope = scope
        self.channel_name = channel_name
        self.connection_id = connection_id or uuid.uuid4().hex[:16]
        """A short random id of the connection: the library's log records carry it (as
        ``connection_id``), so that a user's own log lines can name it too."""
        self.connection_params: dict[str, Any] = connection_params or {}
        # Created by the first value stored: most connections store none.
        self._values: dict[str, Any] | None = None

    @property
    def user(self) -> Any:
        """``scope["user"]`` when an auth middleware set it, else None."""
        return self.scope.get("user")

    @property
    def session(self) -> Any:
        """``scope["session"]`` when a session middleware set it, else None."""
        return self.scope.get("session")

    def __getitem__(self, key: str) -> Any:
        if self._values is None:
            raise KeyError(key)
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if self._values is None:
            self._values = {}
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        if self._values is None:
            raise KeyError(key)
        del self._values[key]

    def __contains__(self, key: object) -> bool:
        return self._values is not None and key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values or ())

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        if self._values is None:
            return default
        return self._values.get(key, default)
