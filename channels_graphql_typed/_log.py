"""The library's logger: every record says where it happened.

Each record of the ``channels_graphql_typed`` logger carries three attributes (logging
``extra``), ``None`` where they do not apply:

* ``connection_id``: the connection's id (also ``Context.connection_id``), set when a
  consumer starts serving a connection;
* ``operation_id``: the client's id of the operation, set when the operation runner
  starts it;
* ``subscription_class``: the qualified name of the typed subscription class, set when
  the subscription opens.

They live in context variables: every task a connection or an operation starts
inherits them, so a log line of a resolver thread hop, of a ``publish`` or of a hook is
attributed without passing anything around. (The fan-out's listener serves every
connection of a process, so its own records have none.)
"""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import MutableMapping

LOGGER_NAME: Final = "channels_graphql_typed"

connection_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "channels_graphql_typed_connection_id", default=None
)
operation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "channels_graphql_typed_operation_id", default=None
)
subscription_class: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "channels_graphql_typed_subscription_class", default=None
)


class _WhereAdapter(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        where = {
            "connection_id": connection_id.get(),
            "operation_id": operation_id.get(),
            "subscription_class": subscription_class.get(),
        }
        given = kwargs.get("extra")
        kwargs["extra"] = where if not given else {**where, **given}
        return msg, kwargs


logger: Final = _WhereAdapter(logging.getLogger(LOGGER_NAME), {})
"""The logger of every module of the library (but the client's)."""
