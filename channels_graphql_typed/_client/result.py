"""The typed result of one GraphQL operation, as the client returns it."""

from __future__ import annotations

import dataclasses
from typing import Any

from .._protocol.messages import ExecutionResultPayload, FormattedError


@dataclasses.dataclass(frozen=True, slots=True)
class GraphqlWsResult:
    """One GraphQL response: a query's result or one event of a subscription.

    ``data`` is None when the server sent null or no data; ``errors`` is None when
    the response has no errors (as in graphql-core's ``ExecutionResult``).
    """

    data: dict[str, Any] | None = None
    errors: list[FormattedError] | None = None
    extensions: dict[str, Any] | None = None

    @classmethod
    def from_payload(cls, payload: ExecutionResultPayload) -> GraphqlWsResult:
        """The result carried by a ``next`` / ``data`` message's payload."""
        return cls(payload.get("data"), payload.get("errors"), payload.get("extensions"))

    @property
    def payload(self) -> ExecutionResultPayload:
        """The result as a wire payload (``errors`` and ``extensions`` only when present)."""
        payload: ExecutionResultPayload = {"data": self.data}
        if self.errors is not None:
            payload["errors"] = self.errors
        if self.extensions is not None:
            payload["extensions"] = self.extensions
        return payload
