"""What the server tells the subscriptions it runs, and what they hand back.

The consumer sets :data:`current_operation` in each operation's task before it hands the
operation to graphql-core; a typed subscription set up inside that task reads the
server's settings from it. Executed by any other server, a typed subscription finds
nothing there and uses the defaults.

A notification whose ``publish`` raised travels down the response stream as a
:class:`PublishFailure`; the executor's resolver wrapper for subscription root fields
raises its error there, so the client gets it as a GraphQL error of that one
notification and the subscription goes on.
"""

from __future__ import annotations

import contextvars
import dataclasses
from typing import Final

INTERNAL_ERROR_MESSAGE: Final = "Internal server error"
"""What a client gets for a failure of the server that is not its business (the
exception is logged, with its traceback, once)."""

DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION: Final = 100
"""Most groups one subscription's ``subscribe`` may return (besides its class's default
group): each costs a round trip to the channel layer and a membership there."""


@dataclasses.dataclass(frozen=True, slots=True)
class OperationSettings:
    notification_queue_limit: int | None
    """The consumer's default bound of a subscriber's notification queue."""
    max_groups_per_subscription: int | None = DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION
    """The consumer's default bound of the groups one subscription joins."""


current_operation: contextvars.ContextVar[OperationSettings | None] = contextvars.ContextVar(
    "channels_graphql_typed_current_operation", default=None
)


@dataclasses.dataclass(frozen=True, slots=True)
class PublishFailure:
    """A notification whose ``publish`` raised ``error``."""

    error: Exception
