"""When the client reconnects: the retry policy and the client's connection states.

Theory of operation
-------------------
Nothing here awaits but :func:`randomised_exponential_backoff`: the decisions are pure
functions that the client (:mod:`.client`) calls when a connection attempt fails or an
open connection ends, so they are tested without an event loop.

A connection that ends is reconnected unless one of these holds, checked in order (the
order of the graphql-ws reference client, ``createClient``):

1. its close code is fatal (:data:`FATAL_CLOSE_CODES`): the server said that trying
   again cannot help -- whatever ``should_retry`` says;
2. retries are off (``retry_attempts=0``) or this many consecutive attempts have
   failed already;
3. ``should_retry(error)`` says no (by default: only a close -- or a connection that
   could not open -- and a timeout are retried; a protocol violation is not).

``retry`` counts the consecutive failed attempts since the last successful connection:
the wait before the first reconnection gets 0. A connection that is acknowledged resets
it.
"""

from __future__ import annotations

import asyncio
import enum
import random
from typing import TYPE_CHECKING, Final

from .._exceptions import GraphqlWsConnectionClosed, GraphqlWsTimeoutError
from .._protocol.common import CloseCode

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._exceptions import GraphqlWsClientError

DEFAULT_RETRY_ATTEMPTS: Final = 0
"""Reconnections are off unless asked for (the reference client's default is 5)."""

FATAL_CLOSE_CODES: Final = frozenset(
    {
        CloseCode.BAD_RESPONSE,
        CloseCode.BAD_REQUEST,
        CloseCode.UNAUTHORIZED,
        CloseCode.FORBIDDEN,
        CloseCode.SUBPROTOCOL_NOT_ACCEPTABLE,
        CloseCode.SUBSCRIBER_ALREADY_EXISTS,
        CloseCode.TOO_MANY_INITIALISATION_REQUESTS,
        CloseCode.INTERNAL_ERROR,
    }
)
"""Close codes that are never retried: the same connection would fail the same way.

4403 (``on_connect`` refused) is among them: this library's server refuses for a
reason that a retry does not change (the reference client retries it, hoping for a
refreshed identity; pass fresh ``connection_params`` to a new client instead)."""


class GraphqlWsClientState(enum.Enum):
    """Where a :class:`GraphqlWsClient`'s connection is; see ``on_state``."""

    IDLE = "idle"
    """No connection and none wanted yet: before connecting, or (``lazy``) while no
    operation runs. The next operation of a lazy client connects."""
    CONNECTING = "connecting"
    """The first connection attempt (or, lazy, the first after idling): the socket is
    opening or waiting for ``connection_ack``."""
    CONNECTED = "connected"
    """Acknowledged: operations run."""
    RECONNECTING = "reconnecting"
    """The connection ended and the client is waiting to try again, or trying; active
    subscriptions are subscribed again once it succeeds."""
    CLOSED = "closed"
    """Over for good: closed by the user, or ended for a reason that is not retried,
    or out of retries. Operations raise :attr:`GraphqlWsClient.close_error`."""


ALLOWED_TRANSITIONS: Final[dict[GraphqlWsClientState, frozenset[GraphqlWsClientState]]] = {
    GraphqlWsClientState.IDLE: frozenset(
        {GraphqlWsClientState.CONNECTING, GraphqlWsClientState.CLOSED}
    ),
    GraphqlWsClientState.CONNECTING: frozenset(
        {
            GraphqlWsClientState.CONNECTED,
            GraphqlWsClientState.RECONNECTING,
            GraphqlWsClientState.IDLE,
            GraphqlWsClientState.CLOSED,
        }
    ),
    GraphqlWsClientState.CONNECTED: frozenset(
        {
            GraphqlWsClientState.RECONNECTING,
            GraphqlWsClientState.IDLE,
            GraphqlWsClientState.CLOSED,
        }
    ),
    GraphqlWsClientState.RECONNECTING: frozenset(
        {
            GraphqlWsClientState.RECONNECTING,  # the next attempt
            GraphqlWsClientState.CONNECTED,
            GraphqlWsClientState.IDLE,
            GraphqlWsClientState.CLOSED,
        }
    ),
    GraphqlWsClientState.CLOSED: frozenset(),
}
"""The state changes a client makes; any other is a bug (the client asserts it)."""


def backoff_delay(retry: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before retry number ``retry`` (from 0): ``2 ** retry`` plus a
    random 0.3 to 3 s, as the reference client waits. ``uniform`` draws the jitter."""
    return float(2**retry) + uniform(0.3, 3.0)


async def randomised_exponential_backoff(retry: int) -> None:
    """The default ``retry_wait``: sleep :func:`backoff_delay` seconds."""
    await asyncio.sleep(backoff_delay(retry))


def is_fatal(error: GraphqlWsClientError) -> bool:
    """Whether ``error`` ended the connection for good: a fatal close code."""
    return isinstance(error, GraphqlWsConnectionClosed) and error.code in FATAL_CLOSE_CODES


def retry_by_default(error: GraphqlWsClientError) -> bool:
    """The default ``should_retry``: closes (including a socket that could not open)
    and timeouts (connecting, the acknowledgement, a keep-alive) are retried; a
    protocol violation by the server is not."""
    return isinstance(error, GraphqlWsConnectionClosed | GraphqlWsTimeoutError)


def should_reconnect(
    error: GraphqlWsClientError,
    retry: int,
    retry_attempts: int,
    should_retry: Callable[[GraphqlWsClientError], bool],
) -> bool:
    """Whether to try again after ``error``, when ``retry`` consecutive attempts
    have failed since the last connection (see the module docstring)."""
    if is_fatal(error):
        return False
    if retry_attempts <= 0 or retry >= retry_attempts:
        return False
    return should_retry(error)
