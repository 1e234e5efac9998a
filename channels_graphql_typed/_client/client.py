"""The GraphQL over WebSocket client: the I/O shell around :class:`ClientProtocolMachine`.

Theory of operation
-------------------
A :class:`GraphqlWsClient` owns one transport (one WebSocket) and, while connected,
one reader task. The reader is the only coroutine that receives: it feeds each frame
to the sans-IO machine (:mod:`.machine`) and carries out the events in order -- a
reply goes back to the server at once (``pong``), the acknowledgement completes the
handshake, an operation's results go to that operation's queue, found by id.

Callers -- :meth:`GraphqlWsClient.execute`, a :class:`GraphqlWsSubscriptionStream` --
wait on their own operation's queue, never on the socket, and always with a timeout.
So any number of operations share one socket, and a wait that times out disturbs
no other operation.

When the socket closes (either side), the server breaks the protocol or the transport
fails, the reader records why and ends; every waiter, now or later, gets that reason
as an exception -- :class:`GraphqlWsConnectionClosed` with the close code and reason,
or :class:`GraphqlWsProtocolError` -- after the results that arrived before it.
Closing the client cancels and awaits the reader, then closes the transport: no task
outlives the client.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import enum
import json
import logging
import math
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from .._exceptions import (
    GraphqlWsClientError,
    GraphqlWsConnectionClosed,
    GraphqlWsProtocolError,
    GraphqlWsResponseError,
    GraphqlWsTimeoutError,
)
from .._protocol.common import CloseCode
from .._protocol.messages import CONFIRM_SUBSCRIPTION_EXTENSION, GRAPHQL_TRANSPORT_WS
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
from .result import GraphqlWsResult

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from types import TracebackType

    from .._protocol.messages import OperationPayload, Subprotocol
    from .machine import ClientEvent, ClientMessage, OperationEvent
    from .transport import GraphqlWsTransport

    OperationItem = OperationEvent | GraphqlWsClientError

logger = logging.getLogger("channels_graphql_typed.client")

_T = TypeVar("_T")

DEFAULT_TIMEOUT: Final = 10.0
"""Seconds any wait of the client may take unless told otherwise."""


class _ClientState(enum.Enum):
    NEW = "new"
    OPEN = "open"
    FINALIZED = "finalized"


def _fresh(exc: GraphqlWsClientError) -> GraphqlWsClientError:
    # One recorded failure is raised in many tasks: raise copies, so that tracebacks
    # do not pile up on one object. Our exceptions rebuild from their args.
    fresh = copy.copy(exc)
    fresh.__cause__ = exc.__cause__
    return fresh


class GraphqlWsClient:
    """A GraphQL client over one WebSocket, speaking either subprotocol::

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

    Entering the client connects and initialises it (:meth:`connect_and_init`);
    leaving it closes the socket (:meth:`finalize`).
    """

    def __init__(
        self,
        transport: GraphqlWsTransport,
        *,
        subprotocol: str | None = None,
        connection_params: dict[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        preset = transport.subprotocol
        if subprotocol is not None and preset is not None and subprotocol != preset:
            raise ValueError(
                f"The client is asked for {subprotocol!r} and its transport for {preset!r}"
            )
        self.transport = transport
        self.connection_params = connection_params
        self.timeout = timeout
        self._machine = ClientProtocolMachine(subprotocol or preset or GRAPHQL_TRANSPORT_WS)
        self._state = _ClientState.NEW
        self._reader: asyncio.Task[None] | None = None
        self._acknowledgement: asyncio.Future[dict[str, Any] | None] | None = None
        self._ack_payload: dict[str, Any] | None = None
        self._rejection: dict[str, Any] | None = None
        self._queues: dict[str, asyncio.Queue[OperationItem]] = {}
        self._pongs: collections.deque[asyncio.Future[dict[str, Any] | None]] = collections.deque()
        self._failure: GraphqlWsClientError | None = None
        self._send_lock = asyncio.Lock()
        self._keepalives_received = 0

    # --- state ----------------------------------------------------------------------------

    @property
    def subprotocol(self) -> Subprotocol:
        """The subprotocol this client speaks."""
        return self._machine.subprotocol

    @property
    def ack_payload(self) -> dict[str, Any] | None:
        """The payload of the server's ``connection_ack`` (None: it had none)."""
        return self._ack_payload

    @property
    def keepalives_received(self) -> int:
        """Server keep-alives so far: ``ping`` (answered) or ``ka``."""
        return self._keepalives_received

    @property
    def closed(self) -> bool:
        """Whether the connection is over (closed by either side, or failed)."""
        return self._failure is not None or self._state is _ClientState.FINALIZED

    @property
    def close_error(self) -> GraphqlWsClientError | None:
        """Why the connection ended (None while it is open): what waiters get raised."""
        return self._failure

    # --- connection -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
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
        closed. Called once; ``async with`` calls it.
        """
        if self._state is not _ClientState.NEW:
            raise RuntimeError("connect_and_init() is called once per client")
        self._state = _ClientState.OPEN
        try:
            await self._within(self.transport.connect(self.subprotocol), None, "Connecting")
            if self.transport.subprotocol != self.subprotocol:
                raise GraphqlWsProtocolError(
                    f"The transport negotiated {self.transport.subprotocol!r}"
                    f" instead of {self.subprotocol!r}"
                )
            self._acknowledgement = asyncio.get_running_loop().create_future()
            self._reader = asyncio.create_task(self._read(), name="graphql-ws-client-reader")
            await self._send(self._machine.initialise(self.connection_params))
            try:
                self._ack_payload = await self._within(
                    self._acknowledgement, None, "Waiting for connection_ack"
                )
            except GraphqlWsTimeoutError:
                if self._rejection is None:
                    raise
                # graphql-ws: connection_error came, but the close did not follow in time.
                raise GraphqlWsConnectionClosed(
                    CloseCode.FORBIDDEN, "Connection rejected", self._rejection
                ) from None
        except BaseException:
            await self._shutdown(CloseCode.NORMAL, "")
            raise
        return self._ack_payload

    async def finalize(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the connection (``connection_terminate`` first on graphql-ws).

        Operations still waiting get :class:`GraphqlWsConnectionClosed` with ``code``.
        Safe to call more than once, and after the server has closed.
        """
        if self._state is _ClientState.FINALIZED:
            return
        was_open = self._state is _ClientState.OPEN and self._failure is None
        self._state = _ClientState.FINALIZED
        try:
            terminate = self._machine.terminate()
            if was_open and terminate is not None:
                # Closed meanwhile: closing is what we want anyway.
                with contextlib.suppress(GraphqlWsClientError):
                    await self._send(terminate)
        finally:
            await self._shutdown(code, reason)

    async def wait_closed(self, *, timeout: float | None = None) -> GraphqlWsClientError:
        """Wait until the connection ends (usually: the server closes it); return why.

        The returned exception is what waiting operations get raised, typically a
        :class:`GraphqlWsConnectionClosed` with the close code and reason.
        """
        if self._reader is not None:
            await self._within(asyncio.shield(self._reader), timeout, "Waiting for the close")
        if self._failure is None:
            raise RuntimeError("The client was never connected")
        return _fresh(self._failure)

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
        result (default: the client's).
        """
        payload = _operation_payload(query, variables, operation_name, extensions)
        operation_id, queue = await self._start(payload)
        try:
            item = await self._next_item(queue, timeout, f"Operation {operation_id}")
        finally:
            # A query's ``complete`` normally follows its result in the same read, and
            # the operation has ended here. If not (a subscription), stop it.
            await self._release(operation_id)
        if isinstance(item, ErrorsReceived):
            raise GraphqlWsResponseError(item.errors)
        if isinstance(item, OperationCompleted):
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
        stream's results: ``await stream.wait_confirmed()`` waits for it.
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
        self._ensure_ready()
        message = self._machine.ping(payload)
        pong: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        # Pongs answer pings in order: a ping whose wait times out keeps its place, so
        # that its late pong is not taken for the answer to the next ping.
        self._pongs.append(pong)
        try:
            await self._send(message)
        except BaseException:
            self._pongs.remove(pong)  # never sent: no pong will come for it
            raise
        return await self._within(pong, timeout, "Waiting for pong")

    # --- internals used by the stream -------------------------------------------------------

    async def _start(self, payload: OperationPayload) -> tuple[str, asyncio.Queue[OperationItem]]:
        self._ensure_ready()
        message = self._machine.start(payload)
        operation_id = message["id"]
        queue: asyncio.Queue[OperationItem] = asyncio.Queue()
        self._queues[operation_id] = queue
        try:
            await self._send(message)
        except BaseException:
            self._queues.pop(operation_id, None)
            self._machine.stop(operation_id)
            raise
        return operation_id, queue

    async def _next_item(
        self, queue: asyncio.Queue[OperationItem], timeout: float | None, what: str
    ) -> OperationEvent:
        if queue.empty() and self._failure is not None:
            raise _fresh(self._failure)
        item = await self._within(queue.get(), timeout, f"{what}: waiting for a result")
        if isinstance(item, GraphqlWsClientError):
            raise _fresh(item)
        return item

    async def _release(self, operation_id: str) -> None:
        """Forget an operation; tell the server to stop it if it has not ended."""
        self._queues.pop(operation_id, None)
        message = self._machine.stop(operation_id)
        if message is not None and self._failure is None and self._state is _ClientState.OPEN:
            # The connection is ending: the operation ends with it.
            with contextlib.suppress(GraphqlWsClientError):
                await self._send(message)

    # --- I/O --------------------------------------------------------------------------------

    def _ensure_ready(self) -> None:
        if self._failure is not None:
            raise _fresh(self._failure)
        acknowledgement = self._acknowledgement
        if self._state is not _ClientState.OPEN or not (acknowledgement and acknowledgement.done()):
            raise RuntimeError(
                "The client is not connected: use `async with` or connect_and_init()"
            )

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

    async def _send(self, message: ClientMessage) -> None:
        text = json.dumps(message, separators=(",", ":"))
        async with self._send_lock:
            await self._within(self.transport.send(text), None, f"Sending {message['type']}")

    async def _read(self) -> None:
        failure: GraphqlWsClientError
        try:
            while True:
                text = await self.transport.receive()
                for event in self._machine.receive_text(text):
                    await self._handle(event)
        except GraphqlWsConnectionClosed as closed:
            payload = closed.payload if closed.payload is not None else self._rejection
            failure = GraphqlWsConnectionClosed(closed.code, closed.reason, payload)
            failure.__cause__ = closed.__cause__
        except GraphqlWsProtocolError as exc:
            failure = exc
            logger.warning("Closing the connection: %s", exc)
            try:
                await self._within(
                    # As the graphql-ws npm client does when the server breaks the protocol.
                    self.transport.close(CloseCode.BAD_RESPONSE, "Invalid message"),
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
        self._fail(failure)

    async def _handle(self, event: ClientEvent) -> None:
        match event:
            case SendMessage(message):
                await self._send(message)
            case ConnectionAcknowledged(payload):
                if self._acknowledgement is not None and not self._acknowledgement.done():
                    self._acknowledgement.set_result(payload)
            case ConnectionErrorReceived(payload):
                acknowledgement = self._acknowledgement
                if acknowledgement is not None and not acknowledgement.done():
                    # A rejection: the close that follows carries this payload.
                    self._rejection = payload
                else:
                    logger.warning("The server sent a connection error: %s", payload)
            case KeepAliveReceived():
                self._keepalives_received += 1
            case PongReceived(payload):
                if self._pongs:  # else unsolicited (a heartbeat): nothing waits for it
                    pong = self._pongs.popleft()
                    if not pong.done():  # its ping's wait may have timed out
                        pong.set_result(payload)
            case (
                ResultReceived(operation_id)
                | ErrorsReceived(operation_id)
                | OperationCompleted(operation_id)
            ):
                queue = self._queues.get(operation_id)
                if queue is not None:
                    queue.put_nowait(event)

    def _fail(self, failure: GraphqlWsClientError) -> None:
        """The connection is over: tell every waiter, now and later."""
        if self._failure is not None:
            return
        self._failure = failure
        self._machine.connection_closed()
        for queue in self._queues.values():
            queue.put_nowait(failure)
        waiters = [*self._pongs]
        if self._acknowledgement is not None:
            waiters.append(self._acknowledgement)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(_fresh(failure))
                waiter.exception()  # retrieved: asyncio logs no "never retrieved" if unawaited
        self._pongs.clear()

    async def _shutdown(self, code: int, reason: str) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            # asyncio.wait: do not swallow a cancellation of the task running this.
            await asyncio.wait([reader])
        self._fail(GraphqlWsConnectionClosed(code, reason or "Closed by the client"))
        self._state = _ClientState.FINALIZED
        await self._within(self.transport.close(code, reason), None, "Closing")


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
        self._operation_id: str | None = None
        self._queue: asyncio.Queue[OperationItem] | None = None
        self._ended = False
        self._confirmed = False

    @property
    def operation_id(self) -> str:
        """The id of the operation on the wire (once started)."""
        if self._operation_id is None:
            raise RuntimeError("The subscription has not started")
        return self._operation_id

    @property
    def ended(self) -> bool:
        """Whether the subscription is over: stopped, completed, failed."""
        return self._ended

    async def start(self) -> None:
        """Send the subscription to the server (entering the stream does it)."""
        if self._operation_id is not None:
            raise RuntimeError("The subscription has already started")
        self._operation_id, self._queue = await self.client._start(self.payload)

    async def stop(self) -> None:
        """Stop the subscription unless it has ended (leaving the stream does it)."""
        if self._operation_id is not None and not self._ended:
            self._ended = True
            await self.client._release(self._operation_id)

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
        ``confirm=True``): it is registered, no broadcast sent from now on is missed."""
        return self._confirmed

    async def wait_confirmed(self, *, timeout: float | None = None) -> None:
        """Wait for the server's confirmation (the stream must ask for it:
        ``client.subscribe(..., confirm=True)``). ``timeout``: seconds (default: the
        client's). A subscription refused instead raises :class:`GraphqlWsResponseError`,
        as iterating would."""
        if not self.confirm:
            raise RuntimeError("This subscription did not ask for a confirmation (confirm=True)")
        if self._confirmed:
            return
        try:
            result = await self._next_event(timeout)
        except StopAsyncIteration:
            raise GraphqlWsResponseError(
                [{"message": "The subscription ended before it was confirmed"}]
            ) from None
        if result is not None:
            # A result before the confirmation: the subscription failed to open (the
            # server ends it after this result).
            await self.stop()
            raise GraphqlWsResponseError(result.errors or [], result)

    async def __anext__(self) -> GraphqlWsResult:
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
                self._queue, timeout, f"Subscription {self._operation_id}"
            )
        except GraphqlWsTimeoutError:
            raise
        except BaseException:
            await self.stop()
            raise
        if isinstance(item, ResultReceived):
            if self.confirm and not self._confirmed and not item.payload.get("errors"):
                self._confirmed = True
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
