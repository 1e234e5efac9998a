"""The GraphQL over WebSocket client: the I/O shell around :class:`ClientProtocolMachine`.

Theory of operation
-------------------
A :class:`GraphqlWsClient` runs one connection (one socket) at a time. Each connection
has its transport session, its sans-IO machine (:mod:`.machine`) and a reader task: the
only coroutine that receives. It feeds each frame to the machine and carries out the
events in order -- a reply goes back to the server at once (``pong``), the
acknowledgement completes the handshake, an operation's results go to that operation's
queue, found by id.

Callers -- :meth:`GraphqlWsClient.execute`, a :class:`GraphqlWsSubscriptionStream` --
wait on their own operation's queue, never on the socket, and always with a timeout.
So any number of operations share one socket, and a wait that times out disturbs
no other operation.

One supervisor task opens the connections and decides, when one ends, whether to open
another (:mod:`.reconnect`: fatal close codes, ``retry_attempts``, ``should_retry``,
``retry_wait``). When a connection ends:

* a query or mutation still waiting for its result fails at once with the close
  (:class:`GraphqlWsConnectionClosed`): the client cannot know whether the server ran
  it, so it never sends it twice (the reference client sends it again);
* subscriptions wait: once a new connection is acknowledged, the client subscribes each
  again under its id, before any new operation starts, and the stream goes on (a
  notification broadcast while no connection was up is not received, unless the
  subscription is resumable: the client remembers the last event id each subscription
  received, and subscribes again after it, ``channels_graphql_typed.resume_after``);
* if the client gives up -- a fatal code, no retries left, ``should_retry`` says no --
  every operation still waiting gets the reason, after the results that arrived before
  it: the close itself, or :class:`GraphqlWsRetriesExhausted` after failed retries.

A non-lazy client connects when entered and keeps a connection until it is closed. A
lazy one connects for its first operation and closes the socket ``lazy_close_timeout``
seconds after the last one ends; the next operation connects again. Every state change
is reported to ``on_state`` (:class:`GraphqlWsStateChange`).

Closing the client cancels the supervisor, the reader and the keep-alive, then closes
the transport: no task outlives the client.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import json
import logging
import math
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from .._exceptions import (
    GraphqlWsClientError,
    GraphqlWsConnectionClosed,
    GraphqlWsProtocolError,
    GraphqlWsResponseError,
    GraphqlWsRetriesExhausted,
    GraphqlWsTimeoutError,
)
from .._protocol.common import CloseCode
from .._protocol.messages import (
    CONFIRM_SUBSCRIPTION_EXTENSION,
    EVENT_ID_EXTENSION,
    GRAPHQL_TRANSPORT_WS,
    RESUME_AFTER_EXTENSION,
    SUBPROTOCOLS,
    OperationPayload,
)
from .machine import (
    ClientProtocolMachine,
    ConnectionAcknowledged,
    ConnectionErrorReceived,
    ErrorsReceived,
    KeepAliveReceived,
    OperationCompleted,
    PongReceived,
    ResultReceived,
    SendMessage,
)
from .reconnect import (
    ALLOWED_TRANSITIONS,
    DEFAULT_RETRY_ATTEMPTS,
    GraphqlWsClientState,
    is_fatal,
    randomised_exponential_backoff,
    retry_by_default,
    should_reconnect,
)
from .result import GraphqlWsResult

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from .._protocol.messages import Subprotocol
    from .machine import ClientEvent, ClientMessage, OperationEvent
    from .transport import GraphqlWsTransport

logger = logging.getLogger("channels_graphql_typed.client")

_T = TypeVar("_T")

DEFAULT_TIMEOUT: Final = 10.0
"""Seconds any wait of the client may take unless told otherwise."""


@dataclasses.dataclass(frozen=True, slots=True)
class GraphqlWsStateChange:
    """One change of a client's :class:`GraphqlWsClientState`, given to ``on_state``."""

    state: GraphqlWsClientState
    previous: GraphqlWsClientState
    retry: int = 0
    """RECONNECTING: the number of the reconnection attempt about to be made (1 for
    the first); otherwise 0."""
    error: GraphqlWsClientError | None = None
    """Why the last connection (or attempt) ended, when it did: RECONNECTING, CLOSED,
    or IDLE after a lazy client gave up."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Resubscribed:
    """Queued for a subscription when it is subscribed again on a new connection."""


_RESUBSCRIBED: Final = _Resubscribed()

if TYPE_CHECKING:
    OperationItem = OperationEvent | GraphqlWsClientError | _Resubscribed


def _fresh(exc: GraphqlWsClientError) -> GraphqlWsClientError:
    # One recorded failure is raised in many tasks: raise copies, so that tracebacks
    # do not pile up on one object. Our exceptions rebuild from their args.
    fresh = copy.copy(exc)
    fresh.__cause__ = exc.__cause__
    return fresh


def _retry_exhausted(error: GraphqlWsClientError, attempts: int) -> GraphqlWsRetriesExhausted:
    if isinstance(error, GraphqlWsConnectionClosed):
        exhausted = GraphqlWsRetriesExhausted(error.code, error.reason, error.payload, attempts)
    else:
        exhausted = GraphqlWsRetriesExhausted(
            CloseCode.ABNORMAL_CLOSURE, str(error), None, attempts
        )
    exhausted.__cause__ = error
    return exhausted


class _Connection:
    """One socket of the client: its transport session, machine, reader, handshake."""

    def __init__(self, transport: GraphqlWsTransport, subprotocol: str) -> None:
        self.transport = transport
        self.machine = ClientProtocolMachine(subprotocol)
        self.reader: asyncio.Task[None] | None = None
        self.keep_alive: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self.acknowledgement: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        self.rejection: dict[str, Any] | None = None
        self.pongs: collections.deque[asyncio.Future[dict[str, Any] | None]] = collections.deque()
        self.failure: GraphqlWsClientError | None = None
        self.ended = asyncio.Event()
        self.frame_received = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.idle_close = False
        """Closed by the client because no operation wanted it (lazy)."""

    @property
    def usable(self) -> bool:
        return self.failure is None and self.acknowledgement.done()


@dataclasses.dataclass(eq=False, slots=True)
class _Operation:
    id: str
    payload: OperationPayload
    subscription: bool
    connection: _Connection
    queue: asyncio.Queue[OperationItem] = dataclasses.field(default_factory=asyncio.Queue)
    ended: bool = False
    """The server ended it (complete / error): never subscribed again."""
    confirmed: bool = False
    """The server confirmed the subscription on its current connection (confirm=True)."""
    resubscriptions: int = 0
    last_event_id: str | None = None
    """The id of the last event received (resumable subscriptions): subscribed again, the
    subscription resumes after it."""


class GraphqlWsClient:
    """A GraphQL client over WebSocket, speaking either subprotocol::

        transport = GraphqlWsTransportAiohttp("ws://127.0.0.1:8000/graphql/")
        async with GraphqlWsClient(transport, connection_params={"token": "..."}) as client:
            result = await client.execute("{ hello }")
            async with client.subscribe("subscription { count(to: 3) }") as stream:
                async for event in stream:
                    print(event.data)

    ``subprotocol`` is ``"graphql-transport-ws"`` or ``"graphql-ws"`` (default: the
    transport's, else graphql-transport-ws). ``connection_params`` is the
    ``connection_init`` payload. ``timeout`` (seconds) bounds every wait: connecting,
    the acknowledgement, each result, each subscription event, each send, closing;
    the methods that wait take their own ``timeout`` too (``math.inf``: forever). A
    wait that runs out raises :class:`GraphqlWsTimeoutError`.

    Reconnecting, as the graphql-ws reference client does (off by default):

    * ``retry_attempts`` -- how many consecutive reconnection attempts to make when a
      connection ends (or the first one fails) before giving up with
      :class:`GraphqlWsRetriesExhausted`; 0 (the default): never reconnect, the first
      close ends the client, as before this option existed;
    * ``retry_wait`` -- an async callable given the retry number (0 for the first)
      that waits before each attempt; default: randomised exponential backoff,
      ``2 ** retry`` seconds plus 0.3 to 3 s;
    * ``should_retry`` -- given the error that ended the connection, whether to retry
      it; default: closes and timeouts yes, protocol violations no. The fatal close
      codes (4004, 4400, 4401, 4403, 4406, 4409, 4429, 4500) are never retried.

    Active subscriptions are subscribed again on the new connection and their streams
    go on; queries and mutations in flight fail with the close (see the module
    docstring). Operations started while reconnecting wait for the connection.

    ``lazy``: connect on the first operation instead of on entering, and close the
    socket ``lazy_close_timeout`` seconds after the last operation ends.
    ``keep_alive``: every that many seconds, graphql-transport-ws pings the server and
    the connection is taken for dead (ended with code 1006, then retried as any close)
    when the ``pong`` does not come within ``keep_alive_timeout`` seconds (default: the
    client's ``timeout``); graphql-ws has no client ping, so there the connection is
    dead when no frame at all (``ka`` included) comes for ``keep_alive`` seconds.
    ``on_state`` is called (in the event loop; it must not block) with each
    :class:`GraphqlWsStateChange`.

    Entering the client connects and initialises it (:meth:`connect_and_init`; a
    lazy client waits for an operation); leaving it closes the socket (:meth:`finalize`).
    """

    def __init__(
        self,
        transport: GraphqlWsTransport,
        *,
        subprotocol: str | None = None,
        connection_params: dict[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        lazy: bool = False,
        lazy_close_timeout: float = 0.0,
        retry_attempts: int = DEFAULT_RETRY_ATTEMPTS,
        retry_wait: Callable[[int], Awaitable[None]] = randomised_exponential_backoff,
        should_retry: Callable[[GraphqlWsClientError], bool] = retry_by_default,
        keep_alive: float | None = None,
        keep_alive_timeout: float | None = None,
        on_state: Callable[[GraphqlWsStateChange], None] | None = None,
    ) -> None:
        preset = transport.subprotocol
        if subprotocol is not None and preset is not None and subprotocol != preset:
            raise ValueError(
                f"The client is asked for {subprotocol!r} and its transport for {preset!r}"
            )
        chosen = subprotocol or preset or GRAPHQL_TRANSPORT_WS
        if chosen not in SUBPROTOCOLS:
            raise ValueError(f"Unknown subprotocol {chosen!r}; expected one of {SUBPROTOCOLS}")
        if retry_attempts < 0:
            raise ValueError("retry_attempts must be 0 or more")
        if keep_alive is not None and not keep_alive > 0:
            raise ValueError("keep_alive must be a positive number of seconds, or None")
        self.transport = transport
        self.connection_params = connection_params
        self.timeout = timeout
        self.lazy = lazy
        self.lazy_close_timeout = lazy_close_timeout
        self.retry_attempts = retry_attempts
        self.retry_wait = retry_wait
        self.should_retry = should_retry
        self.keep_alive = keep_alive
        self.keep_alive_timeout = keep_alive_timeout
        self.on_state = on_state
        self._subprotocol: Subprotocol = chosen
        self._state = GraphqlWsClientState.IDLE
        self._started = False
        self._changed: asyncio.Future[GraphqlWsStateChange] | None = None
        self._connection: _Connection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.Task[None] | None = None
        self._ack_payload: dict[str, Any] | None = None
        self._operations: dict[str, _Operation] = {}
        self._waiting_starts = 0
        self._last_id = 0
        self._failure: GraphqlWsClientError | None = None
        self._keepalives_received = 0
        self._connections_opened = 0

    # --- state ----------------------------------------------------------------------------

    @property
    def subprotocol(self) -> Subprotocol:
        """The subprotocol this client speaks."""
        return self._subprotocol

    @property
    def state(self) -> GraphqlWsClientState:
        """Where the connection is (see ``on_state`` for the changes)."""
        return self._state

    @property
    def ack_payload(self) -> dict[str, Any] | None:
        """The payload of the server's last ``connection_ack`` (None: it had none)."""
        return self._ack_payload

    @property
    def keepalives_received(self) -> int:
        """Server keep-alives so far, on every connection: ``ping`` (answered) or ``ka``."""
        return self._keepalives_received

    @property
    def connections_opened(self) -> int:
        """How many connections were acknowledged so far (reconnections included)."""
        return self._connections_opened

    @property
    def closed(self) -> bool:
        """Whether the client is over (closed by the user, or it gave up)."""
        return self._state is GraphqlWsClientState.CLOSED

    @property
    def close_error(self) -> GraphqlWsClientError | None:
        """Why the client ended (None while it is not closed): what waiters get raised."""
        return self._failure if self.closed else None

    # --- connection -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self.lazy:
            self._start_once()
        else:
            await self.connect_and_init()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.finalize()

    async def connect_and_init(self) -> dict[str, Any] | None:
        """Open the socket, send ``connection_init`` and wait for the acknowledgement.

        Returns the ``connection_ack`` payload. A rejection raises
        :class:`GraphqlWsConnectionClosed` with the close code (4403 from this library's
        server) and, on graphql-ws, the ``connection_error`` payload; the client is then
        closed. With ``retry_attempts``, a first connection that fails (not fatally) is
        retried, and :class:`GraphqlWsRetriesExhausted` says none succeeded. Called once;
        ``async with`` calls it. Not for a lazy client, which connects by itself.
        """
        if self.lazy:
            raise RuntimeError("A lazy client connects on its first operation")
        self._start_once()
        try:
            while self._state is not GraphqlWsClientState.CONNECTED:
                if self._state is GraphqlWsClientState.CLOSED:
                    raise self._closed_error()
                await self._next_change()
        except BaseException:
            await self.finalize()
            raise
        return self._ack_payload

    async def finalize(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the connection (``connection_terminate`` first on graphql-ws).

        Operations still waiting get :class:`GraphqlWsConnectionClosed` with ``code``.
        Safe to call more than once, and after the server has closed.
        """
        if self._state is GraphqlWsClientState.CLOSED and self._supervisor is None:
            return
        self._started = True
        for task in (self._idle_timer, self._supervisor):
            if task is not None:
                task.cancel()
                # asyncio.wait: do not swallow a cancellation of the task running this.
                await asyncio.wait([task])
        self._idle_timer = self._supervisor = None
        connection, self._connection = self._connection, None
        closing = GraphqlWsConnectionClosed(code, reason or "Closed by the client")
        self._give_up(closing, final=True)
        if connection is not None:
            try:
                terminate = connection.machine.terminate()
                if connection.failure is None and terminate is not None:
                    # Closed meanwhile: closing is what we want anyway.
                    with contextlib.suppress(GraphqlWsClientError):
                        await self._send(connection, terminate)
            finally:
                await self._close_connection(connection, code, reason)

    async def wait_closed(self, *, timeout: float | None = None) -> GraphqlWsClientError:
        """Wait until the client ends (usually: the server closes the connection and it
        is not retried); return why.

        The returned exception is what waiting operations get raised, typically a
        :class:`GraphqlWsConnectionClosed` with the close code and reason.
        """
        if not self._started:
            raise RuntimeError("The client was never connected")

        async def closed() -> None:
            while not self.closed:
                await self._next_change()

        await self._within(closed(), timeout, "Waiting for the close")
        return self._closed_error()

    async def wait_state(
        self, state: GraphqlWsClientState, *, timeout: float | None = None
    ) -> GraphqlWsStateChange | None:
        """Wait until the client is in ``state``; return the change that brought it
        there (None if it already was). A client that closes on the way raises why."""

        async def reach() -> GraphqlWsStateChange | None:
            if self._state is state:
                return None
            while True:
                change = await self._next_change()
                if change.state is state:
                    return change
                if change.state is GraphqlWsClientState.CLOSED:
                    raise self._closed_error()

        return await self._within(reach(), timeout, f"Waiting for the state {state.value}")

    # --- operations -------------------------------------------------------------------------

    async def execute(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        extensions: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> GraphqlWsResult:
        """Run a query or mutation and return its result.

        The result may carry errors along with (partial) data -- resolver errors.
        Errors without data -- parse, validation or variable errors, a rejected
        operation -- raise :class:`GraphqlWsResponseError`. Used with a subscription,
        returns its first event and stops it. ``timeout``: seconds to wait for the
        connection (while reconnecting) and then for the result (default: the
        client's). If the connection ends before the result comes, raises
        :class:`GraphqlWsConnectionClosed`: it is not sent again.
        """
        payload = _operation_payload(query, variables, operation_name, extensions)
        operation = await self._start(payload, subscription=False, timeout=timeout)
        try:
            item = await self._next_item(operation.queue, timeout, f"Operation {operation.id}")
        finally:
            # A query's ``complete`` normally follows its result in the same read, and
            # the operation has ended here. If not (a subscription), stop it.
            await self._release(operation.id)
        if isinstance(item, ErrorsReceived):
            raise GraphqlWsResponseError(item.errors)
        if isinstance(item, OperationCompleted | _Resubscribed):
            return GraphqlWsResult()  # a subscription that ended without an event
        result = GraphqlWsResult.from_payload(item.payload)
        if result.data is None and result.errors:
            raise GraphqlWsResponseError(result.errors, result)
        return result

    def subscribe(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        extensions: dict[str, Any] | None = None,
        timeout: float | None = None,
        confirm: bool = False,
    ) -> GraphqlWsSubscriptionStream:
        """A subscription, started on entering the returned stream::

            async with client.subscribe("subscription { onEvent { id } }") as stream:
                async for result in stream:
                    ...

        ``timeout``: seconds to wait for each event (default: the client's;
        ``math.inf`` for a subscription that may stay quiet). ``confirm``: ask the server
        to confirm this subscription once it is registered (the
        ``channels_graphql_typed.confirm`` extension); the confirmation is not one of the
        stream's results: ``await stream.wait_confirmed()`` waits for it. When the
        client reconnects, the subscription is subscribed again, and the stream goes on.
        """
        if confirm:
            extensions = {**(extensions or {}), CONFIRM_SUBSCRIPTION_EXTENSION: True}
        payload = _operation_payload(query, variables, operation_name, extensions)
        return GraphqlWsSubscriptionStream(self, payload, timeout, confirm=confirm)

    async def ping(
        self, payload: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any] | None:
        """Ping the server and return the payload of its ``pong``
        (graphql-transport-ws only)."""
        if self._subprotocol != GRAPHQL_TRANSPORT_WS:
            raise ValueError("The graphql-ws subprotocol has no client ping")
        connection = await self._wait_connection(timeout)
        try:
            return await self._ping(connection, payload, timeout)
        finally:
            self._waiting_starts -= 1
            self._maybe_idle()

    # --- internals used by the stream -------------------------------------------------------

    async def _start(
        self, payload: OperationPayload, *, subscription: bool, timeout: float | None
    ) -> _Operation:
        connection = await self._wait_connection(timeout)
        self._waiting_starts -= 1
        self._last_id += 1
        operation_id = str(self._last_id)
        message = connection.machine.start(payload, operation_id)
        operation = _Operation(operation_id, payload, subscription, connection)
        self._operations[operation_id] = operation
        try:
            await self._send(connection, message)
        except GraphqlWsConnectionClosed:
            if not subscription or self.closed:
                self._operations.pop(operation_id, None)
                self._maybe_idle()
                raise
            # The connection ended under it: the subscription is subscribed again on the
            # next one, or gets the reason the client gives up.
        except BaseException:
            self._operations.pop(operation_id, None)
            connection.machine.stop(operation_id)
            self._maybe_idle()
            raise
        return operation

    async def _next_item(
        self, queue: asyncio.Queue[OperationItem], timeout: float | None, what: str
    ) -> OperationEvent | _Resubscribed:
        if queue.empty() and self.closed:
            raise self._closed_error()
        item = await self._within(queue.get(), timeout, f"{what}: waiting for a result")
        if isinstance(item, GraphqlWsClientError):
            raise _fresh(item)
        return item

    async def _release(self, operation_id: str) -> None:
        """Forget an operation; tell the server to stop it if it has not ended."""
        operation = self._operations.pop(operation_id, None)
        if operation is not None:
            connection = operation.connection
            message = connection.machine.stop(operation_id)
            if message is not None and connection.failure is None and not self.closed:
                # The connection is ending: the operation ends with it.
                with contextlib.suppress(GraphqlWsClientError):
                    await self._send(connection, message)
        self._maybe_idle()

    # --- connections ------------------------------------------------------------------------

    def _start_once(self) -> None:
        if self._started:
            raise RuntimeError("connect_and_init() is called once per client")
        self._started = True
        if not self.lazy:
            self._supervisor = asyncio.create_task(
                self._supervise(), name="graphql-ws-client-connection"
            )

    async def _wait_connection(self, timeout: float | None) -> _Connection:
        """The acknowledged connection, once there is one; counts as wanting one (the
        caller decrements ``_waiting_starts``)."""
        if self.closed:
            raise self._closed_error()
        if not self._started:
            if not self.lazy:
                raise RuntimeError(
                    "The client is not connected: use `async with` or connect_and_init()"
                )
            self._started = True
        self._waiting_starts += 1
        self._cancel_idle_timer()

        async def connection() -> _Connection:
            while True:
                current = self._connection
                if self._state is GraphqlWsClientState.CONNECTED and current and current.usable:
                    return current
                if self.closed:
                    raise self._closed_error()
                if self._supervisor is None or self._supervisor.done():
                    self._supervisor = asyncio.create_task(
                        self._supervise(), name="graphql-ws-client-connection"
                    )
                change = await self._next_change()
                if change.state is GraphqlWsClientState.IDLE and change.error is not None:
                    raise _fresh(change.error)  # a lazy client gave up on this connection

        try:
            return await self._within(connection(), timeout, "Waiting for the connection")
        except BaseException:
            self._waiting_starts -= 1
            self._maybe_idle()
            raise

    def _wanted(self) -> bool:
        return not self.lazy or bool(self._operations) or self._waiting_starts > 0

    async def _supervise(self) -> None:
        """Open connections until the client closes, or gives up."""
        retry = 0
        error: GraphqlWsClientError | None = None
        while True:
            if error is None:
                self._set_state(GraphqlWsClientState.CONNECTING)
            else:
                if not self._wanted():
                    self._set_state(GraphqlWsClientState.IDLE)
                    return
                if not should_reconnect(error, retry, self.retry_attempts, self.should_retry):
                    exhausted = (
                        self.retry_attempts > 0
                        and retry >= self.retry_attempts
                        and not is_fatal(error)
                    )
                    self._give_up(_retry_exhausted(error, retry) if exhausted else error)
                    return
                self._set_state(GraphqlWsClientState.RECONNECTING, retry=retry + 1, error=error)
                await self.retry_wait(retry)
                retry += 1
                if not self._wanted():
                    self._set_state(GraphqlWsClientState.IDLE)
                    return
            try:
                connection = await self._open_connection()
            except GraphqlWsClientError as exc:
                error = exc
                continue
            retry = 0
            self._connection = connection
            self._connections_opened += 1
            await self._resubscribe(connection)
            if connection.failure is None:
                self._set_state(GraphqlWsClientState.CONNECTED)
                self._maybe_idle()
            await connection.ended.wait()
            self._connection = None
            await self._close_connection(connection, CloseCode.NORMAL, "", quiet=True)
            if connection.idle_close:
                self._set_state(GraphqlWsClientState.IDLE)
                return
            error = connection.failure

    async def _open_connection(self) -> _Connection:
        connection = _Connection(self.transport, self._subprotocol)
        try:
            try:
                await self._within(self.transport.connect(self._subprotocol), None, "Connecting")
            except GraphqlWsClientError:
                raise
            except Exception as exc:
                failed = GraphqlWsConnectionClosed(
                    CloseCode.ABNORMAL_CLOSURE, f"The transport failed to connect: {exc!r}"
                )
                raise failed from exc
            if self.transport.subprotocol != self._subprotocol:
                raise GraphqlWsProtocolError(
                    f"The transport negotiated {self.transport.subprotocol!r}"
                    f" instead of {self._subprotocol!r}"
                )
            connection.reader = asyncio.create_task(
                self._read(connection), name="graphql-ws-client-reader"
            )
            await self._send(connection, connection.machine.initialise(self.connection_params))
            try:
                self._ack_payload = await self._within(
                    asyncio.shield(connection.acknowledgement), None, "Waiting for connection_ack"
                )
            except GraphqlWsTimeoutError:
                if connection.rejection is None:
                    raise
                # graphql-ws: connection_error came, but the close did not follow in time.
                raise GraphqlWsConnectionClosed(
                    CloseCode.FORBIDDEN, "Connection rejected", connection.rejection
                ) from None
        except BaseException as exc:
            closing = exc if isinstance(exc, GraphqlWsClientError) else None
            self._connection_failed(
                connection, closing or GraphqlWsConnectionClosed(CloseCode.NORMAL, "Cancelled")
            )
            await self._close_connection(connection, CloseCode.NORMAL, "", quiet=True)
            raise
        if self.keep_alive is not None:
            connection.keep_alive = asyncio.create_task(
                self._keep_connection_alive(connection, self.keep_alive),
                name="graphql-ws-client-keep-alive",
            )
        return connection

    async def _resubscribe(self, connection: _Connection) -> None:
        """Subscribe again, under their ids, the subscriptions of ended connections."""
        for operation in list(self._operations.values()):
            if not operation.subscription or operation.ended or operation.connection is connection:
                continue
            payload = operation.payload
            if operation.last_event_id is not None:
                extensions = {
                    **(payload.get("extensions") or {}),
                    RESUME_AFTER_EXTENSION: operation.last_event_id,
                }
                payload = {**payload, "extensions": extensions}
            else:
                # Nothing to resume from (a class that is not resumable, or no event
                # yet): what was broadcast while it was away is not delivered.
                logger.warning(
                    "Subscription %r subscribed again after a reconnect, without an event "
                    "id to resume from: what was broadcast to it meanwhile is missed",
                    operation.id,
                )
            message = connection.machine.start(payload, operation.id)
            operation.connection = connection
            operation.confirmed = False
            operation.resubscriptions += 1
            operation.queue.put_nowait(_RESUBSCRIBED)
            try:
                await self._send(connection, message)
            except GraphqlWsConnectionClosed:
                return  # the supervisor sees the connection end

    async def _close_connection(
        self, connection: _Connection, code: int, reason: str, *, quiet: bool = False
    ) -> None:
        self._connection_failed(
            connection, GraphqlWsConnectionClosed(code, reason or "Closed by the client")
        )
        current = asyncio.current_task()
        tasks = [
            task
            for task in (connection.keep_alive, connection.reader)
            if task is not None and task is not current
        ]
        connection.keep_alive = connection.reader = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        try:
            await self._within(connection.transport.close(code, reason), None, "Closing")
        except Exception:
            if not quiet:
                raise
            logger.debug("Closing a connection failed", exc_info=True)

    def _maybe_idle(self) -> None:
        """Lazy: no operation wants the connection: close it after the delay."""
        connection = self._connection
        if (
            self._wanted()
            or self._idle_timer is not None
            or self._state is not GraphqlWsClientState.CONNECTED
            or connection is None
        ):
            return
        self._idle_timer = asyncio.create_task(
            self._close_when_idle(connection), name="graphql-ws-client-lazy-close"
        )

    def _cancel_idle_timer(self) -> None:
        timer, self._idle_timer = self._idle_timer, None
        if timer is not None:
            timer.cancel()

    async def _close_when_idle(self, connection: _Connection) -> None:
        if self.lazy_close_timeout > 0:
            await asyncio.sleep(self.lazy_close_timeout)
        else:
            await asyncio.sleep(0)  # an operation may follow at once
        self._idle_timer = None  # no longer cancellable: it closes now
        if self._wanted() or connection.failure is not None:
            self._maybe_idle()
            return
        connection.idle_close = True
        terminate = connection.machine.terminate()
        if terminate is not None:
            with contextlib.suppress(GraphqlWsClientError):
                await self._send(connection, terminate)
        await self._close_connection(connection, CloseCode.NORMAL, "", quiet=True)

    async def _keep_connection_alive(self, connection: _Connection, interval: float) -> None:
        wait = self.keep_alive_timeout
        while connection.failure is None:
            if self._subprotocol == GRAPHQL_TRANSPORT_WS:
                await asyncio.sleep(interval)
                try:
                    await self._ping(connection, None, wait)
                except GraphqlWsTimeoutError:
                    seconds = self.timeout if wait is None else wait
                    reason = f"No pong within {seconds} s: the connection is dead"
                    break
                except GraphqlWsClientError:
                    return  # the connection ended: the reader reports why
            else:
                connection.frame_received.clear()
                try:
                    async with asyncio.timeout(interval):
                        await connection.frame_received.wait()
                except TimeoutError:
                    reason = f"Nothing from the server for {interval} s: the connection is dead"
                    break
        else:
            return
        logger.warning("Closing the connection: %s", reason)
        # The supervisor, woken by the failure, closes the socket (one closer only: a
        # transport closes once before it connects again).
        self._connection_failed(
            connection, GraphqlWsConnectionClosed(CloseCode.ABNORMAL_CLOSURE, reason)
        )

    # --- state changes ----------------------------------------------------------------------

    def _set_state(
        self,
        state: GraphqlWsClientState,
        *,
        retry: int = 0,
        error: GraphqlWsClientError | None = None,
    ) -> None:
        previous = self._state
        if state is previous and state not in ALLOWED_TRANSITIONS[previous]:
            return  # already there (closing twice)
        if state not in ALLOWED_TRANSITIONS[previous]:
            raise AssertionError(f"The client cannot go from {previous.value} to {state.value}")
        self._state = state
        change = GraphqlWsStateChange(state, previous, retry, error)
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(change)
        if self.on_state is not None:
            try:
                self.on_state(change)
            except Exception:
                logger.exception("on_state raised")

    def _next_change(self) -> asyncio.Future[GraphqlWsStateChange]:
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        # shield: a waiter that gives up must not cancel the future the others wait on.
        return asyncio.shield(self._changed)

    def _closed_error(self) -> GraphqlWsClientError:
        if self._failure is None:
            return GraphqlWsConnectionClosed(CloseCode.NORMAL, "Closed by the client")
        return _fresh(self._failure)

    def _give_up(self, error: GraphqlWsClientError, *, final: bool = False) -> None:
        """No more connections for the operations waiting: each gets ``error``. A
        lazy client becomes idle (the next operation connects); any other one closes."""
        operations = list(self._operations.values())
        self._operations.clear()
        for operation in operations:
            operation.queue.put_nowait(error)
        if self.lazy and not final:
            self._set_state(GraphqlWsClientState.IDLE, error=error)
            return
        if self._failure is None or not self.closed:
            self._failure = error
        self._set_state(GraphqlWsClientState.CLOSED, error=error)

    # --- I/O --------------------------------------------------------------------------------

    async def _within(self, awaitable: Awaitable[_T], timeout: float | None, what: str) -> _T:
        seconds = self.timeout if timeout is None else timeout
        timer = asyncio.timeout(None if math.isinf(seconds) else seconds)
        try:
            async with timer:
                return await awaitable
        except TimeoutError:
            if timer.expired():
                raise GraphqlWsTimeoutError(f"{what}: took longer than {seconds} s") from None
            raise

    async def _send(self, connection: _Connection, message: ClientMessage) -> None:
        text = json.dumps(message, separators=(",", ":"))
        async with connection.send_lock:
            await self._within(connection.transport.send(text), None, f"Sending {message['type']}")

    async def _ping(
        self, connection: _Connection, payload: dict[str, Any] | None, timeout: float | None
    ) -> dict[str, Any] | None:
        message = connection.machine.ping(payload)
        pong: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        # Pongs answer pings in order: a ping whose wait times out keeps its place, so
        # that its late pong is not taken for the answer to the next ping.
        connection.pongs.append(pong)
        try:
            await self._send(connection, message)
        except BaseException:
            connection.pongs.remove(pong)  # never sent: no pong will come for it
            raise
        return await self._within(asyncio.shield(pong), timeout, "Waiting for pong")

    async def _read(self, connection: _Connection) -> None:
        failure: GraphqlWsClientError
        transport = connection.transport
        try:
            while True:
                text = await transport.receive()
                connection.frame_received.set()
                for event in connection.machine.receive_text(text):
                    await self._handle(connection, event)
        except GraphqlWsConnectionClosed as closed:
            payload = closed.payload if closed.payload is not None else connection.rejection
            failure = GraphqlWsConnectionClosed(closed.code, closed.reason, payload)
            failure.__cause__ = closed.__cause__
        except GraphqlWsProtocolError as exc:
            failure = exc
            logger.warning("Closing the connection: %s", exc)
            self._connection_failed(connection, failure)
            try:
                await self._within(
                    # As the graphql-ws npm client does when the server breaks the protocol.
                    transport.close(CloseCode.BAD_RESPONSE, "Invalid message"),
                    None,
                    "Closing",
                )
            except Exception:
                logger.debug("Closing after a protocol error failed", exc_info=True)
        except Exception as exc:
            failure = GraphqlWsConnectionClosed(
                CloseCode.ABNORMAL_CLOSURE, f"The transport failed: {exc!r}"
            )
            failure.__cause__ = exc
        self._connection_failed(connection, failure)

    async def _handle(self, connection: _Connection, event: ClientEvent) -> None:
        match event:
            case SendMessage(message):
                await self._send(connection, message)
            case ConnectionAcknowledged(payload):
                if not connection.acknowledgement.done():
                    connection.acknowledgement.set_result(payload)
            case ConnectionErrorReceived(payload):
                if not connection.acknowledgement.done():
                    # A rejection: the close that follows carries this payload.
                    connection.rejection = payload
                else:
                    logger.warning("The server sent a connection error: %s", payload)
            case KeepAliveReceived():
                self._keepalives_received += 1
            case PongReceived(payload):
                if connection.pongs:  # else unsolicited (a heartbeat): nothing waits for it
                    pong = connection.pongs.popleft()
                    if not pong.done():  # its ping's wait may have timed out
                        pong.set_result(payload)
            case (
                ResultReceived(operation_id)
                | ErrorsReceived(operation_id)
                | OperationCompleted(operation_id)
            ):
                operation = self._operations.get(operation_id)
                if operation is not None and operation.connection is connection:
                    if not isinstance(event, ResultReceived):
                        operation.ended = True
                    elif operation.subscription:
                        extensions = event.payload.get("extensions")
                        event_id = (
                            extensions.get(EVENT_ID_EXTENSION)
                            if isinstance(extensions, dict)
                            else None
                        )
                        if isinstance(event_id, str):
                            operation.last_event_id = event_id
                    operation.queue.put_nowait(event)

    def _connection_failed(self, connection: _Connection, failure: GraphqlWsClientError) -> None:
        """A connection is over (the first reason wins): its queries and mutations
        fail; its subscriptions wait for the supervisor's decision."""
        if connection.failure is not None:
            return
        connection.failure = failure
        connection.machine.connection_closed()
        for operation in list(self._operations.values()):
            is_query = not operation.subscription
            if operation.connection is connection and is_query and not operation.ended:
                operation.ended = True
                operation.queue.put_nowait(failure)
        waiters = [*connection.pongs, connection.acknowledgement]
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(_fresh(failure))
                waiter.exception()  # retrieved: asyncio logs no "never retrieved" if unawaited
        connection.pongs.clear()
        connection.ended.set()


class GraphqlWsSubscriptionStream:
    """One subscription of a :class:`GraphqlWsClient`: an async iterator of its results.

    Made by :meth:`GraphqlWsClient.subscribe`. Entering it starts the subscription;
    leaving it stops the subscription (``complete`` / ``stop``) unless the server has
    ended it. Iterating yields each result in order (``data`` and ``errors``), ends
    when the server completes the subscription, and raises
    :class:`GraphqlWsResponseError` when the server answers with an ``error`` message,
    :class:`GraphqlWsConnectionClosed` when the connection ends, and
    :class:`GraphqlWsTimeoutError` when no event comes in time (the subscription
    stays active).
    """

    def __init__(
        self,
        client: GraphqlWsClient,
        payload: OperationPayload,
        timeout: float | None,
        *,
        confirm: bool = False,
    ) -> None:
        self.client = client
        self.payload = payload
        self.timeout = timeout
        self.confirm = confirm
        """Whether the server was asked to confirm the subscription: its first result is
        then the confirmation, which :meth:`wait_confirmed` takes (iterating the stream
        takes it too), not one of the stream's results."""
        self._operation: _Operation | None = None
        self._queue: asyncio.Queue[OperationItem] | None = None
        self._ended = False
        self._awaiting_confirmation = confirm
        self._pending: collections.deque[GraphqlWsResult] = collections.deque()

    @property
    def operation_id(self) -> str:
        """The id of the operation on the wire (once started)."""
        if self._operation is None:
            raise RuntimeError("The subscription has not started")
        return self._operation.id

    @property
    def resubscriptions(self) -> int:
        """How many times the client subscribed this subscription again, on a new
        connection, so far. Notifications sent while no connection was up are not
        received, unless the subscription's class is resumable (see
        :attr:`last_event_id`)."""
        return 0 if self._operation is None else self._operation.resubscriptions

    @property
    def last_event_id(self) -> str | None:
        """The id of the last event the client received for this subscription (None
        until one came, and for a class that is not resumable): when the client
        subscribes it again, on a new connection, it resumes after that event."""
        return None if self._operation is None else self._operation.last_event_id

    @property
    def ended(self) -> bool:
        """Whether the subscription is over: stopped, completed, failed."""
        return self._ended

    async def start(self) -> None:
        """Send the subscription to the server (entering the stream does it)."""
        if self._operation is not None:
            raise RuntimeError("The subscription has already started")
        operation = await self.client._start(self.payload, subscription=True, timeout=None)
        self._operation, self._queue = operation, operation.queue

    async def stop(self) -> None:
        """Stop the subscription unless it has ended (leaving the stream does it)."""
        if self._operation is not None and not self._ended:
            self._ended = True
            await self.client._release(self._operation.id)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def __aiter__(self) -> Self:
        return self

    @property
    def confirmed(self) -> bool:
        """Whether the server has confirmed the subscription (asked for with
        ``confirm=True``): it is registered, no broadcast sent from now on is missed.
        False again once the client subscribes it again on a new connection, until the
        server confirms it there (:meth:`wait_confirmed` waits for that too)."""
        return self._operation is not None and self._operation.confirmed

    async def wait_confirmed(self, *, timeout: float | None = None) -> None:
        """Wait for the server's confirmation (the stream must ask for it:
        ``client.subscribe(..., confirm=True)``). ``timeout``: seconds (default: the
        client's). A subscription refused instead raises :class:`GraphqlWsResponseError`,
        as iterating would."""
        if not self.confirm:
            raise RuntimeError("This subscription did not ask for a confirmation (confirm=True)")
        while not self.confirmed:
            try:
                result = await self._next_event(timeout)
            except StopAsyncIteration:
                raise GraphqlWsResponseError(
                    [{"message": "The subscription ended before it was confirmed"}]
                ) from None
            if result is not None and not self._awaiting_confirmation:
                # A result of the previous connection, before the re-subscription: the
                # iteration gets it.
                self._pending.append(result)
            elif result is not None:
                # A result before the confirmation: the subscription failed to open (the
                # server ends it after this result).
                await self.stop()
                raise GraphqlWsResponseError(result.errors or [], result)

    async def __anext__(self) -> GraphqlWsResult:
        if self._pending:
            return self._pending.popleft()
        while True:
            item = await self._next_event(self.timeout)
            if item is not None:
                return item

    async def _next_event(self, timeout: float | None) -> GraphqlWsResult | None:
        """The next result; None for the confirmation, which it records."""
        if self._queue is None:
            raise RuntimeError("Enter the stream (async with) before iterating it")
        if self._ended:
            raise StopAsyncIteration
        try:
            item = await self.client._next_item(
                self._queue, timeout, f"Subscription {self._operation and self._operation.id}"
            )
        except GraphqlWsTimeoutError:
            raise
        except BaseException:
            await self.stop()
            raise
        if isinstance(item, _Resubscribed):
            # Subscribed again on a new connection: the server confirms it again.
            self._awaiting_confirmation = self.confirm
            return None
        if isinstance(item, ResultReceived):
            if self._awaiting_confirmation and not item.payload.get("errors"):
                self._awaiting_confirmation = False
                if self._operation is not None:
                    self._operation.confirmed = True
                return None
            return GraphqlWsResult.from_payload(item.payload)
        await self.stop()
        if isinstance(item, ErrorsReceived):
            raise GraphqlWsResponseError(item.errors)
        raise StopAsyncIteration


def _operation_payload(
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    extensions: dict[str, Any] | None,
) -> OperationPayload:
    payload: OperationPayload = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    if operation_name is not None:
        payload["operationName"] = operation_name
    if extensions is not None:
        payload["extensions"] = extensions
    return payload
